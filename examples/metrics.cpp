// SPDX-License-Identifier: MIT
// examples/metrics.cpp: a small service, a rate limiter per client and a circuit breaker in
// front of its backend, that exports its metrics in the Prometheus text format.
//
// Simulated time (a manual_clock): three clients send requests for 60 seconds, one of them far
// above its limit; the backend fails between 20 s and 30 s, so the breaker opens, probes and
// closes again. The service counts its own requests and records their latency in a histogram,
// and the limiter and the breaker feed their metrics to the same registry. At the end the
// program prints what a Prometheus server would scrape from /metrics (`--openmetrics` prints
// the OpenMetrics form instead).
#include <chrono>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>

#include "distkit/clock.hpp"
#include "distkit/metrics.hpp"
#include "distkit/metrics/circuit_breaker.hpp"
#include "distkit/metrics/rate_limiter.hpp"

using namespace std::chrono_literals;

namespace {

using limiter_type = distkit::rate_limiter<distkit::gcra, distkit::manual_clock, distkit::local_store<distkit::gcra>,
                                           distkit::limiter_registry_metrics>;
using breaker_type =
    distkit::circuit_breaker<distkit::count_window, distkit::manual_clock, distkit::breaker_registry_metrics>;

class service {
 public:
  service(distkit::metrics_registry& registry, const distkit::manual_clock& clock)
      : clock_(clock),
        limiter_({.limit = 20, .window = 1s}, clock, {registry, "per_client"}),
        breaker_({.minimum_number_of_calls = 20,
                  .sliding_window_size = 50,
                  .permitted_number_of_calls_in_half_open_state = 5,
                  .wait_duration_in_open_state = 5s},
                 clock, {registry, "backend"}),
        requests_(
            registry.counter_family("distkit_example_requests_total", "Requests answered, by HTTP status.", {"code"})),
        latency_(registry.make_histogram("distkit_example_request_duration_seconds", "Time to answer a request.",
                                         {.units_per_exposed = 1e9})) {}

  // Answers one request: 429 when the client is over its limit, 503 when the breaker refuses,
  // 502 when the backend fails, 200 otherwise.
  auto handle(std::string_view client) -> int {
    if (!limiter_.try_acquire(client)) return answer(429, 50us);
    auto permit = breaker_.try_acquire();
    if (!permit) return answer(503, 80us);
    const auto took = backend_latency();
    if (backend_failing()) {
      permit->record_failure(took);
      return answer(502, took);
    }
    permit->record_success(took);
    return answer(200, took);
  }

 private:
  auto answer(int code, std::chrono::nanoseconds took) -> int {
    requests_.with({std::to_string(code)}).inc();
    latency_.observe(took);
    return code;
  }
  [[nodiscard]] auto backend_failing() const -> bool {
    const auto t = clock_.now().time_since_epoch();
    return t >= 20s && t < 30s;
  }
  auto backend_latency() -> std::chrono::nanoseconds {
    std::lognormal_distribution<double> ms(std::log(4.0), 0.6);  // ~4 ms, a long tail
    return std::chrono::nanoseconds(static_cast<std::int64_t>(ms(rng_) * 1e6));
  }

  distkit::manual_clock clock_;
  limiter_type limiter_;
  breaker_type breaker_;
  distkit::metric_family<distkit::counter>& requests_;
  distkit::histogram& latency_;
  std::mt19937 rng_{2026};
};

}  // namespace

auto main(int argc, char** argv) -> int try {
  const bool openmetrics = argc > 1 && std::string_view(argv[1]) == "--openmetrics";
  distkit::metrics_registry registry;
  distkit::manual_clock clock;
  service svc(registry, clock);
  // Every 10 ms of simulated time "mallory" sends a request (100/s, five times the limit of
  // 20/s); every 100 ms "alice" and "bob" send one each (10/s, within it).
  for (int tick = 0; tick < 6000; ++tick) {
    if (tick % 10 == 0) {
      (void)svc.handle("alice");
      (void)svc.handle("bob");
    }
    (void)svc.handle("mallory");
    clock.advance(10ms);
  }
  const std::string text = openmetrics ? registry.to_openmetrics() : registry.to_prometheus();
  std::fputs(text.c_str(), stdout);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "metrics example: %s\n", e.what());
  return 1;
}
