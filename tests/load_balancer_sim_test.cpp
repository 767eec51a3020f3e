// SPDX-License-Identifier: MIT
// tests/load_balancer_sim_test.cpp: the seeded load simulator, and the policies compared in it
// (4 backends, one 50 ms slower: the share it gets and the latency percentiles).
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "distkit/load_balancer.hpp"
#include "distkit/load_balancer_sim.hpp"
#include "support/seed.hpp"

using namespace std::chrono_literals;

namespace {

template <class Picker, class Health = distkit::no_outlier_detection>
auto run_with(const distkit::sim_config& config) -> distkit::sim_result {
  using lb_t = distkit::load_balancer<std::string, Picker, Health, distkit::manual_clock>;
  return distkit::run_load_simulation(config, [&](std::size_t client, distkit::manual_clock& clock) {
    return std::make_unique<lb_t>(distkit::load_balancer_options{.seed = config.seed * 1000 + client}, Picker{},
                                  Health{}, clock);
  });
}

// HAProxy's published experiment, as a closed loop: four backends of 4 workers each, service
// time log-normal around 10 ms; one of them takes 50 ms longer. 8 clients x 8 users, 60 ms mean
// think time: about 75% of the three healthy backends' capacity.
auto slow_backend_config(std::uint64_t seed) -> distkit::sim_config {
  distkit::sim_config c;
  for (int i = 0; i < 4; ++i) c.backends.push_back({.name = "b" + std::to_string(i)});
  c.slowdowns.push_back({.backend = 3, .start = 0s, .end = 3600s, .extra = 50ms});
  c.think_time = 60ms;
  c.duration = 40s;
  c.warmup = 5s;
  c.seed = seed;
  return c;
}

}  // namespace

TEST_CASE("load_simulation is deterministic for a seed", "[load_balancer][sim]") {
  const std::uint64_t seed = distkit_test::test_seed("load simulation determinism");
  auto config = slow_backend_config(seed);
  config.duration = 10s;
  config.membership.push_back({.at = 3s, .backend = 1, .present = false});
  config.membership.push_back({.at = 6s, .backend = 1, .present = true});
  config.outages.push_back({.backend = 2, .start = 4s, .end = 5s});
  const auto a = run_with<distkit::p2c_peak_ewma_picker>(config);
  const auto b = run_with<distkit::p2c_peak_ewma_picker>(config);
  CHECK(a.requests > 1000);
  CHECK(a.requests == b.requests);
  CHECK(a.latencies_ns == b.latencies_ns);
  for (std::size_t i = 0; i < 4; ++i) CHECK(a.backends[i].requests == b.backends[i].requests);
}

TEST_CASE("load_simulation applies outages, churn and failures to the balancers", "[load_balancer][sim]") {
  distkit::sim_config config;
  for (int i = 0; i < 3; ++i) config.backends.push_back({.name = "b" + std::to_string(i)});
  config.backends[0].failure_probability = 0.1;
  config.duration = 20s;
  config.warmup = 0s;
  config.outages.push_back({.backend = 1, .start = 0s, .end = 20s});
  config.membership.push_back({.at = 0s, .backend = 2, .present = false});
  config.membership.push_back({.at = 10s, .backend = 2, .present = true});
  config.seed = 7;
  const auto r = run_with<distkit::round_robin_picker>(config);
  CHECK(r.backends[1].failures == r.backends[1].requests);  // down the whole time
  CHECK(r.backends[1].requests > 0);
  CHECK(std::abs(static_cast<double>(r.backends[0].failures) / static_cast<double>(r.backends[0].requests) - 0.1) <
        0.02);
  CHECK(r.backends[2].requests > 0);  // back after 10 s
  CHECK(r.backends[2].requests < r.backends[0].requests);

  SECTION("outlier detection takes the dead backend out") {
    const auto e = run_with<distkit::round_robin_picker, distkit::outlier_detection>(config);
    CHECK(e.backends[1].requests < r.backends[1].requests / 10);
  }
  REQUIRE_THROWS_WITH(run_with<distkit::round_robin_picker>(distkit::sim_config{}),
                      Catch::Matchers::Contains("backends"));
}

TEST_CASE("load_balancer policies with one backend 50 ms slower: share and tail latency",
          "[load_balancer][sim][policies]") {
  const std::uint64_t seed = distkit_test::test_seed("slow backend policies");
  const auto config = slow_backend_config(seed);
  const auto rr = run_with<distkit::round_robin_picker>(config);
  const auto lr = run_with<distkit::p2c_least_request_picker>(config);
  const auto ewma = run_with<distkit::p2c_peak_ewma_picker>(config);
  std::printf("%-22s %9s %12s %9s %9s\n", "policy", "requests", "slow share", "p50 ms", "p99 ms");
  for (const auto& [name, r] :
       {std::pair{"round robin", &rr}, std::pair{"P2C least-request", &lr}, std::pair{"P2C peak-EWMA", &ewma}}) {
    std::printf("%-22s %9llu %11.2f%% %9.1f %9.1f\n", name, static_cast<unsigned long long>(r->requests),
                100.0 * r->share(3), r->quantile_ms(0.5), r->quantile_ms(0.99));
  }
  CHECK(rr.share(3) == Approx(0.25).margin(0.01));  // round robin ignores the slowness
  CHECK(lr.share(3) < rr.share(3));
  CHECK(ewma.share(3) <= 0.04);  // the goal (HAProxy's random(2): 8.73%)
  CHECK(ewma.quantile_ms(0.99) <= rr.quantile_ms(0.99) / 2);
  CHECK(lr.quantile_ms(0.99) < rr.quantile_ms(0.99));
}
