// SPDX-License-Identifier: MIT
// tests/load_balancer_test.cpp: each picker against its specification, outlier ejection, the
// ejection budget, panic, slow start and the request handle.
#include <array>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "distkit/adaptive_limit.hpp"
#include "distkit/load_balancer.hpp"
#include "support/seed.hpp"

using namespace std::chrono_literals;

namespace {

using distkit::lb_pick_view;
using distkit::manual_clock;

// A picker's view over hand-set endpoint states.
struct fake_endpoints {
  explicit fake_endpoints(std::size_t n) : cores(n), entries(n) {
    for (std::size_t i = 0; i < n; ++i) entries[i] = {&cores[i], 1};
  }
  auto view() const -> lb_pick_view { return lb_pick_view(entries, 0, false, 0, false, 1, 1.0, 0.1); }
  std::vector<distkit::detail::lb_endpoint_core> cores;
  std::vector<lb_pick_view::entry> entries;
};

struct seeded_random {
  std::mt19937_64 engine;
  auto operator()() noexcept -> std::uint64_t { return engine(); }
};

auto names(std::size_t n) -> std::vector<std::string> {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back("10.0.0." + std::to_string(i + 1) + ":80");
  return out;
}

template <class LB>
auto pick_counts(LB& lb, int picks) -> std::map<std::string, int> {
  std::map<std::string, int> counts;
  for (int i = 0; i < picks; ++i) {
    auto r = lb.try_pick();
    REQUIRE(r);
    ++counts[r->endpoint()];
    r->success(1ms);
  }
  return counts;
}

}  // namespace

TEST_CASE("load_balancer round robin follows nginx's smooth weighted sequence", "[load_balancer][round_robin]") {
  distkit::load_balancer<std::string, distkit::round_robin_picker, distkit::no_outlier_detection> lb;
  lb.add("a", 5);
  lb.add("b", 1);
  lb.add("c", 1);
  // nginx's documented example: weights 5, 1, 1 give a a b a c a a.
  std::string seq;
  for (int i = 0; i < 14; ++i) {
    auto r = lb.try_pick();
    REQUIRE(r);
    seq += r->endpoint();
  }
  CHECK(seq == "aabacaaaabacaa");
}

TEST_CASE("load_balancer round robin honours weights exactly over each period", "[load_balancer][round_robin]") {
  const std::uint64_t seed = distkit_test::test_seed("round robin weights");
  std::mt19937_64 rng(seed);
  distkit::load_balancer<std::string, distkit::round_robin_picker, distkit::no_outlier_detection> lb;
  const auto eps = names(7);
  std::map<std::string, std::uint32_t> weight;
  std::uint32_t total = 0;
  for (const auto& e : eps) {
    weight[e] = 1 + static_cast<std::uint32_t>(rng() % 20);
    total += weight[e];
    lb.add(e, weight[e]);
  }
  // Weights here share no large factor and sum far below the cap: one period of `total` picks
  // gives each endpoint exactly its weight, and no endpoint waits more than total/weight + 1.
  const auto counts = pick_counts(lb, static_cast<int>(total) * 3);
  for (const auto& e : eps) CHECK(counts.at(e) == static_cast<int>(weight[e] * 3));
}

TEST_CASE("load_balancer P2C least-request never picks the more loaded of its two", "[load_balancer][p2c]") {
  const std::uint64_t seed = distkit_test::test_seed("p2c least request distribution");
  fake_endpoints f(10);
  // Distinct loads: endpoint i has 3*i requests in flight. P2C picks i exactly when its partner
  // is more loaded, so P(i) = (n - 1 - i) / C(n, 2): a pick of the more loaded of the two would
  // give the busiest endpoint a share above 0 and shift every other share.
  for (std::size_t i = 0; i < 10; ++i) f.cores[i].active.store(static_cast<std::int64_t>(3 * i));
  const distkit::p2c_least_request_picker picker;
  const auto table = picker.build(std::vector<distkit::lb_member>(10));
  seeded_random random{std::mt19937_64(seed)};
  std::array<int, 10> counts{};
  const int picks = 450000;
  for (int k = 0; k < picks; ++k) ++counts[picker.choose(table, f.view(), random)];
  CHECK(counts[9] == 0);
  for (std::size_t i = 0; i < 10; ++i) {
    const double expected = static_cast<double>(9 - i) / 45.0;
    CHECK(std::abs(counts[i] / double(picks) - expected) < 0.005);
  }
}

TEST_CASE("load_balancer P2C with two endpoints always takes the less loaded one", "[load_balancer][p2c]") {
  distkit::load_balancer<std::string> lb;
  lb.add("a");
  lb.add("b");
  std::vector<decltype(lb)::request> held;
  // Keep every request open: each new pick must go to the endpoint with fewer in flight, so the
  // two stay within one of each other.
  for (int i = 0; i < 100; ++i) {
    auto r = lb.try_pick();
    REQUIRE(r);
    held.push_back(std::move(*r));
    const auto a = lb.stats("a").active;
    const auto b = lb.stats("b").active;
    REQUIRE(std::abs(a - b) <= 1);
  }
}

TEST_CASE("load_balancer P2C least-request weighs load by weight with active_request_bias", "[load_balancer][p2c]") {
  fake_endpoints f(2);
  f.entries[0].weight = 4;
  f.entries[1].weight = 1;
  f.cores[0].active.store(5);  // (5+1)/4 = 1.5
  f.cores[1].active.store(1);  // (1+1)/1 = 2
  seeded_random random{std::mt19937_64(1)};
  const distkit::p2c_least_request_picker linear(1.0);
  const auto t = linear.build(std::vector<distkit::lb_member>{{"", 4}, {"", 1}});
  CHECK(linear.choose(t, f.view(), random) == 0);
  // Bias 2: (6^2)/4 = 9 against 4: the load now dominates.
  const distkit::p2c_least_request_picker squared(2.0);
  CHECK(squared.choose(t, f.view(), random) == 1);
  // Bias 0: weights only.
  f.cores[0].active.store(100);
  const distkit::p2c_least_request_picker weights_only(0.0);
  CHECK(weights_only.choose(t, f.view(), random) == 0);
  REQUIRE_THROWS_WITH(distkit::p2c_least_request_picker(-1.0), Catch::Matchers::Contains("active_request_bias"));
}

TEST_CASE("load_balancer P2C peak-EWMA picks the cheaper of its two by latency times load", "[load_balancer][ewma]") {
  const std::uint64_t seed = distkit_test::test_seed("p2c peak ewma distribution");
  fake_endpoints f(6);
  // Costs ewma * (active + 1), all distinct: 10*1, 2*3=6, 30*1, 1*2=2, 4*3=12, 50*1.
  const std::array<double, 6> ewma{10, 2, 30, 1, 4, 50};
  const std::array<std::int64_t, 6> active{0, 2, 0, 1, 2, 0};
  const std::array<int, 6> rank{2, 1, 4, 0, 3, 5};  // 0 = cheapest
  for (std::size_t i = 0; i < 6; ++i) {
    f.cores[i].ewma_bits.store(std::bit_cast<std::uint64_t>(ewma[i]));
    f.cores[i].active.store(active[i]);
  }
  const distkit::p2c_peak_ewma_picker picker;
  seeded_random random{std::mt19937_64(seed)};
  std::array<int, 6> counts{};
  const int picks = 300000;
  for (int k = 0; k < picks; ++k) ++counts[picker.choose({}, f.view(), random)];
  for (std::size_t i = 0; i < 6; ++i) {
    const double expected = static_cast<double>(5 - rank[i]) / 15.0;
    CHECK(std::abs(counts[i] / double(picks) - expected) < 0.005);
  }
}

TEST_CASE("load_balancer peak-EWMA jumps to a slower response and decays towards faster ones",
          "[load_balancer][ewma]") {
  manual_clock clock;
  distkit::load_balancer<std::string, distkit::p2c_peak_ewma_picker, distkit::no_outlier_detection, manual_clock> lb(
      {.ewma_decay = 1s}, {}, {}, clock);
  lb.add("a");
  lb.try_pick()->success(100ms);
  CHECK(lb.stats("a").ewma_latency_ns == Approx(100e6));
  clock.advance(1s);
  lb.try_pick()->success(10ms);
  CHECK(lb.stats("a").ewma_latency_ns == Approx(100e6 * std::exp(-1.0) + 10e6 * (1 - std::exp(-1.0))));
  clock.advance(1ms);
  lb.try_pick()->success(200ms);  // a peak is taken at once
  CHECK(lb.stats("a").ewma_latency_ns == Approx(200e6));
  // The handle measures the latency with the clock when none is given.
  auto r = lb.try_pick();
  clock.advance(300ms);
  r->success();
  CHECK(lb.stats("a").ewma_latency_ns == Approx(300e6));
}

TEST_CASE("load_balancer peak-EWMA decay weight agrees with exp(-x) to 1e-9 for every gap", "[load_balancer][ewma]") {
  for (double x = 0.0; x < 50.0; x = x == 0.0 ? 1e-12 : x * 1.01) {
    INFO("x = " << x);
    CHECK(std::abs(distkit::detail::ewma_keep(x) - std::exp(-x)) <= 1e-9 * std::exp(-x));
  }
  CHECK(distkit::detail::ewma_keep(0.0) == 1.0);
}

TEST_CASE("load_balancer affinity sends a key to its placement's endpoint and moves only the keys of an ejected one",
          "[load_balancer][affinity]") {
  manual_clock clock;
  distkit::outlier_detection health;
  health.consecutive_failures = 1;
  health.max_ejection_percent = 50;
  distkit::load_balancer<std::string, distkit::hash_picker<distkit::maglev_placement>, distkit::outlier_detection,
                         manual_clock>
      lb({}, {}, health, clock);
  const auto eps = names(5);
  for (const auto& e : eps) lb.add(e);
  // Reference: the same placement in a plain hash_ring.
  distkit::hash_ring<std::string, distkit::xxh3_hash, distkit::maglev_placement> ring;
  for (const auto& e : eps) ring.add(e);
  std::map<std::string, int> share;
  const int keys = 20000;
  for (int k = 0; k < keys; ++k) {
    const std::string key = "user:" + std::to_string(k);
    auto r = lb.try_pick(key);
    REQUIRE(r);
    REQUIRE(r->endpoint() == ring.node_for(key));
    ++share[r->endpoint()];
  }
  for (const auto& e : eps) CHECK(std::abs(share[e] / double(keys) - 0.2) < 0.01);  // Maglev: within 1%
  // Eject eps[2]: its keys go to their next endpoint in Maglev's order, every other key stays.
  for (int k = 0;; ++k) {
    const std::string key = "user:" + std::to_string(k);
    if (ring.node_for(key) == eps[2]) {
      lb.try_pick(key)->failure(1ms);
      break;
    }
  }
  REQUIRE(lb.stats(eps[2]).ejected);
  for (int k = 0; k < 2000; ++k) {
    const std::string key = "user:" + std::to_string(k);
    auto r = lb.try_pick(key);
    REQUIRE(r);
    const auto order = ring.nodes_for(key, 2);
    CHECK(r->endpoint() == (order[0] == eps[2] ? order[1] : order[0]));
  }
}

TEST_CASE("load_balancer bounded-load affinity keeps every endpoint under its cap", "[load_balancer][affinity]") {
  distkit::load_balancer<std::string, distkit::bounded_load_picker<>, distkit::no_outlier_detection> lb(
      {}, distkit::bounded_load_picker<>(0.25));
  const auto eps = names(4);
  for (const auto& e : eps) lb.add(e);
  std::vector<decltype(lb)::request> held;
  // One hot key: without the bound every request would go to one endpoint.
  for (int i = 0; i < 400; ++i) {
    auto r = lb.try_pick(std::string("hot"));
    REQUIRE(r);
    held.push_back(std::move(*r));
    const double cap = std::ceil(1.25 * static_cast<double>(held.size()) / 4.0);
    for (const auto& e : eps) REQUIRE(static_cast<double>(lb.stats(e).active) <= cap);
  }
  REQUIRE_THROWS_WITH(distkit::bounded_load_picker<>(0.0), Catch::Matchers::Contains("epsilon"));
}

TEST_CASE("load_balancer ejects an endpoint after consecutive failures and returns it after a probe",
          "[load_balancer][ejection]") {
  manual_clock clock;
  distkit::outlier_detection health;
  health.consecutive_failures = 5;
  health.base_ejection_time = 30s;
  health.max_ejection_percent = 50;
  distkit::load_balancer<std::string, distkit::round_robin_picker, distkit::outlier_detection, manual_clock> lb(
      {}, {}, health, clock);
  lb.add("a");
  lb.add("b");
  auto fail_a = [&](int times) {
    for (int i = 0; i < times * 2; ++i) {
      auto r = lb.try_pick();
      REQUIRE(r);
      if (r->endpoint() == "a") {
        r->failure(1ms);
      } else {
        r->success(1ms);
      }
    }
  };
  fail_a(4);
  (void)lb.try_pick();  // "a" (round robin), dropped without an outcome: nothing is recorded
  fail_a(0);
  {
    auto r = lb.try_pick();
    REQUIRE(r->endpoint() == "b");
    r->success(1ms);
  }
  {
    auto r = lb.try_pick();
    REQUIRE(r->endpoint() == "a");
    r->success(1ms);  // breaks the run: 4 failures, then a success
  }
  CHECK_FALSE(lb.stats("a").ejected);
  CHECK(lb.try_pick()->endpoint() == "b");
  fail_a(5);
  CHECK(lb.stats("a").ejected);
  CHECK(lb.ejected_count() == 1);
  for (int i = 0; i < 20; ++i) CHECK(lb.try_pick()->endpoint() == "b");
  clock.advance(30s + 1ms);
  // The ejection ran out: "a" gets one probe; its success returns it.
  bool probed = false;
  for (int i = 0; i < 4 && !probed; ++i) {
    auto r = lb.try_pick();
    if (r->endpoint() == "a") {
      probed = true;
      r->success(1ms);
    }
  }
  CHECK(probed);
  CHECK_FALSE(lb.stats("a").ejected);
  CHECK(lb.ejected_count() == 0);
  // A second ejection lasts base_ejection_time again; a failed probe ejects it for twice as
  // long (ejection_multiplier 2: each failed probe in a row doubles the wait).
  fail_a(5);
  REQUIRE(lb.stats("a").ejected);
  clock.advance(31s);
  bool failed_probe = false;
  for (int i = 0; i < 4 && !failed_probe; ++i) {
    auto r = lb.try_pick();
    if (r->endpoint() == "a") {
      failed_probe = true;
      r->failure(1ms);
    }
  }
  REQUIRE(failed_probe);
  REQUIRE(lb.stats("a").ejected);
  clock.advance(31s);
  for (int i = 0; i < 10; ++i) CHECK(lb.try_pick()->endpoint() == "b");
  clock.advance(30s);
  bool back = false;
  for (int i = 0; i < 4; ++i) back = back || lb.try_pick()->endpoint() == "a";
  CHECK(back);
}

TEST_CASE("load_balancer ejects on the breaker's failure rate", "[load_balancer][ejection]") {
  manual_clock clock;
  distkit::outlier_detection health;
  health.consecutive_failures = 0;
  health.failure_rate_threshold = 50;
  health.failure_rate_window = 20;
  health.failure_rate_minimum = 20;
  health.max_ejection_percent = 100;
  health.panic_threshold_percent = 0;
  distkit::load_balancer<std::string, distkit::round_robin_picker, distkit::outlier_detection, manual_clock> lb(
      {}, {}, health, clock);
  lb.add("a");
  lb.add("b");
  // "a" alternates success and failure: 9 of its first 19 fail, below the minimum of 20 calls.
  const auto next_a = [&](bool fail) {
    for (int i = 0; i < 10; ++i) {
      auto r = lb.try_pick();
      REQUIRE(r);
      if (r->endpoint() == "a") {
        fail ? r->failure(1ms) : r->success(1ms);
        return;
      }
      r->success(1ms);
    }
    FAIL("\"a\" was not picked");
  };
  for (int call = 0; call < 19; ++call) next_a(call % 2 == 1);
  CHECK_FALSE(lb.stats("a").ejected);
  next_a(false);
  CHECK_FALSE(lb.stats("a").ejected);  // 9 of 20 failed: 45%
  // The next failure drops the oldest outcome (a success): 10 of 20 = 50% trips the breaker.
  next_a(true);
  CHECK(lb.stats("a").ejected);
  for (int i = 0; i < 10; ++i) CHECK(lb.try_pick()->endpoint() == "b");
}

TEST_CASE("load_balancer latency sweep ejects an endpoint far slower than the median", "[load_balancer][ejection]") {
  manual_clock clock;
  distkit::outlier_detection health;
  health.latency_factor = 3.0;
  health.latency_minimum_hosts = 3;
  health.latency_minimum_requests = 5;
  health.interval = 10s;
  health.max_ejection_percent = 50;
  distkit::load_balancer<std::string, distkit::round_robin_picker, distkit::outlier_detection, manual_clock> lb(
      {}, {}, health, clock);
  const auto eps = names(4);
  for (const auto& e : eps) lb.add(e);
  auto traffic = [&](std::chrono::milliseconds slow) {
    for (int i = 0; i < 40; ++i) {
      auto r = lb.try_pick();
      r->success(r->endpoint() == eps[3] ? slow : 10ms);
    }
  };
  traffic(25ms);  // 2.5x the median: not an outlier
  clock.advance(10s);
  traffic(25ms);
  CHECK_FALSE(lb.stats(eps[3]).ejected);
  lb.try_pick()->success(10ms);  // fresh samples for the next interval
  traffic(200ms);
  clock.advance(10s);
  traffic(200ms);  // the first outcome after the interval runs the sweep
  CHECK(lb.stats(eps[3]).ejected);
  for (int i = 0; i < 30; ++i) CHECK(lb.try_pick()->endpoint() != eps[3]);
}

TEST_CASE("load_balancer ejects at most max_ejection_percent of the endpoints", "[load_balancer][ejection]") {
  manual_clock clock;
  distkit::outlier_detection health;
  health.consecutive_failures = 1;
  health.max_ejection_percent = 20;
  health.panic_threshold_percent = 0;
  distkit::load_balancer<std::string, distkit::round_robin_picker, distkit::outlier_detection, manual_clock> lb(
      {}, {}, health, clock);
  const auto eps = names(10);
  for (const auto& e : eps) lb.add(e);
  // Every endpoint fails once: only 2 of 10 (20%) may be out at a time.
  for (int i = 0; i < 30; ++i) {
    if (auto r = lb.try_pick()) r->failure(1ms);
  }
  CHECK(lb.ejected_count() == 2);
  int ejected = 0;
  for (const auto& e : eps) ejected += lb.stats(e).ejected ? 1 : 0;
  CHECK(ejected == 2);

  SECTION("one endpoint may always be ejected, even under a budget below one") {
    distkit::outlier_detection h = health;
    h.max_ejection_percent = 10;
    distkit::load_balancer<std::string, distkit::round_robin_picker, distkit::outlier_detection, manual_clock> small(
        {}, {}, h, clock);
    for (const auto& e : names(3)) small.add(e);
    for (int i = 0; i < 9; ++i) small.try_pick()->failure(1ms);
    CHECK(small.ejected_count() == 1);
  }
}

TEST_CASE("load_balancer panics below the threshold and spreads over every endpoint", "[load_balancer][panic]") {
  manual_clock clock;
  distkit::outlier_detection health;
  health.consecutive_failures = 1;
  health.max_ejection_percent = 100;
  health.panic_threshold_percent = 50;
  distkit::load_balancer<std::string, distkit::round_robin_picker, distkit::outlier_detection, manual_clock> lb(
      {}, {}, health, clock);
  const auto eps = names(4);
  for (const auto& e : eps) lb.add(e);
  // Eject 0 and 1 (2 of 4 available = 50%: not yet panic).
  for (int i = 0; i < 4; ++i) {
    auto r = lb.try_pick();
    if (r->endpoint() == eps[0] || r->endpoint() == eps[1]) {
      r->failure(1ms);
    } else {
      r->success(1ms);
    }
  }
  REQUIRE(lb.ejected_count() == 2);
  CHECK_FALSE(lb.panicking());
  auto counts = pick_counts(lb, 40);
  CHECK(counts.count(eps[0]) == 0);
  CHECK(counts.count(eps[1]) == 0);
  // Eject a third: 1 of 4 available (25% < 50%): panic, all four get traffic again.
  for (;;) {
    auto r = lb.try_pick();
    if (r->endpoint() == eps[2]) {
      r->failure(1ms);
      break;
    }
    r->success(1ms);
  }
  REQUIRE(lb.ejected_count() == 3);
  CHECK(lb.panicking());
  counts.clear();
  for (int i = 0; i < 40; ++i) ++counts[lb.try_pick()->endpoint()];  // no outcomes: nothing changes
  for (const auto& e : eps) CHECK(counts[e] == 10);
}

TEST_CASE("load_balancer slow start ramps a new endpoint's share", "[load_balancer][slow_start]") {
  manual_clock clock;
  const distkit::load_balancer_options config{.slow_start_window = 10s, .slow_start_min_weight_percent = 10};
  distkit::load_balancer<std::string, distkit::round_robin_picker, distkit::no_outlier_detection, manual_clock> lb(
      config, {}, {}, clock);
  lb.add("old");
  lb.add("older");
  CHECK(lb.stats("older").ramp == 1.0);  // the initial membership (before any pick) does not ramp
  lb.remove("older");
  (void)lb.try_pick();
  lb.add("new");
  CHECK(lb.stats("new").ramp == Approx(0.1));  // the floor
  clock.advance(2500ms);
  CHECK(lb.stats("new").ramp == Approx(0.25));
  clock.advance(2500ms);
  CHECK(lb.stats("new").ramp == Approx(0.5));
  // Round robin takes the endpoint's turn with probability `ramp` and passes a refused turn on:
  // its share is that of weight `ramp`, 0.5 / 1.5.
  const auto counts = pick_counts(lb, 40000);
  CHECK(std::abs(counts.at("new") / 40000.0 - 1.0 / 3.0) < 0.01);
  clock.advance(5s);
  CHECK(lb.stats("new").ramp == 1.0);
  const auto after = pick_counts(lb, 1000);
  CHECK(after.at("new") == 500);

  SECTION("aggression bends the curve") {
    distkit::load_balancer<std::string, distkit::p2c_least_request_picker, distkit::no_outlier_detection, manual_clock>
        curved({.slow_start_window = 10s, .slow_start_aggression = 2.0, .slow_start_min_weight_percent = 1}, {}, {},
               clock);
    curved.add("a");
    (void)curved.try_pick();
    curved.add("b");
    clock.advance(2500ms);
    CHECK(curved.stats("b").ramp == Approx(std::sqrt(0.25)));
  }
}

TEST_CASE("load_balancer slow start also ramps an endpoint returning from ejection", "[load_balancer][slow_start]") {
  manual_clock clock;
  distkit::outlier_detection health;
  health.consecutive_failures = 1;
  health.max_ejection_percent = 50;
  health.base_ejection_time = 1s;
  distkit::load_balancer<std::string, distkit::round_robin_picker, distkit::outlier_detection, manual_clock> lb(
      {.slow_start_window = 10s}, {}, health, clock);
  lb.add("a");
  lb.add("b");
  for (;;) {
    auto r = lb.try_pick();
    if (r->endpoint() == "a") {
      r->failure(1ms);
      break;
    }
  }
  REQUIRE(lb.stats("a").ejected);
  clock.advance(2s);
  for (int i = 0; i < 200 && lb.stats("a").ejected; ++i) lb.try_pick()->success(1ms);
  REQUIRE_FALSE(lb.stats("a").ejected);
  CHECK(lb.stats("a").ramp == Approx(0.1));
}

TEST_CASE("load_balancer request handles count in-flight requests and record once", "[load_balancer][handle]") {
  distkit::load_balancer<std::string, distkit::p2c_least_request_picker, distkit::outlier_detection> lb;
  lb.add("a");
  {
    auto r = lb.try_pick();
    CHECK(lb.stats("a").active == 1);
    auto moved = std::move(*r);
    CHECK_FALSE(r->pending());
    CHECK(moved.pending());
    CHECK(lb.stats("a").active == 1);
    moved.success(5ms);
    moved.failure(5ms);  // ignored: already reported
    CHECK(lb.stats("a").active == 0);
  }
  { auto dropped = lb.try_pick(); }
  CHECK(lb.stats("a").active == 0);
  CHECK(lb.stats("a").ewma_latency_ns == Approx(5e6));
}

TEST_CASE("load_balancer membership changes keep in-flight handles valid", "[load_balancer][membership]") {
  distkit::load_balancer<std::string> lb;
  CHECK_FALSE(lb.try_pick());
  lb.add("a");
  auto r = lb.try_pick();
  lb.remove("a");
  CHECK(lb.size() == 0);
  CHECK_FALSE(lb.try_pick());
  CHECK(r->endpoint() == "a");
  r->success(1ms);
  lb.add("a", 3);  // comes back with its state
  CHECK(lb.stats("a").weight == 3);
  CHECK(lb.stats("a").ewma_latency_ns == Approx(1e6));
  lb.set_weight("a", 2);
  CHECK(lb.stats("a").weight == 2);
  REQUIRE_THROWS_WITH(lb.add("a"), Catch::Matchers::Contains("endpoint"));
  REQUIRE_THROWS_WITH(lb.remove("b"), Catch::Matchers::Contains("endpoint"));
  REQUIRE_THROWS_WITH(lb.add("b", 0), Catch::Matchers::Contains("weight"));
  REQUIRE_THROWS_WITH(lb.set_weight("a", 0), Catch::Matchers::Contains("weight"));
}

TEST_CASE("load_balancer rejects bad configuration naming the parameter", "[load_balancer][config]") {
  using lb_t = distkit::load_balancer<std::string>;
  REQUIRE_THROWS_WITH(lb_t({.slow_start_aggression = 0.0}), Catch::Matchers::Contains("slow_start_aggression"));
  REQUIRE_THROWS_WITH(lb_t({.slow_start_min_weight_percent = 0}),
                      Catch::Matchers::Contains("slow_start_min_weight_percent"));
  REQUIRE_THROWS_WITH(lb_t({.ewma_decay = 0s}), Catch::Matchers::Contains("ewma_decay"));
  distkit::outlier_detection h;
  h.max_ejection_percent = 101;
  REQUIRE_THROWS_WITH(lb_t({}, {}, h), Catch::Matchers::Contains("max_ejection_percent"));
  h = {};
  h.panic_threshold_percent = 101;
  REQUIRE_THROWS_WITH(lb_t({}, {}, h), Catch::Matchers::Contains("panic_threshold_percent"));
  h = {};
  h.latency_factor = 0.5;
  REQUIRE_THROWS_WITH(lb_t({}, {}, h), Catch::Matchers::Contains("latency_factor"));
  h = {};
  h.failure_rate_threshold = 0;
  REQUIRE_THROWS_WITH(lb_t({}, {}, h), Catch::Matchers::Contains("failure_rate_threshold"));
  h = {};
  h.probes = 0;
  REQUIRE_THROWS_AS(lb_t({}, {}, h), std::invalid_argument);
}

TEST_CASE("deterministic aperture: few backends per client, the same load on every backend",
          "[load_balancer][aperture]") {
  for (std::size_t n : {1U, 2U, 3U, 7U, 10U, 64U, 100U, 257U}) {
    for (std::size_t m : {1U, 2U, 3U, 5U, 10U, 64U, 100U, 1000U}) {
      for (std::size_t min_aperture : {1U, 3U, 16U}) {
        INFO("backends " << n << ", clients " << m << ", min_aperture " << min_aperture);
        std::vector<double> load(n, 0.0);
        const std::size_t k = std::max<std::size_t>(1, (min_aperture * m + n - 1) / n);
        for (std::size_t i = 0; i < m; ++i) {
          const auto subset = distkit::deterministic_aperture(i, m, n, min_aperture);
          double total = 0;
          std::vector<bool> seen(n, false);
          for (const auto& [b, share] : subset) {
            REQUIRE(b < n);
            CHECK_FALSE(seen[b]);
            seen[b] = true;
            CHECK(share > 0);
            total += share;
            load[b] += share;
          }
          CHECK(total == Approx(1.0).epsilon(1e-12));
          if (k == 1) CHECK(subset.size() <= (n + m - 1) / m + 1);  // at most ceil(N/M) + 1
          CHECK(subset.size() >= std::min(min_aperture, n));
        }
        // Every backend gets exactly M/N of the clients' traffic.
        for (std::size_t b = 0; b < n; ++b) CHECK(load[b] == Approx(double(m) / double(n)).epsilon(1e-9));
      }
    }
  }
  // Deterministic: the same numbers give the same subset.
  CHECK(distkit::deterministic_aperture(3, 10, 25) == distkit::deterministic_aperture(3, 10, 25));
  CHECK_THROWS_WITH(distkit::deterministic_aperture(0, 0, 4), Catch::Contains("clients"));
  CHECK_THROWS_WITH(distkit::deterministic_aperture(5, 5, 4), Catch::Contains("client"));
  CHECK_THROWS_WITH(distkit::deterministic_aperture(0, 5, 0), Catch::Contains("backends"));
  CHECK_THROWS_WITH(distkit::deterministic_aperture(0, 5, 4, 0), Catch::Contains("min_aperture"));
}

TEST_CASE("deterministic aperture through load balancers: 50 clients, 20 backends, each backend within 10% of the mean",
          "[load_balancer][aperture]") {
  // Smooth weighted round robin per client, with the aperture's shares as weights.
  constexpr std::size_t clients = 50, backends = 20, requests = 4000;
  std::vector<std::size_t> hits(backends, 0);
  for (std::size_t i = 0; i < clients; ++i) {
    distkit::load_balancer<std::size_t, distkit::round_robin_picker, distkit::no_outlier_detection, manual_clock> lb;
    const auto subset = distkit::deterministic_aperture(i, clients, backends);
    CHECK(subset.size() <= backends / clients + 2);
    for (const auto& [b, share] : subset) lb.add(b, static_cast<std::uint32_t>(share * 1000 + 0.5));
    for (std::size_t r = 0; r < requests; ++r) {
      auto req = lb.try_pick();
      REQUIRE(req.has_value());
      ++hits[req->endpoint()];
      req->success(1ms);
    }
  }
  const double mean = double(clients * requests) / double(backends);
  for (std::size_t b = 0; b < backends; ++b) {
    INFO("backend " << b << ": " << hits[b] << " requests, mean " << mean);
    CHECK(std::abs(double(hits[b]) - mean) <= 0.10 * mean);
  }
}

TEST_CASE("load_report_weights: weights from backends' load reports, after a blackout, until they expire",
          "[load_balancer][load_report]") {
  manual_clock clock;
  distkit::load_balancer<std::string, distkit::round_robin_picker, distkit::no_outlier_detection, manual_clock> lb(
      {}, {}, {}, clock);
  lb.add("a");
  lb.add("b");
  lb.add("c", 5);
  distkit::load_report_weights weights{lb, {.blackout = 10s, .expiration = 180s}};
  // Within the blackout nothing changes.
  CHECK(weights.report("a", {.qps = 100, .utilization = 0.5}, clock.now()) == 1);
  CHECK(weights.report("b", {.qps = 100, .utilization = 1.0}, clock.now()) == 1);
  clock.advance(11s);
  // Capacity estimates: a serves 100 qps at half its capacity (200), b at all of it (100).
  CHECK(weights.report("a", {.qps = 100, .utilization = 0.5}, clock.now()) == 200);
  CHECK(weights.report("b", {.qps = 100, .utilization = 1.0}, clock.now()) == 100);
  CHECK(lb.weight("a") == 200);
  CHECK(lb.weight("b") == 100);
  // Smooth weighted round robin honours them: 200 : 100 : 5.
  auto counts = pick_counts(lb, 3050);
  CHECK(counts["a"] == 2000);
  CHECK(counts["b"] == 1000);
  CHECK(counts["c"] == 50);
  // Errors count against the weight (b: 10 errors per second at penalty 1 -> 100 / 1.1).
  CHECK(weights.report("b", {.qps = 100, .utilization = 1.0, .eps = 10}, clock.now()) == 100);  // within min_change
  CHECK(weights.report("b", {.qps = 100, .utilization = 1.0, .eps = 50}, clock.now()) == 67);
  // A small move is not published; zero load is no report.
  CHECK(weights.report("a", {.qps = 105, .utilization = 0.5}, clock.now()) == 200);
  CHECK(weights.report("a", {.qps = 0, .utilization = 0.5}, clock.now()) == 200);
  // b stops reporting: after the expiration it goes back to its weight before the reports.
  for (int i = 0; i < 18; ++i) {  // b's last report was 180 s ago after these
    clock.advance(10s);
    (void)weights.report("a", {.qps = 100, .utilization = 0.5}, clock.now());
    CHECK(weights.expire(clock.now()) == 0);
  }
  clock.advance(10s);
  (void)weights.report("a", {.qps = 100, .utilization = 0.5}, clock.now());
  CHECK(weights.expire(clock.now()) == 1);
  CHECK(lb.weight("b") == 1);
  CHECK(lb.weight("a") == 200);
  CHECK(lb.weight("c") == 5);
  CHECK_THROWS_WITH(weights.report("a", {.qps = -1, .utilization = 1}, clock.now()), Catch::Contains("qps"));
  CHECK_THROWS_WITH(weights.report("a", {.qps = 1, .utilization = std::nan("")}, clock.now()),
                    Catch::Contains("utilization"));
  CHECK_THROWS_WITH(weights.report("zz", {.qps = 1, .utilization = 1}, clock.now()), Catch::Contains("endpoint"));
  CHECK_THROWS_WITH((distkit::load_report_weights{lb, {.expiration = 0s}}), Catch::Contains("expiration"));
}

// ---- adaptive concurrency limits (distkit/adaptive_limit.hpp) ----------------------------------

TEST_CASE("adaptive limit AIMD: one more per sample while in use, times 0.9 on a drop, within bounds",
          "[load_balancer][adaptive_limit]") {
  distkit::aimd_limit aimd{{.initial = 10, .min = 5, .max = 15, .backoff_ratio = 0.9, .timeout = 1s}};
  CHECK(aimd.update(10, {.rtt = 10ms, .inflight = 5}) == 11);   // half in use: grows
  CHECK(aimd.update(10, {.rtt = 10ms, .inflight = 4}) == 10);   // app-limited: stays
  CHECK(aimd.update(15, {.rtt = 10ms, .inflight = 15}) == 15);  // at max
  CHECK(aimd.update(10, {.rtt = 10ms, .inflight = 5, .dropped = true}) == 9);
  CHECK(aimd.update(10, {.rtt = 2s, .inflight = 5}) == 9);                    // slower than the timeout: a drop
  CHECK(aimd.update(5, {.rtt = 10ms, .inflight = 5, .dropped = true}) == 5);  // at min

  distkit::adaptive_concurrency_limit<distkit::aimd_limit> limit{aimd};
  std::vector<distkit::adaptive_concurrency_limit<distkit::aimd_limit>::token> held;
  for (int i = 0; i < 10; ++i) {
    auto t = limit.try_acquire();
    REQUIRE(t.has_value());
    held.push_back(std::move(*t));
  }
  CHECK_FALSE(limit.try_acquire().has_value());  // the limit is reached: refused
  CHECK(limit.inflight() == 10);
  held.back().success(10ms);  // started with 10 in flight: grows to 11
  held.pop_back();
  CHECK(limit.limit() == 11);
  held.back().dropped();  // floor(11 * 0.9)
  held.pop_back();
  CHECK(limit.limit() == 9);
  held.clear();  // destroyed unreported: ignored
  CHECK(limit.inflight() == 0);
  CHECK(limit.limit() == 9);
  CHECK_THROWS_WITH(distkit::aimd_limit({.initial = 1, .min = 5}), Catch::Contains("initial"));
  CHECK_THROWS_WITH(distkit::aimd_limit({.backoff_ratio = 1.0}), Catch::Contains("backoff_ratio"));
}

TEST_CASE("adaptive limit AIMD finds a dependency's capacity from its drops", "[load_balancer][adaptive_limit]") {
  // A dependency that serves 40 requests at once and refuses a request that arrives while 40
  // are in progress. Closed loop: requests finish in the order they started, and the client
  // refills up to the limit after each.
  constexpr std::size_t capacity = 40;
  using limit_t = distkit::adaptive_concurrency_limit<distkit::aimd_limit>;
  limit_t limit{distkit::aimd_limit{{.initial = 10, .min = 1, .max = 1000}}};
  std::deque<std::pair<limit_t::token, bool>> in_flight;  // token, refused by the dependency
  std::size_t served = 0;
  const auto refill = [&] {
    while (auto t = limit.try_acquire()) {
      const bool refused = served >= capacity;
      if (!refused) ++served;
      in_flight.emplace_back(std::move(*t), refused);
    }
  };
  refill();
  double limit_sum = 0;
  std::size_t steps = 0, drops = 0;
  for (int step = 0; step < 20'000; ++step) {
    REQUIRE_FALSE(in_flight.empty());
    auto [token, refused] = std::move(in_flight.front());
    in_flight.pop_front();
    if (refused) {
      token.dropped();
    } else {
      --served;
      token.success(10ms);
    }
    refill();
    if (step >= 5'000) {  // after the first climb
      limit_sum += static_cast<double>(limit.limit());
      drops += refused ? 1 : 0;
      ++steps;
    }
  }
  // A sawtooth around the capacity: the mean limit near 40 (33 in this run), and a bounded
  // share of requests sent past it.
  const double mean = limit_sum / static_cast<double>(steps);
  const double drop_share = static_cast<double>(drops) / static_cast<double>(steps);
  INFO("mean limit " << mean << ", dropped " << drop_share * 100 << "% of requests");
  CHECK(mean >= 25);
  CHECK(mean <= 55);
  CHECK(drop_share < 0.35);  // 27% here: a drop is seen a full window after the overload began
}

TEST_CASE("adaptive limit Gradient2: grows while latency holds, shrinks when it jumps, ignores app-limited samples",
          "[load_balancer][adaptive_limit]") {
  distkit::gradient2_limit g{{.initial = 20, .min = 5, .max = 100, .smoothing = 0.2, .rtt_tolerance = 1.5}};
  double limit = 20;
  for (int i = 0; i < 50; ++i) limit = g.update(limit, {.rtt = 10ms, .inflight = 20});
  CHECK(limit > 40);  // + queue_size x smoothing per sample at a steady RTT
  const double before = limit;
  CHECK(g.update(limit, {.rtt = 10ms, .inflight = 2}) == before);  // less than half in use: unchanged
  // The RTT quadruples (a queue builds): each sample takes the limit down toward half.
  for (int i = 0; i < 20; ++i) limit = g.update(limit, {.rtt = 40ms, .inflight = 100});
  CHECK(limit < before / 2);
  // Within the tolerance (1.4x the long-term RTT) it does not shrink.
  distkit::gradient2_limit h{{.initial = 50, .min = 5, .max = 100}};
  double steady = 50;
  for (int i = 0; i < 100; ++i) steady = h.update(steady, {.rtt = 10ms, .inflight = 50});
  const double at = steady;
  steady = h.update(steady, {.rtt = 14ms, .inflight = 50});
  CHECK(steady >= at);
  CHECK(h.long_rtt() > 9ms);
  CHECK(h.long_rtt() < 11ms);
  CHECK_THROWS_WITH(distkit::gradient2_limit({.smoothing = 0}), Catch::Contains("smoothing"));
  CHECK_THROWS_WITH(distkit::gradient2_limit({.rtt_tolerance = 0.5}), Catch::Contains("rtt_tolerance"));
}

TEST_CASE("adaptive limit Gradient2: a drop reported without its RTT moves neither the limit nor the long RTT",
          "[load_balancer][adaptive_limit]") {
  // token::dropped() with no duration reports an RTT of 0. Read as a latency it would look like
  // the fastest answer ever seen: it dragged the long-term RTT toward zero and raised the limit
  // on an overload signal. Gradient2 reads only RTTs, so such a sample carries nothing for it.
  distkit::gradient2_limit g{{.initial = 20, .min = 5, .max = 100}};
  double limit = 20;
  for (int i = 0; i < 50; ++i) limit = g.update(limit, {.rtt = 10ms, .inflight = 20});
  const double before = limit;
  const auto long_before = g.long_rtt();
  for (int i = 0; i < 20; ++i) limit = g.update(limit, {.rtt = 0ns, .inflight = 20, .dropped = true});
  CHECK(limit == before);
  CHECK(g.long_rtt() == long_before);
  // Through the limiter's token, as a caller reports a refusal it could not time.
  distkit::adaptive_concurrency_limit<distkit::gradient2_limit> lim{
      distkit::gradient2_limit{{.initial = 10, .min = 5}}};
  const std::size_t start = lim.limit();
  for (int i = 0; i < 10; ++i) {
    auto t = lim.try_acquire();
    REQUIRE(t);
    t->dropped();
  }
  CHECK(lim.limit() <= start);
  // A drop that took its time is still a sample of that time.
  limit = g.update(before, {.rtt = 40ms, .inflight = 100, .dropped = true});
  CHECK(limit < before);
}

// The former names still compile (with a deprecation warning, silenced here) and are the same types.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static_assert(std::is_same_v<distkit::load_balancer_config, distkit::load_balancer_options>);
#pragma GCC diagnostic pop
