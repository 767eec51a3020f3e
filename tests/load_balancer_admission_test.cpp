// SPDX-License-Identifier: MIT
// tests/load_balancer_admission_test.cpp: admission inside the load balancer: an adaptive
// concurrency limit (AIMD, Gradient2) and a rate limit refuse picks before an endpoint is chosen;
// a refusal is counted and touches no endpoint; a request's outcome is the limit's sample.
//
// Compiled twice: normally, and with DISTKIT_LB_MUTATION_IGNORE_ADMISSION (the balancer picks
// even when its admission policy refuses), where only the mutation case is built: it checks
// that the harness of the first test reports the picks over the limit.
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <deque>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "distkit/load_balancer.hpp"
#include "support/seed.hpp"

using namespace std::chrono_literals;

namespace {

using distkit::manual_clock;

template <class Algorithm>
using limited_lb = distkit::load_balancer<std::string, distkit::round_robin_picker, distkit::outlier_detection,
                                          manual_clock, distkit::concurrency_limit_admission<Algorithm>>;
using aimd_admission = distkit::concurrency_limit_admission<distkit::aimd_limit>;
using gradient2_admission = distkit::concurrency_limit_admission<distkit::gradient2_limit>;

// A limit that never moves: AIMD with initial == min == max.
auto fixed_limit(double n) -> distkit::aimd_limit { return distkit::aimd_limit{{.initial = n, .min = n, .max = n}}; }

// What the balancer does at a fixed limit of 2, for each way a request can end.
struct limit_report {
  bool refused_at_limit = false;        // a third pick is refused while two are in flight
  bool counted = false;                 // and counted as a concurrency-limit refusal
  bool admitted_after_success = false;  // a request that ends frees its place...
  bool admitted_after_failure = false;
  bool admitted_after_release = false;
  bool admitted_after_destroy = false;
};

auto limit_frees_on_finish() -> limit_report {
  manual_clock clock;
  limited_lb<distkit::aimd_limit> lb({}, {}, {}, clock, aimd_admission{fixed_limit(2)});
  lb.add("a");
  lb.add("b");
  limit_report out;
  std::deque<limited_lb<distkit::aimd_limit>::request> held;
  for (int i = 0; i < 2; ++i) {
    auto r = lb.try_pick();
    REQUIRE(r);
    held.push_back(std::move(*r));
  }
  out.refused_at_limit = !lb.try_pick().has_value();
  out.counted = lb.pick_stats().concurrency_limit == 1;
  // Each way of ending one of the two in flight, then a pick that takes its place.
  const auto refill = [&]() -> bool {
    auto r = lb.try_pick();
    if (!r) return false;
    held.push_back(std::move(*r));
    return true;
  };
  held.front().success(1ms);
  held.pop_front();
  out.admitted_after_success = refill();
  held.front().failure(1ms);
  held.pop_front();
  out.admitted_after_failure = refill();
  held.front().release();
  held.pop_front();
  out.admitted_after_release = refill();
  held.pop_front();  // destroyed without an outcome
  out.admitted_after_destroy = refill();
  return out;
}

}  // namespace

#if defined(DISTKIT_LB_MUTATION_IGNORE_ADMISSION)

TEST_CASE("load_balancer admission mutation: picks past a refusal are seen by the limit harness",
          "[load_balancer][admission][mutation]") {
  // The normal build's checks, inverted: the third pick goes through the full limit, and no
  // refusal is counted.
  const limit_report r = limit_frees_on_finish();
  CHECK_FALSE(r.refused_at_limit);
  CHECK_FALSE(r.counted);
}

#else

namespace {

// Keeps as many requests in flight as the balancer admits; ends the oldest on demand.
template <class LB>
struct closed_loop {
  LB& lb;
  std::deque<typename LB::request> in_flight;

  void fill() {
    while (auto r = lb.try_pick()) in_flight.push_back(std::move(*r));
  }
  template <class End>
  void end_oldest(End&& end) {
    REQUIRE_FALSE(in_flight.empty());
    auto r = std::move(in_flight.front());
    in_flight.pop_front();
    end(r);
    fill();
  }
};

template <class LB>
auto active_sum(LB& lb) -> std::int64_t {
  std::int64_t sum = 0;
  for (const auto& e : lb.endpoints()) sum += lb.stats(e).active;
  return sum;
}

struct endpoint_view {
  std::int64_t active = 0;
  bool ejected = false;
  distkit::breaker_state breaker = distkit::breaker_state::closed;
  friend auto operator==(const endpoint_view&, const endpoint_view&) -> bool = default;
};

template <class LB>
auto endpoint_views(LB& lb) -> std::vector<endpoint_view> {
  std::vector<endpoint_view> out;
  for (const auto& e : lb.endpoints()) {
    const auto s = lb.stats(e);
    out.push_back({s.active, s.ejected, s.breaker});
  }
  return out;
}

}  // namespace

TEST_CASE("load_balancer with a concurrency limit refuses picks at the limit until a request ends",
          "[load_balancer][admission]") {
  const limit_report r = limit_frees_on_finish();
  CHECK(r.refused_at_limit);
  CHECK(r.counted);
  CHECK(r.admitted_after_success);
  CHECK(r.admitted_after_failure);
  CHECK(r.admitted_after_release);
  CHECK(r.admitted_after_destroy);
}

TEST_CASE("load_balancer admission: a moved request carries its token; a refusal is counted by reason",
          "[load_balancer][admission]") {
  manual_clock clock;
  limited_lb<distkit::aimd_limit> lb({}, {}, {}, clock, aimd_admission{fixed_limit(1)});
  CHECK_FALSE(lb.try_pick());  // no endpoint: refused before admission, nothing held
  CHECK(lb.pick_stats().no_endpoint == 1);
  CHECK(lb.admission().inflight() == 0);
  lb.add("a");
  auto first = lb.try_pick();
  REQUIRE(first);
  auto moved = std::move(*first);
  CHECK(lb.admission().inflight() == 1);
  CHECK_FALSE(lb.try_pick());
  auto again = lb.try_pick();
  CHECK_FALSE(again);
  first.reset();  // the moved-from handle gives nothing back
  CHECK(lb.admission().inflight() == 1);
  CHECK_FALSE(lb.try_pick());
  // Move assignment ends the target's own request first.
  auto other = std::move(moved);
  moved = std::move(other);
  CHECK(lb.admission().inflight() == 1);
  moved.success(1ms);
  moved.failure(1ms);  // ignored: already reported
  CHECK(lb.admission().inflight() == 0);
  const distkit::lb_pick_stats s = lb.pick_stats();
  CHECK(s.concurrency_limit == 3);
  CHECK(s.no_endpoint == 1);
  CHECK(s.rate_limit == 0);
}

TEST_CASE("load_balancer AIMD admission grows on successes and shrinks on failures and timeouts",
          "[load_balancer][admission][aimd]") {
  manual_clock clock;
  limited_lb<distkit::aimd_limit> lb(
      {}, {}, {}, clock,
      aimd_admission{distkit::aimd_limit{{.initial = 10, .min = 2, .max = 60, .backoff_ratio = 0.9, .timeout = 1s}}});
  for (int i = 0; i < 4; ++i) lb.add("e" + std::to_string(i));
  closed_loop<limited_lb<distkit::aimd_limit>> loop{lb, {}};
  loop.fill();
  CHECK(loop.in_flight.size() == 10);
  CHECK(active_sum(lb) == 10);
  for (int i = 0; i < 30; ++i) loop.end_oldest([](auto& r) { r.success(10ms); });
  const std::size_t grown = lb.admission().limit();
  INFO("after 30 successes: " << grown);
  CHECK(grown > 30);
  CHECK(static_cast<std::int64_t>(loop.in_flight.size()) == active_sum(lb));
  // A failure is a drop: times 0.9, rounded down.
  std::size_t before = lb.admission().limit();
  loop.end_oldest([](auto& r) { r.failure(10ms); });
  CHECK(lb.admission().limit() == static_cast<std::size_t>(std::floor(static_cast<double>(before) * 0.9)));
  // A success slower than the timeout is a drop too.
  before = lb.admission().limit();
  loop.end_oldest([](auto& r) { r.success(2s); });
  CHECK(lb.admission().limit() == static_cast<std::size_t>(std::floor(static_cast<double>(before) * 0.9)));
  // A run of failures takes it to its minimum; the balancer then admits no more than that.
  for (int i = 0; i < 60; ++i) loop.end_oldest([](auto& r) { r.failure(10ms); });
  CHECK(lb.admission().limit() == 2);
  while (loop.in_flight.size() > 2) {
    loop.in_flight.pop_front();  // released without an outcome: no sample
    loop.fill();
  }
  CHECK(lb.admission().limit() == 2);
  loop.fill();
  CHECK(loop.in_flight.size() == 2);
  CHECK(active_sum(lb) == 2);
  CHECK(lb.pick_stats().concurrency_limit > 0);
}

TEST_CASE("load_balancer AIMD admission ignores failures when told they say nothing about load",
          "[load_balancer][admission][aimd]") {
  manual_clock clock;
  limited_lb<distkit::aimd_limit> lb({}, {}, {}, clock,
                                     aimd_admission{distkit::aimd_limit{{.initial = 10, .min = 2, .max = 60}},
                                                    {.failures = distkit::lb_failure_sample::ignored}});
  lb.add("a");
  lb.add("b");
  closed_loop<limited_lb<distkit::aimd_limit>> loop{lb, {}};
  loop.fill();
  for (int i = 0; i < 20; ++i) loop.end_oldest([](auto& r) { r.failure(10ms); });
  CHECK(lb.admission().limit() == 10);
  CHECK(loop.in_flight.size() == 10);
}

TEST_CASE("load_balancer Gradient2 admission grows while latency holds and shrinks as it rises",
          "[load_balancer][admission][gradient2]") {
  manual_clock clock;
  limited_lb<distkit::gradient2_limit> lb(
      {}, {}, {}, clock, gradient2_admission{distkit::gradient2_limit{{.initial = 20, .min = 5, .max = 200}}});
  for (int i = 0; i < 4; ++i) lb.add("e" + std::to_string(i));
  closed_loop<limited_lb<distkit::gradient2_limit>> loop{lb, {}};
  loop.fill();
  CHECK(loop.in_flight.size() == 20);
  for (int i = 0; i < 200; ++i) loop.end_oldest([](auto& r) { r.success(10ms); });
  const std::size_t peak = lb.admission().limit();
  INFO("limit at a steady 10 ms: " << peak);
  CHECK(peak > 40);
  // Queueing: the latency quadruples, and the limit falls (by up to half per sample, smoothed).
  std::size_t previous = peak;
  bool never_rose = true;
  for (int i = 0; i < 30; ++i) {
    loop.end_oldest([](auto& r) { r.success(40ms); });
    never_rose = never_rose && lb.admission().limit() <= previous;
    previous = lb.admission().limit();
  }
  INFO("limit after 30 samples at 40 ms: " << lb.admission().limit());
  CHECK(never_rose);
  CHECK(lb.admission().limit() < peak / 2);
  CHECK(static_cast<std::int64_t>(loop.in_flight.size()) == active_sum(lb));
}

TEST_CASE("load_balancer rate admission allows the burst, then the rate, over manual time",
          "[load_balancer][admission][rate]") {
  manual_clock clock;
  using rate_lb = distkit::load_balancer<std::string, distkit::p2c_least_request_picker, distkit::outlier_detection,
                                         manual_clock, distkit::rate_limit_admission<>>;
  // 5 per second: a burst of 5, then one every 200 ms.
  rate_lb lb({}, {}, {}, clock, distkit::rate_limit_admission<>({.limit = 5, .window = 1s}));
  lb.add("a");
  lb.add("b");
  const auto admitted_now = [&] {
    int n = 0;
    while (auto r = lb.try_pick()) {
      r->success(1ms);
      ++n;
      REQUIRE(n <= 100);
    }
    return n;
  };
  CHECK(admitted_now() == 5);
  CHECK(lb.pick_stats().rate_limit == 1);
  clock.advance(199ms);
  CHECK(admitted_now() == 0);
  clock.advance(1ms);
  CHECK(admitted_now() == 1);
  clock.advance(1s);
  CHECK(admitted_now() == 5);  // back to a full burst, not more
  // Ten seconds in 10 ms steps, asking at every step: exactly one per 200 ms.
  int total = 0;
  for (int step = 0; step < 1000; ++step) {
    clock.advance(10ms);
    total += admitted_now();
  }
  CHECK(total == 50);
  // Refusals touched no endpoint.
  CHECK(lb.stats("a").active == 0);
  CHECK(lb.stats("b").active == 0);
  CHECK(lb.pick_stats().concurrency_limit == 0);
  CHECK(lb.pick_stats().no_endpoint == 0);
}

TEST_CASE("load_balancer refused picks leave every endpoint's in-flight count and breaker untouched",
          "[load_balancer][admission]") {
  const std::uint64_t seed = distkit_test::test_seed("load_balancer refused picks");
  std::mt19937_64 rng(seed);
  manual_clock clock;
  distkit::outlier_detection health;
  health.consecutive_failures = 2;
  health.base_ejection_time = 5s;
  health.max_ejection_percent = 100;
  health.panic_threshold_percent = 0;
  constexpr std::size_t limit = 4;
  limited_lb<distkit::aimd_limit> lb({}, {}, health, clock, aimd_admission{fixed_limit(limit)});
  for (int i = 0; i < 3; ++i) lb.add("e" + std::to_string(i));

  SECTION("an ejected endpoint's probe is still there after refusals") {
    // Eject e0 (two failures in a row), let its ejection run out, then fill the limit with
    // requests to the others and refuse many picks: e0's single probe must still be free.
    for (int failed = 0; failed < 2;) {
      auto r = lb.try_pick();
      REQUIRE(r);
      if (r->endpoint() == "e0") {
        r->failure(1ms);
        ++failed;
      } else {
        r->success(1ms);
      }
    }
    REQUIRE(lb.stats("e0").ejected);
    clock.advance(6s);
    std::deque<limited_lb<distkit::aimd_limit>::request> held;
    while (held.size() < limit) {
      auto r = lb.try_pick();
      REQUIRE(r);
      if (r->endpoint() == "e0") continue;  // the probe goes back unreported
      held.push_back(std::move(*r));
    }
    const auto before = endpoint_views(lb);
    for (int i = 0; i < 50; ++i) CHECK_FALSE(lb.try_pick());
    CHECK(endpoint_views(lb) == before);
    CHECK(lb.pick_stats().concurrency_limit == 50);
    held.pop_front();
    bool probed = false;
    for (int i = 0; i < 10 && !probed; ++i) {
      auto r = lb.try_pick();
      REQUIRE(r);
      if (r->endpoint() == "e0") {
        probed = true;
        r->success(1ms);
      }
    }
    CHECK(probed);
    CHECK_FALSE(lb.stats("e0").ejected);
  }

  SECTION("seeded random picks, outcomes and time") {
    std::deque<limited_lb<distkit::aimd_limit>::request> held;
    std::uint64_t refusals = 0;
    for (int step = 0; step < 5000; ++step) {
      INFO("seed " << seed << ", step " << step);
      const auto op = rng() % 10;
      if (op < 5) {
        const auto before = endpoint_views(lb);
        const auto stats_before = lb.pick_stats();
        auto r = lb.try_pick();
        if (r) {
          REQUIRE(held.size() < limit);
          held.push_back(std::move(*r));
        } else {
          ++refusals;
          const auto stats_after = lb.pick_stats();
          if (held.size() == limit) {
            CHECK(stats_after.concurrency_limit == stats_before.concurrency_limit + 1);
            CHECK(endpoint_views(lb) == before);
          } else {  // every endpoint ejected (panic is off): admitted, then given back
            CHECK(stats_after.no_endpoint == stats_before.no_endpoint + 1);
          }
        }
      } else if (op < 9 && !held.empty()) {
        const auto i = static_cast<std::ptrdiff_t>(rng() % held.size());
        auto r = std::move(held[static_cast<std::size_t>(i)]);
        held.erase(held.begin() + i);
        switch (rng() % 3) {
          case 0:
            r.success(1ms);
            break;
          case 1:
            r.failure(1ms);
            break;
          default:
            r.release();
        }
      } else {
        clock.advance(std::chrono::milliseconds(rng() % 2000));
      }
      REQUIRE(lb.admission().inflight() == held.size());
      REQUIRE(active_sum(lb) == static_cast<std::int64_t>(held.size()));
    }
    INFO("refused picks: " << refusals);
    CHECK(refusals > 0);
  }
}

TEST_CASE("load_balancer admission policies reject bad options naming the parameter", "[load_balancer][admission]") {
  CHECK_THROWS_WITH(aimd_admission(distkit::aimd_limit{}, {.failures = static_cast<distkit::lb_failure_sample>(7)}),
                    Catch::Contains("failures"));
  CHECK_THROWS_WITH(aimd_admission(distkit::aimd_limit{{.initial = 1, .min = 5}}), Catch::Contains("initial"));
  CHECK_THROWS_WITH(gradient2_admission(distkit::gradient2_limit{{.smoothing = 2}}), Catch::Contains("smoothing"));
  CHECK_THROWS_WITH(distkit::rate_limit_admission<>({.limit = 0, .window = 1s}), Catch::Contains("limit"));
  CHECK_THROWS_WITH(distkit::rate_limit_admission<>({.limit = 10, .window = 5ns}), Catch::Contains("window"));
  CHECK_THROWS_WITH(
      distkit::rate_limit_admission<>(distkit::local_store<distkit::gcra>({.limit = 10, .window = 1s}), ""),
      Catch::Contains("key"));
  CHECK_THROWS_AS(distkit::rate_limit_admission<>({.limit = 0, .window = 1s}), std::invalid_argument);
}

// The default policy adds nothing to a request handle: owner, endpoint, breaker permit, start.
static_assert(sizeof(distkit::load_balancer<std::string>::request) ==
              2 * sizeof(void*) +
                  sizeof(std::optional<distkit::circuit_breaker<distkit::count_window, distkit::steady_time>::permit>) +
                  sizeof(std::int64_t));
static_assert(std::is_empty_v<distkit::no_admission::ticket>);

#endif
