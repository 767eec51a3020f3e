// SPDX-License-Identifier: MIT
// examples/load_balancer.cpp: a client spreads requests over four backends; at 10 s one of them
// turns 50 ms slower and at 20 s another starts failing every request. The simulated run shows
// where each policy sends the traffic in each phase, and what the clients see.
#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>

#include "distkit/load_balancer.hpp"
#include "distkit/load_balancer_sim.hpp"

using namespace std::chrono_literals;

namespace {

template <class Picker>
void run(const char* name, distkit::sim_config config) {
  using balancer = distkit::load_balancer<std::string, Picker, distkit::outlier_detection, distkit::manual_clock>;
  distkit::outlier_detection health;
  health.consecutive_failures = 5;   // a dead backend is out after five failures in a row
  health.base_ejection_time = 5s;    // and probed again after 5 s (10 s, 20 s... while it stays dead)
  health.max_ejection_percent = 50;  // never more than two of the four
  std::printf("%s\n  phase        b0     b1     b2     b3   failures  p50 ms  p99 ms\n", name);
  const char* phases[] = {"0-10 s", "10-20 s", "20-30 s"};
  for (int phase = 0; phase < 3; ++phase) {
    // Each phase is the same run, measured over its own window (warm-up = the phase's start).
    config.warmup = std::chrono::seconds(10 * phase);
    config.duration = std::chrono::seconds(10 * phase + 10);
    const auto r = distkit::run_load_simulation(config, [&](std::size_t client, distkit::manual_clock& clock) {
      return std::make_unique<balancer>(distkit::load_balancer_options{.slow_start_window = 5s, .seed = client},
                                        Picker{}, health, clock);
    });
    std::printf("  %-9s", phases[phase]);
    for (std::size_t b = 0; b < 4; ++b) std::printf(" %5.1f%%", 100.0 * r.share(b));
    std::printf("  %7.2f%%  %6.1f  %6.1f\n", 100.0 * r.failure_rate(), r.quantile_ms(0.5), r.quantile_ms(0.99));
  }
}

}  // namespace

int main() try {
  distkit::sim_config config;
  for (int i = 0; i < 4; ++i) config.backends.push_back({.name = "10.0.0." + std::to_string(i + 1) + ":8080"});
  config.slowdowns.push_back({.backend = 1, .start = 10s, .end = 30s, .extra = 50ms});  // b1 turns slow
  config.outages.push_back({.backend = 3, .start = 20s, .end = 30s});                   // b3 fails
  config.seed = 42;
  run<distkit::round_robin_picker>("round robin + outlier ejection", config);
  run<distkit::p2c_least_request_picker>("P2C least-request + outlier ejection", config);
  run<distkit::p2c_peak_ewma_picker>("P2C peak-EWMA + outlier ejection", config);
} catch (const std::exception& e) {
  std::fprintf(stderr, "load-balancer example: %s\n", e.what());
  return 1;
}
