// SPDX-License-Identifier: MIT
// examples/circuit_breaker.cpp: a circuit breaker in front of a flaky simulated dependency.
//
// A client sends one request every 100 ms (simulated time, driven by a manual_clock) to a
// dependency that is healthy, then fails hard, then limps (slow answers), then recovers. The
// breaker trips, refuses calls while open, probes in half-open, and closes once the probes pass;
// the program prints that timeline and what each phase cost the dependency.
#include <chrono>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>

#include "distkit/circuit_breaker.hpp"

using namespace std::chrono_literals;

namespace {

// The dependency's health over time: 0-10 s healthy, 10-25 s down (every call fails after
// 200 ms), 25-40 s overloaded (answers, but in 3 s), then healthy again.
struct flaky_dependency {
  distkit::manual_clock clock;
  std::mt19937 rng{7};

  auto seconds() const -> double { return std::chrono::duration<double>(clock.now().time_since_epoch()).count(); }

  auto get(int request) -> std::string {
    const double t = seconds();
    if (t >= 10 && t < 25) {
      clock.advance(200ms);
      throw std::runtime_error("connection refused");
    }
    if (t >= 25 && t < 40) {
      clock.advance(3s);  // slow, but it answers
      return "late reply " + std::to_string(request);
    }
    clock.advance(std::chrono::milliseconds(5 + rng() % 20));
    if (rng() % 100 < 2) throw std::runtime_error("timeout");  // the usual background noise
    return "reply " + std::to_string(request);
  }
};

}  // namespace

int main() try {
  flaky_dependency dependency;
  distkit::circuit_breaker<distkit::count_window, distkit::manual_clock> breaker(
      {.failure_rate_threshold = 50,
       .slow_call_rate_threshold = 80,
       .slow_call_duration_threshold = 1s,
       .minimum_number_of_calls = 10,
       .sliding_window_size = 20,
       .permitted_number_of_calls_in_half_open_state = 3,
       .wait_duration_in_open_state = 5s,
       .wait_duration_multiplier = 1.5,
       .max_wait_duration_in_open_state = 20s},
      dependency.clock);

  breaker.on_state_transition([&](const distkit::state_transition& e) {
    const char* why = "";
    switch (e.cause) {
      case distkit::transition_cause::failure_rate_exceeded:
        why = "failure rate over the threshold";
        break;
      case distkit::transition_cause::slow_call_rate_exceeded:
        why = "slow-call rate over the threshold";
        break;
      case distkit::transition_cause::both_rates_exceeded:
        why = "failure and slow-call rates over";
        break;
      case distkit::transition_cause::probes_passed:
        why = "probes passed";
        break;
      case distkit::transition_cause::wait_elapsed:
        why = "wait in open state elapsed";
        break;
      case distkit::transition_cause::half_open_timeout:
        why = "half-open timed out";
        break;
      case distkit::transition_cause::manual:
        why = "manual";
        break;
      case distkit::transition_cause::reset:
        why = "reset";
        break;
    }
    const auto m = breaker.metrics();
    std::printf("t=%6.2fs  %-9s -> %-9s  (%s; window: %llu calls, %.0f%% failed, %.0f%% slow)\n", dependency.seconds(),
                std::string(distkit::to_string(e.from)).c_str(), std::string(distkit::to_string(e.to)).c_str(), why,
                static_cast<unsigned long long>(m.buffered_calls),
                static_cast<double>(m.failure_rate < 0 ? 0 : m.failure_rate),
                static_cast<double>(m.slow_call_rate < 0 ? 0 : m.slow_call_rate));
  });

  int sent = 0;
  int refused = 0;
  int failed = 0;
  int request = 0;
  double next_report = 10;
  auto report = [&] {
    std::printf("t=%6.2fs  ... so far: %d calls reached the dependency, %d failed, %d refused by the breaker\n",
                dependency.seconds(), sent, failed, refused);
  };
  while (dependency.seconds() < 60) {
    try {
      // try_call: a refusal is a value; the dependency's own exceptions still propagate.
      auto result = breaker.try_call([&] {
        ++sent;
        return dependency.get(++request);
      });
      if (!result) ++refused;
    } catch (const std::runtime_error&) {
      ++failed;
    }
    dependency.clock.advance(100ms);
    if (dependency.seconds() >= next_report) {
      report();
      next_report += 10;
    }
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "circuit-breaker example: %s\n", e.what());
  return 1;
}
