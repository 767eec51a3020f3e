// SPDX-License-Identifier: MIT
// Tests of distkit::circuit_breaker: resilience4j's state machine and edges over both windows.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "distkit/circuit_breaker.hpp"
#include "support/seed.hpp"

// Counts every allocation made by this test executable, to check that the closed-state path
// allocates nothing.
namespace {
std::atomic<long> allocations{0};
}  // namespace

// Every non-aligned form is replaced, so each allocation and its release meet in malloc/free.
#if defined(__GNUC__) && !defined(__clang__)
// g++ sees free() on memory from an operator new; here both are ours and use malloc/free.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
auto operator new(std::size_t size) -> void* {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
auto operator new[](std::size_t size) -> void* { return operator new(size); }
auto operator new(std::size_t size, const std::nothrow_t& /*tag*/) noexcept -> void* {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}
auto operator new[](std::size_t size, const std::nothrow_t& tag) noexcept -> void* { return operator new(size, tag); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t /*size*/) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t /*size*/) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t& /*tag*/) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t& /*tag*/) noexcept { std::free(p); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

using namespace std::chrono_literals;
using distkit::breaker_state;
using distkit::circuit_breaker_options;
using distkit::transition_cause;

namespace {

template <class Window>
using breaker_t = distkit::circuit_breaker<Window, distkit::manual_clock>;

// A config whose window is large enough that, with the clock standing still, both window types
// hold every call made in a test (100 calls or 100 seconds).
auto small_config() -> circuit_breaker_options {
  return {.minimum_number_of_calls = 10,
          .sliding_window_size = 100,
          .permitted_number_of_calls_in_half_open_state = 3,
          .wait_duration_in_open_state = 10s};
}

template <class B>
void succeed(B& b, int n, std::chrono::nanoseconds took = 1ms) {
  for (int i = 0; i < n; ++i) {
    auto p = b.try_acquire();
    REQUIRE(p.has_value());
    p->record_success(took);
  }
}

template <class B>
void fail(B& b, int n, std::chrono::nanoseconds took = 1ms) {
  for (int i = 0; i < n; ++i) {
    auto p = b.try_acquire();
    REQUIRE(p.has_value());
    p->record_failure(took);
  }
}

// Trips a breaker made from small_config(): ten failures.
template <class B>
void trip(B& b) {
  fail(b, 10);
  REQUIRE(b.state() == breaker_state::open);
}

}  // namespace

static_assert(std::is_same_v<distkit::v0::circuit_breaker<>, distkit::circuit_breaker<>>);

TEST_CASE("circuit_breaker defaults are resilience4j's", "[circuit_breaker][config]") {
  const circuit_breaker_options c;
  CHECK(c.failure_rate_threshold == 50.0F);
  CHECK(c.slow_call_rate_threshold == 100.0F);
  CHECK(c.slow_call_duration_threshold == 60s);
  CHECK(c.minimum_number_of_calls == 100);
  CHECK(c.sliding_window_size == 100);
  CHECK(c.permitted_number_of_calls_in_half_open_state == 10);
  CHECK(c.wait_duration_in_open_state == 60s);
  CHECK_FALSE(c.automatic_transition_from_open_to_half_open_enabled);
  CHECK(c.max_wait_duration_in_half_open_state == 0ns);
  distkit::circuit_breaker<> b;
  CHECK(b.state() == breaker_state::closed);
  CHECK(b.metrics().failure_rate == -1.0F);
}

TEST_CASE("circuit_breaker rejects invalid configuration naming the parameter", "[circuit_breaker][config]") {
  using cb = distkit::circuit_breaker<>;
  using tb = distkit::circuit_breaker<distkit::time_window>;
  auto expect = [](auto make, const char* parameter) {
    REQUIRE_THROWS_AS(make(), std::invalid_argument);
    REQUIRE_THROWS_WITH(make(), Catch::Matchers::Contains(parameter));
  };
  expect([] { return cb({.failure_rate_threshold = 0}); }, "failure_rate_threshold");
  expect([] { return cb({.failure_rate_threshold = 100.5F}); }, "failure_rate_threshold");
  expect([] { return cb({.slow_call_rate_threshold = -1}); }, "slow_call_rate_threshold");
  expect([] { return cb({.slow_call_duration_threshold = 0ns}); }, "slow_call_duration_threshold");
  expect([] { return cb({.minimum_number_of_calls = 0}); }, "minimum_number_of_calls");
  expect([] { return cb({.sliding_window_size = 0}); }, "sliding_window_size");
  expect([] { return cb({.sliding_window_size = distkit::count_window::max_size + 1}); }, "sliding_window_size");
  expect([] { return tb({.sliding_window_size = 86'401}); }, "sliding_window_size");
  expect([] { return cb({.permitted_number_of_calls_in_half_open_state = 0}); },
         "permitted_number_of_calls_in_half_open_state");
  expect([] { return cb({.permitted_number_of_calls_in_half_open_state = 70'000}); },
         "permitted_number_of_calls_in_half_open_state");
  expect([] { return cb({.wait_duration_in_open_state = 0s}); }, "wait_duration_in_open_state");
  expect([] { return cb({.wait_duration_multiplier = 0.5}); }, "wait_duration_multiplier");
  expect([] { return cb({.max_wait_duration_in_open_state = 1s}); }, "max_wait_duration_in_open_state");
  expect([] { return cb({.max_wait_duration_in_half_open_state = -1s}); }, "max_wait_duration_in_half_open_state");
  expect([] { return cb({.success_batch = 0}); }, "success_batch");
  CHECK_NOTHROW(tb({.sliding_window_size = 86'400}));
}

TEMPLATE_TEST_CASE("circuit_breaker stays closed below the minimum number of calls and opens at exactly it",
                   "[circuit_breaker][closed]", distkit::count_window, distkit::time_window) {
  distkit::manual_clock clock;
  breaker_t<TestType> b(small_config(), clock);
  fail(b, 9);
  CHECK(b.state() == breaker_state::closed);
  auto m = b.metrics();
  CHECK(m.buffered_calls == 9);
  CHECK(m.failed_calls == 9);
  CHECK(m.failure_rate == -1.0F);  // below the minimum: no rate yet
  fail(b, 1);
  CHECK(b.state() == breaker_state::open);
  CHECK(b.metrics().failure_rate == 100.0F);
}

TEMPLATE_TEST_CASE("circuit_breaker opens when the failure rate is exactly at the threshold",
                   "[circuit_breaker][closed]", distkit::count_window, distkit::time_window) {
  distkit::manual_clock clock;
  SECTION("failures last") {
    breaker_t<TestType> b(small_config(), clock);
    succeed(b, 5);
    fail(b, 4);
    CHECK(b.state() == breaker_state::closed);
    fail(b, 1);  // 5 of 10: 50% >= 50%
    CHECK(b.state() == breaker_state::open);
  }
  SECTION("a success completes the minimum and trips it") {
    breaker_t<TestType> b(small_config(), clock);
    fail(b, 5);
    succeed(b, 4);
    CHECK(b.state() == breaker_state::closed);
    succeed(b, 1);  // the 10th call is a success, and 5 of 10 failed
    CHECK(b.state() == breaker_state::open);
  }
  SECTION("just below the threshold stays closed") {
    breaker_t<TestType> b(small_config(), clock);
    fail(b, 4);
    succeed(b, 6);
    CHECK(b.state() == breaker_state::closed);
    CHECK(b.metrics().failure_rate == 40.0F);
    succeed(b, 50);
    CHECK(b.state() == breaker_state::closed);
  }
}

TEMPLATE_TEST_CASE("circuit_breaker is tripped by slow calls alone", "[circuit_breaker][slow]", distkit::count_window,
                   distkit::time_window) {
  distkit::manual_clock clock;
  auto cfg = small_config();
  cfg.slow_call_rate_threshold = 50;
  cfg.slow_call_duration_threshold = 2s;
  breaker_t<TestType> b(cfg, clock);
  succeed(b, 5, 2s);  // exactly at the duration threshold: not slow (strictly longer is)
  auto m = b.metrics();
  CHECK(m.slow_calls == 0);
  succeed(b, 4, 3s);
  CHECK(b.state() == breaker_state::closed);
  succeed(b, 1, 3s);  // 5 slow successes of 10: 50%
  CHECK(b.state() == breaker_state::open);
  m = b.metrics();
  CHECK(m.failed_calls == 0);
  CHECK(m.slow_calls == 5);
  CHECK(m.slow_call_rate == 50.0F);
}

TEMPLATE_TEST_CASE("circuit_breaker with default slow-call settings counts only calls over 60 s as slow",
                   "[circuit_breaker][slow]", distkit::count_window, distkit::time_window) {
  distkit::manual_clock clock;
  breaker_t<TestType> b({.minimum_number_of_calls = 4}, clock);
  succeed(b, 3, 61s);
  CHECK(b.state() == breaker_state::closed);
  succeed(b, 1, 61s);  // 100% slow >= 100%
  CHECK(b.state() == breaker_state::open);
}

TEMPLATE_TEST_CASE("circuit_breaker refuses calls while open and half-opens strictly after the wait",
                   "[circuit_breaker][open]", distkit::count_window, distkit::time_window) {
  distkit::manual_clock clock;
  breaker_t<TestType> b(small_config(), clock);
  trip(b);
  CHECK_FALSE(b.try_acquire().has_value());
  CHECK_THROWS_AS(b.call([] { return 1; }), distkit::circuit_open_error);
  auto refused = b.try_call([] { return 1; });
  CHECK_FALSE(refused.has_value());
  CHECK(refused.refused_by() == breaker_state::open);
  CHECK(b.metrics().not_permitted_calls == 3);
  CHECK(b.metrics().failed_calls == 10);  // open shows the closed window's figures
  clock.advance(10s);
  CHECK_FALSE(b.try_acquire().has_value());  // exactly at the wait: still open (resilience4j: isAfter)
  CHECK(b.state() == breaker_state::open);
  clock.advance(1ns);
  CHECK(b.state() == breaker_state::open);  // no automatic transition by default: a call moves it
  auto p = b.try_acquire();
  REQUIRE(p.has_value());
  CHECK(p->state() == breaker_state::half_open);
  CHECK(b.state() == breaker_state::half_open);
}

TEMPLATE_TEST_CASE("circuit_breaker half-open admits exactly the permitted probes and closes when they pass",
                   "[circuit_breaker][half_open]", distkit::count_window, distkit::time_window) {
  distkit::manual_clock clock;
  breaker_t<TestType> b(small_config(), clock);
  trip(b);
  clock.advance(11s);
  std::vector<typename breaker_t<TestType>::permit> probes;
  for (int i = 0; i < 3; ++i) {
    auto p = b.try_acquire();
    REQUIRE(p.has_value());
    probes.push_back(std::move(*p));
  }
  CHECK_FALSE(b.try_acquire().has_value());  // the fourth is refused while three are in flight
  CHECK(b.metrics().not_permitted_calls == 1);
  probes[0].record_success(1ms);
  probes[1].record_success(1ms);
  CHECK(b.state() == breaker_state::half_open);
  CHECK_FALSE(b.try_acquire().has_value());  // a reported probe does not free a slot
  probes[2].record_success(1ms);
  CHECK(b.state() == breaker_state::closed);
  auto m = b.metrics();
  CHECK(m.buffered_calls == 0);  // closed starts with an empty window
  CHECK(m.not_permitted_calls == 0);
}

TEMPLATE_TEST_CASE("circuit_breaker half-open reopens when the probes fail at the threshold",
                   "[circuit_breaker][half_open]", distkit::count_window, distkit::time_window) {
  distkit::manual_clock clock;
  auto cfg = small_config();
  cfg.permitted_number_of_calls_in_half_open_state = 4;
  breaker_t<TestType> b(cfg, clock);
  std::vector<distkit::state_transition> events;
  b.on_state_transition([&](const distkit::state_transition& e) { events.push_back(e); });
  trip(b);
  clock.advance(11s);
  succeed(b, 2);
  fail(b, 1);
  CHECK(b.state() == breaker_state::half_open);
  fail(b, 1);  // 2 of 4 probes failed: 50%
  CHECK(b.state() == breaker_state::open);
  auto m = b.metrics();
  CHECK(m.buffered_calls == 4);  // open shows the probes' figures
  CHECK(m.failure_rate == 50.0F);
  REQUIRE(events.size() == 3);
  CHECK(events[0].to == breaker_state::open);
  CHECK(events[0].cause == transition_cause::failure_rate_exceeded);
  CHECK(events[1].to == breaker_state::half_open);
  CHECK(events[1].cause == transition_cause::wait_elapsed);
  CHECK(events[2].from == breaker_state::half_open);
  CHECK(events[2].to == breaker_state::open);
  CHECK(events[0].generation + 2 == events[2].generation);
  CHECK(b.generation() == events[2].generation);
}

TEMPLATE_TEST_CASE("circuit_breaker half-open decides after min(minimum calls, permitted) results",
                   "[circuit_breaker][half_open]", distkit::count_window, distkit::time_window) {
  distkit::manual_clock clock;
  auto cfg = small_config();
  cfg.minimum_number_of_calls = 2;
  cfg.permitted_number_of_calls_in_half_open_state = 5;
  breaker_t<TestType> b(cfg, clock);
  fail(b, 2);
  REQUIRE(b.state() == breaker_state::open);
  clock.advance(11s);
  succeed(b, 1);
  CHECK(b.state() == breaker_state::half_open);
  succeed(b, 1);  // resilience4j's half-open window has minimum min(2, 5) = 2
  CHECK(b.state() == breaker_state::closed);
}

TEMPLATE_TEST_CASE("circuit_breaker ignores a late result recorded after a transition", "[circuit_breaker][generation]",
                   distkit::count_window, distkit::time_window) {
  distkit::manual_clock clock;
  breaker_t<TestType> b(small_config(), clock);
  auto late = b.try_acquire();
  REQUIRE(late.has_value());
  const auto closed_generation = late->generation();
  trip(b);
  clock.advance(11s);
  auto probe = b.try_acquire();
  REQUIRE(probe.has_value());
  CHECK(probe->generation() == closed_generation + 2);
  late->record_failure(1ms);  // from the closed state: must not count as a half-open probe
  CHECK(b.metrics().buffered_calls == 0);
  probe->record_success(1ms);
  succeed(b, 2);
  REQUIRE(b.state() == breaker_state::closed);
  CHECK(b.metrics().buffered_calls == 0);  // closed starts clean
  fail(b, 9);
  auto m = b.metrics();
  CHECK(m.buffered_calls == 9);
  CHECK(b.state() == breaker_state::closed);
}

TEMPLATE_TEST_CASE("circuit_breaker ignores a probe result that arrives after half-open ended",
                   "[circuit_breaker][generation]", distkit::count_window, distkit::time_window) {
  distkit::manual_clock clock;
  auto cfg = small_config();
  cfg.permitted_number_of_calls_in_half_open_state = 2;
  cfg.minimum_number_of_calls = 10;
  breaker_t<TestType> b(cfg, clock);
  trip(b);
  clock.advance(11s);
  auto first = b.try_acquire();
  auto second = b.try_acquire();
  REQUIRE(first.has_value());
  REQUIRE(second.has_value());
  b.reset();  // half-open ends while both probes are in flight
  first->record_failure(1ms);
  second.reset();  // a dropped probe of an older generation frees nothing in the new state
  CHECK(b.state() == breaker_state::closed);
  CHECK(b.metrics().buffered_calls == 0);
}

TEMPLATE_TEST_CASE("circuit_breaker dropped permit records nothing and frees its half-open slot",
                   "[circuit_breaker][permit]", distkit::count_window, distkit::time_window) {
  distkit::manual_clock clock;
  auto cfg = small_config();
  cfg.permitted_number_of_calls_in_half_open_state = 1;
  cfg.minimum_number_of_calls = 1;
  breaker_t<TestType> b(cfg, clock);
  { auto dropped = b.try_acquire(); }
  CHECK(b.metrics().buffered_calls == 0);
  b.force_open();  // resilience4j has no CLOSED -> HALF_OPEN edge
  b.transition_to(breaker_state::half_open);
  {
    auto probe = b.try_acquire();
    REQUIRE(probe.has_value());
    CHECK_FALSE(b.try_acquire().has_value());
  }  // dropped unrecorded: the slot comes back
  auto probe = b.try_acquire();
  REQUIRE(probe.has_value());
  probe->release();  // the explicit form
  probe = b.try_acquire();
  REQUIRE(probe.has_value());
  probe->record_success(1ms);
  CHECK(b.state() == breaker_state::closed);
}

TEMPLATE_TEST_CASE("circuit_breaker forced states override the state machine", "[circuit_breaker][forced]",
                   distkit::count_window, distkit::time_window) {
  distkit::manual_clock clock;
  breaker_t<TestType> b(small_config(), clock);
  SECTION("force_open refuses every call, even after the wait") {
    CHECK(b.force_open());
    CHECK_FALSE(b.force_open());  // already there
    clock.advance(1h);
    CHECK_FALSE(b.try_acquire().has_value());
    CHECK(b.state() == breaker_state::forced_open);
    CHECK(b.metrics().not_permitted_calls == 1);
  }
  SECTION("disable lets every call through and records nothing") {
    CHECK(b.disable());
    fail(b, 50);
    CHECK(b.state() == breaker_state::disabled);
    CHECK(b.metrics().buffered_calls == 0);
  }
  SECTION("metrics_only records but never trips") {
    CHECK(b.transition_to(breaker_state::metrics_only));
    fail(b, 20);
    CHECK(b.state() == breaker_state::metrics_only);
    CHECK(b.metrics().failed_calls == 20);
    CHECK(b.metrics().failure_rate == 100.0F);
  }
  SECTION("reset closes with an empty window and notifies") {
    int resets = 0;
    b.on_state_transition([&](const distkit::state_transition& e) { resets += e.cause == transition_cause::reset; });
    trip(b);
    b.reset();
    CHECK(b.state() == breaker_state::closed);
    CHECK(b.metrics().buffered_calls == 0);
    b.reset();  // from closed too
    CHECK(resets == 2);
    fail(b, 9);
    CHECK(b.state() == breaker_state::closed);
  }
}

TEMPLATE_TEST_CASE("circuit_breaker classifies exceptions with the record and ignore predicates",
                   "[circuit_breaker][call]", distkit::count_window, distkit::time_window) {
  distkit::manual_clock clock;
  auto cfg = small_config();
  cfg.ignore_exception = [](const std::exception_ptr& e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::invalid_argument&) {
      return true;
    } catch (...) {
      return false;
    }
  };
  cfg.record_exception = [](const std::exception_ptr& e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::out_of_range&) {
      return false;  // a "not found" is a success for the breaker
    } catch (...) {
      return true;
    }
  };
  breaker_t<TestType> b(cfg, clock);
  CHECK_THROWS_AS(b.call([]() -> int { throw std::invalid_argument("bad request"); }), std::invalid_argument);
  CHECK(b.metrics().buffered_calls == 0);  // ignored
  CHECK_THROWS_AS(b.call([]() -> int { throw std::out_of_range("absent"); }), std::out_of_range);
  auto m = b.metrics();
  CHECK(m.buffered_calls == 1);
  CHECK(m.failed_calls == 0);
  CHECK_THROWS_AS(b.call([] { throw std::runtime_error("down"); }), std::runtime_error);
  CHECK(b.metrics().failed_calls == 1);
  CHECK(b.call([](int x) { return x * 2; }, 21) == 42);
  int counter = 0;
  b.call([&counter] { ++counter; });
  CHECK(counter == 1);
  auto r = b.try_call([] { return std::string("ok"); });
  REQUIRE(r.has_value());
  CHECK(r.value() == "ok");
  int target = 0;
  int& ref = b.call([&target]() -> int& { return target; });
  CHECK(&ref == &target);
  CHECK(b.metrics().buffered_calls == 6);
}

TEMPLATE_TEST_CASE("circuit_breaker call measures duration with the clock and records slow calls",
                   "[circuit_breaker][call]", distkit::count_window, distkit::time_window) {
  distkit::manual_clock clock;
  auto cfg = small_config();
  cfg.slow_call_duration_threshold = 1s;
  breaker_t<TestType> b(cfg, clock);
  b.call([&clock] { clock.advance(2s); });
  CHECK(b.metrics().slow_calls == 1);
  b.call([&clock] { clock.advance(1s); });
  CHECK(b.metrics().slow_calls == 1);
}

TEMPLATE_TEST_CASE("circuit_breaker grows the open wait with consecutive trips, up to the cap",
                   "[circuit_breaker][open]", distkit::count_window, distkit::time_window) {
  distkit::manual_clock clock;
  auto cfg = small_config();
  cfg.permitted_number_of_calls_in_half_open_state = 1;
  cfg.wait_duration_multiplier = 2.0;
  cfg.max_wait_duration_in_open_state = 30s;
  breaker_t<TestType> b(cfg, clock);
  trip(b);
  auto reopen_after = [&](std::chrono::seconds expected) {
    clock.advance(expected);
    CHECK_FALSE(b.try_acquire().has_value());
    clock.advance(1ns);
    fail(b, 1);  // the single probe fails: open again
    CHECK(b.state() == breaker_state::open);
  };
  reopen_after(10s);
  reopen_after(20s);
  reopen_after(30s);  // 40 s capped at 30 s
  reopen_after(30s);
  clock.advance(31s);
  succeed(b, 1);
  CHECK(b.state() == breaker_state::closed);
  trip(b);  // closing forgot the growth
  reopen_after(10s);
}

TEMPLATE_TEST_CASE("circuit_breaker half-open times out back to open after its max wait",
                   "[circuit_breaker][half_open]", distkit::count_window, distkit::time_window) {
  distkit::manual_clock clock;
  auto cfg = small_config();
  cfg.max_wait_duration_in_half_open_state = 5s;
  breaker_t<TestType> b(cfg, clock);
  trip(b);
  clock.advance(11s);
  auto stuck = b.try_acquire();  // a probe that never reports
  REQUIRE(stuck.has_value());
  clock.advance(4s);
  CHECK(b.state() == breaker_state::half_open);
  clock.advance(1s);
  CHECK(b.state() == breaker_state::open);
  stuck->record_success(1ms);  // too late
  CHECK(b.state() == breaker_state::open);
}

TEMPLATE_TEST_CASE("circuit_breaker moves to half-open on observation when automatic transition is on",
                   "[circuit_breaker][open]", distkit::count_window, distkit::time_window) {
  distkit::manual_clock clock;
  auto cfg = small_config();
  cfg.automatic_transition_from_open_to_half_open_enabled = true;
  breaker_t<TestType> b(cfg, clock);
  trip(b);
  clock.advance(10s + 1ns);
  CHECK(b.state() == breaker_state::half_open);
}

TEMPLATE_TEST_CASE("circuit_breaker listeners run outside the breaker's lock", "[circuit_breaker][events]",
                   distkit::count_window, distkit::time_window) {
  distkit::manual_clock clock;
  breaker_t<TestType> b(small_config(), clock);
  std::vector<breaker_state> seen;
  // Re-entering the breaker from a listener would deadlock if it ran under the transition lock.
  b.on_state_transition([&](const distkit::state_transition& e) {
    seen.push_back(e.to);
    (void)b.metrics();
    if (e.to == breaker_state::open) b.transition_to(breaker_state::half_open);
  });
  b.on_state_transition([](const distkit::state_transition&) { throw std::runtime_error("listener bug"); });
  fail(b, 10);
  CHECK(b.state() == breaker_state::half_open);
  CHECK(seen == std::vector<breaker_state>{breaker_state::open, breaker_state::half_open});
}

TEST_CASE("circuit_breaker count window slides over the last N calls", "[circuit_breaker][count_window]") {
  distkit::manual_clock clock;
  distkit::circuit_breaker<distkit::count_window, distkit::manual_clock> b(
      {.minimum_number_of_calls = 4, .sliding_window_size = 4}, clock);
  succeed(b, 3);
  fail(b, 1);     // S S S F: 25%
  succeed(b, 1);  // S S F S
  CHECK(b.state() == breaker_state::closed);
  CHECK(b.metrics().buffered_calls == 4);
  fail(b, 1);  // S F S F: 50%
  CHECK(b.state() == breaker_state::open);
}

TEST_CASE("circuit_breaker count window holds exactly the last N outcomes (seeded, against a model)",
          "[circuit_breaker][count_window]") {
  // Long runs of fast successes (which the window records without writing once it is full of
  // them) between failures and slow calls: the counts always equal those of the last N.
  const std::uint64_t seed = distkit_test::test_seed("count window model");
  std::mt19937_64 rng(seed);
  for (const std::uint32_t size : {1U, 2U, 5U, 64U}) {
    distkit::count_window w(size);
    std::vector<distkit::call_outcome> model;  // every outcome, oldest first
    for (int step = 0; step < 4000; ++step) {
      INFO("seed " << seed << ", size " << size << ", step " << step);
      const auto kind = rng() % 32;
      const distkit::call_outcome o{kind == 0, kind == 1};
      const std::uint32_t n = (rng() % 4 == 0) ? 1 + static_cast<std::uint32_t>(rng() % 40) : 1;
      const distkit::window_snapshot got = w.record(o, n, 0);
      for (std::uint32_t i = 0; i < n; ++i) model.push_back(o);
      distkit::window_snapshot want;
      for (std::size_t i = model.size() > size ? model.size() - size : 0; i < model.size(); ++i) {
        ++want.calls;
        want.failed += model[i].failed ? 1 : 0;
        want.slow += model[i].slow ? 1 : 0;
      }
      REQUIRE(got.calls == want.calls);
      REQUIRE(got.failed == want.failed);
      REQUIRE(got.slow == want.slow);
    }
  }
}

TEST_CASE("circuit_breaker count window caps the minimum number of calls at its size",
          "[circuit_breaker][count_window]") {
  distkit::manual_clock clock;
  distkit::circuit_breaker<distkit::count_window, distkit::manual_clock> b({.sliding_window_size = 5}, clock);
  fail(b, 4);
  CHECK(b.state() == breaker_state::closed);
  fail(b, 1);  // minimum 100 capped at 5
  CHECK(b.state() == breaker_state::open);
}

TEST_CASE("circuit_breaker time window expires whole seconds and does not cap the minimum",
          "[circuit_breaker][time_window]") {
  distkit::manual_clock clock;
  distkit::circuit_breaker<distkit::time_window, distkit::manual_clock> b(
      {.minimum_number_of_calls = 10, .sliding_window_size = 5}, clock);
  fail(b, 4);
  clock.advance(1s);
  succeed(b, 5);
  CHECK(b.metrics().buffered_calls == 9);
  clock.advance(4s);  // t=5: the failures of t=0 fall out of [1, 5]
  auto m = b.metrics();
  CHECK(m.buffered_calls == 5);
  CHECK(m.failed_calls == 0);
  fail(b, 4);
  succeed(b, 1);  // 10 calls, 4 failed: 40%
  CHECK(b.state() == breaker_state::closed);
  clock.advance(1s);  // t=6: the 5 successes of t=1 expire; 4 F + 1 S remain
  fail(b, 4);         // 8 failed of 9: below the minimum of 10
  CHECK(b.state() == breaker_state::closed);
  succeed(b, 1);  // a success makes it 10 calls, 8 failed: trips
  CHECK(b.state() == breaker_state::open);
}

TEST_CASE("circuit_breaker time window: a success after old successes expire can trip it",
          "[circuit_breaker][time_window]") {
  distkit::manual_clock clock;
  distkit::circuit_breaker<distkit::time_window, distkit::manual_clock> b(
      {.minimum_number_of_calls = 10, .sliding_window_size = 10}, clock);
  succeed(b, 60);  // armed: fast successes are batched from here
  clock.advance(5s);
  fail(b, 50);  // 50 of 110
  CHECK(b.state() == breaker_state::closed);
  clock.advance(5s);  // t=10: the 60 successes of t=0 expire
  succeed(b, 1);      // 50 failed of 51
  CHECK(b.state() == breaker_state::open);
}

TEMPLATE_TEST_CASE("circuit_breaker batched successes change no transition single-threaded",
                   "[circuit_breaker][property]", distkit::count_window, distkit::time_window) {
  const auto seed = distkit_test::test_seed("circuit_breaker batched successes change no transition");
  std::mt19937_64 rng(seed);
  distkit::manual_clock clock;
  auto cfg = small_config();
  cfg.sliding_window_size = 20;
  cfg.minimum_number_of_calls = 15;
  cfg.slow_call_rate_threshold = 60;
  cfg.slow_call_duration_threshold = 1s;
  cfg.wait_duration_in_open_state = 2s;
  cfg.permitted_number_of_calls_in_half_open_state = 4;
  auto exact_cfg = cfg;
  exact_cfg.success_batch = 1;
  breaker_t<TestType> batched(cfg, clock);
  breaker_t<TestType> exact(exact_cfg, clock);
  int transitions = 0;
  exact.on_state_transition([&](const distkit::state_transition&) { ++transitions; });
  for (int i = 0; i < 20'000; ++i) {
    // Phases of health and sickness, so the breaker trips and recovers many times.
    const bool sick = (i / 500) % 2 == 1;
    const auto roll = rng() % 100;
    const bool failed = roll < (sick ? 70U : 3U);
    const bool slow = rng() % 100 < (sick ? 30U : 2U);
    const auto took = slow ? 2s : std::chrono::seconds(0);
    auto pa = batched.try_acquire();
    auto pb = exact.try_acquire();
    REQUIRE(pa.has_value() == pb.has_value());
    if (pa) {
      if (failed) {
        pa->record_failure(took);
        pb->record_failure(took);
      } else {
        pa->record_success(took);
        pb->record_success(took);
      }
    }
    REQUIRE(batched.state() == exact.state());
    if (i % 7 == 0) clock.advance(std::chrono::milliseconds(rng() % 900));
    if (i % 97 == 0) {
      const auto ma = batched.metrics();
      const auto mb = exact.metrics();
      REQUIRE(ma.buffered_calls == mb.buffered_calls);
      REQUIRE(ma.failed_calls == mb.failed_calls);
      REQUIRE(ma.slow_calls == mb.slow_calls);
      REQUIRE(ma.not_permitted_calls == mb.not_permitted_calls);
    }
  }
  CHECK(transitions > 10);
}

TEMPLATE_TEST_CASE("circuit_breaker closed-state calls allocate nothing", "[circuit_breaker][closed]",
                   distkit::count_window, distkit::time_window) {
  distkit::manual_clock clock;
  auto cfg = small_config();
  cfg.slow_call_duration_threshold = 1s;
  breaker_t<TestType> b(cfg, clock);
  succeed(b, 20);  // past the minimum: batching is on
  const long before = allocations.load();
  for (int i = 0; i < 1'000; ++i) {
    auto p = b.try_acquire();
    if (i % 10 == 0) {
      p->record_failure(1ms);
    } else if (i % 10 == 1) {
      p->record_success(2s);  // slow
    } else if (i % 10 == 2) {
      p.reset();  // dropped
    } else {
      p->record_success(1ms);
    }
    if (i % 100 == 0) clock.advance(700ms);
  }
  const auto m = b.metrics();
  CHECK(allocations.load() == before);
  CHECK(m.state == breaker_state::closed);
  CHECK(m.failed_calls > 0);
}

// ---- regressions: extreme durations and times, resilience4j's transitions ----

TEMPLATE_TEST_CASE("circuit_breaker with an unbounded half-open wait still closes when the probes pass",
                   "[circuit_breaker][half_open]", distkit::count_window, distkit::time_window) {
  distkit::manual_clock clock;
  auto cfg = small_config();
  cfg.max_wait_duration_in_half_open_state = std::chrono::nanoseconds::max();
  cfg.max_wait_duration_in_open_state = std::chrono::nanoseconds::max();
  breaker_t<TestType> b(cfg, clock);
  trip(b);
  clock.advance(10s + 1ns);
  succeed(b, 1);
  CHECK(b.state() == breaker_state::half_open);
  clock.advance(24h * 365);
  CHECK(b.state() == breaker_state::half_open);
  succeed(b, 2);
  CHECK(b.state() == breaker_state::closed);
}

TEMPLATE_TEST_CASE("circuit_breaker stays defined with a clock near its end and extreme call durations",
                   "[circuit_breaker][time]", distkit::count_window, distkit::time_window) {
  using tp = distkit::manual_clock::time_point;
  distkit::manual_clock clock(tp::max() - 30s);
  auto cfg = small_config();
  cfg.max_wait_duration_in_half_open_state = 1h;
  cfg.wait_duration_in_open_state = 1h;
  breaker_t<TestType> b(cfg, clock);
  trip(b);
  CHECK_FALSE(b.try_acquire().has_value());
  clock.advance(29s);
  CHECK(b.state() == breaker_state::open);  // the wait ends past the clock's range: never over
  // Durations at the ends of their types: the longest is slow, a negative one is not.
  breaker_t<TestType> c(small_config(), distkit::manual_clock{});
  for (int i = 0; i < 9; ++i) {
    auto p = c.try_acquire();
    REQUIRE(p.has_value());
    p->record_success(std::chrono::hours::min());
  }
  auto p = c.try_acquire();
  REQUIRE(p.has_value());
  p->record_success(std::chrono::hours::max());
  const auto m = c.metrics();
  CHECK(m.slow_calls == 1);
  CHECK(m.failed_calls == 0);
  CHECK(m.buffered_calls == 10);
}

TEMPLATE_TEST_CASE("circuit_breaker refuses the transitions resilience4j refuses", "[circuit_breaker][transitions]",
                   distkit::count_window, distkit::time_window) {
  distkit::manual_clock clock;
  breaker_t<TestType> b(small_config(), clock);
  CHECK_THROWS_AS(b.transition_to(breaker_state::half_open), std::logic_error);
  CHECK_THROWS_WITH(b.transition_to(breaker_state::half_open),
                    Catch::Matchers::Contains("CLOSED -> HALF_OPEN") && Catch::Matchers::Contains("not allowed"));
  CHECK(b.state() == breaker_state::closed);
  CHECK(b.generation() == 0);
  CHECK(b.transition_to(breaker_state::metrics_only));
  CHECK_THROWS_AS(b.transition_to(breaker_state::open), std::logic_error);
  CHECK_THROWS_AS(b.transition_to(breaker_state::half_open), std::logic_error);
  CHECK(b.state() == breaker_state::metrics_only);
  // Every other edge is allowed.
  CHECK(b.transition_to(breaker_state::forced_open));
  CHECK(b.transition_to(breaker_state::half_open));
  CHECK(b.transition_to(breaker_state::disabled));
  CHECK(b.transition_to(breaker_state::open));
  CHECK(b.transition_to(breaker_state::closed));
}

TEMPLATE_TEST_CASE("circuit_breaker transition_to(open) while open restarts the wait and counts a trip",
                   "[circuit_breaker][transitions]", distkit::count_window, distkit::time_window) {
  distkit::manual_clock clock;
  auto cfg = small_config();
  cfg.wait_duration_multiplier = 2.0;
  breaker_t<TestType> b(cfg, clock);
  trip(b);  // wait 10 s
  clock.advance(8s);
  std::vector<distkit::state_transition> events;
  b.on_state_transition([&](const distkit::state_transition& e) { events.push_back(e); });
  CHECK(b.transition_to(breaker_state::open));
  CHECK(events.empty());  // resilience4j publishes no event for OPEN -> OPEN
  clock.advance(20s);     // the second trip waits 20 s from the restart
  CHECK_FALSE(b.try_acquire().has_value());
  clock.advance(1ns);
  CHECK(b.try_acquire().has_value());
  CHECK(b.state() == breaker_state::half_open);
}

TEMPLATE_TEST_CASE("circuit_breaker counts FORCED_OPEN as a trip and enters OPEN from it with fresh figures",
                   "[circuit_breaker][forced]", distkit::count_window, distkit::time_window) {
  distkit::manual_clock clock;
  auto cfg = small_config();
  cfg.wait_duration_multiplier = 2.0;
  breaker_t<TestType> b(cfg, clock);
  fail(b, 5);
  CHECK(b.metrics().failed_calls == 5);
  CHECK(b.force_open());  // trip 1
  CHECK(b.metrics().buffered_calls == 0);
  CHECK(b.transition_to(breaker_state::open));  // trip 2: waits 20 s
  const auto m = b.metrics();
  CHECK(m.state == breaker_state::open);
  CHECK(m.buffered_calls == 0);
  CHECK(m.failed_calls == 0);
  CHECK(m.failure_rate == -1.0F);
  clock.advance(20s);
  CHECK_FALSE(b.try_acquire().has_value());
  clock.advance(1ns);
  CHECK(b.try_acquire().has_value());
}

TEMPLATE_TEST_CASE("circuit_breaker moves to the configured state when the half-open wait ends",
                   "[circuit_breaker][half_open]", distkit::count_window, distkit::time_window) {
  distkit::manual_clock clock;
  auto cfg = small_config();
  cfg.max_wait_duration_in_half_open_state = 5s;
  cfg.transition_to_state_after_wait_duration = breaker_state::closed;
  breaker_t<TestType> b(cfg, clock);
  std::vector<distkit::state_transition> events;
  b.on_state_transition([&](const distkit::state_transition& e) { events.push_back(e); });
  trip(b);
  clock.advance(11s);
  auto stuck = b.try_acquire();
  REQUIRE(stuck.has_value());
  clock.advance(5s);
  CHECK(b.state() == breaker_state::closed);
  REQUIRE_FALSE(events.empty());
  CHECK(events.back().from == breaker_state::half_open);
  CHECK(events.back().cause == transition_cause::half_open_timeout);
  fail(b, 9);  // a fresh closed window
  CHECK(b.state() == breaker_state::closed);
  for (breaker_state bad :
       {breaker_state::half_open, breaker_state::disabled, breaker_state::forced_open, breaker_state::metrics_only}) {
    auto wrong = small_config();
    wrong.transition_to_state_after_wait_duration = bad;
    CHECK_THROWS_WITH(breaker_t<TestType>(wrong, clock),
                      Catch::Matchers::Contains("transition_to_state_after_wait_duration"));
  }
}

TEMPLATE_TEST_CASE("circuit_breaker starts in the configured initial state", "[circuit_breaker][config]",
                   distkit::count_window, distkit::time_window) {
  distkit::manual_clock clock;
  auto cfg = small_config();
  CHECK(breaker_t<TestType>(cfg, clock).state() == breaker_state::closed);
  cfg.initial_state = breaker_state::open;
  breaker_t<TestType> open(cfg, clock);
  CHECK(open.state() == breaker_state::open);
  CHECK_FALSE(open.try_acquire().has_value());
  clock.advance(10s + 1ns);
  CHECK(open.try_acquire().has_value());
  CHECK(open.state() == breaker_state::half_open);
  for (breaker_state s :
       {breaker_state::half_open, breaker_state::disabled, breaker_state::forced_open, breaker_state::metrics_only}) {
    cfg.initial_state = s;
    breaker_t<TestType> b(cfg, clock);
    CHECK(b.state() == s);
  }
  cfg.initial_state = breaker_state::forced_open;
  breaker_t<TestType> forced(cfg, clock);
  CHECK_FALSE(forced.try_acquire().has_value());
}

namespace {

// A metrics policy that asks for call durations: it keeps every hook's arguments.
struct duration_recorder {
  struct shared {
    std::vector<std::pair<distkit::call_outcome, std::chrono::nanoseconds>> calls;
    std::vector<std::chrono::nanoseconds> ignored;
  };
  shared* log = nullptr;
  void on_call(distkit::call_outcome outcome, std::chrono::nanoseconds elapsed) noexcept {
    log->calls.emplace_back(outcome, elapsed);
  }
  void on_ignored(std::chrono::nanoseconds elapsed) noexcept { log->ignored.push_back(elapsed); }
  static void on_not_permitted(breaker_state /*state*/) noexcept {}
  static void on_transition(const distkit::state_transition& /*event*/) noexcept {}
};
static_assert(distkit::breaker_metrics_policy<duration_recorder>);

// One-argument hooks still model the concept (a policy that never asks for durations).
struct outcome_only {
  static void on_call(distkit::call_outcome /*outcome*/) noexcept {}
  static void on_ignored() noexcept {}
  static void on_not_permitted(breaker_state /*state*/) noexcept {}
  static void on_transition(const distkit::state_transition& /*event*/) noexcept {}
};
static_assert(distkit::breaker_metrics_policy<outcome_only>);
static_assert(distkit::breaker_metrics_policy<distkit::breaker_no_metrics>);

// A policy missing a hook, or with a hook that may throw, does not.
struct no_ignored_hook {
  static void on_call(distkit::call_outcome /*outcome*/) noexcept {}
  static void on_not_permitted(breaker_state /*state*/) noexcept {}
  static void on_transition(const distkit::state_transition& /*event*/) noexcept {}
};
static_assert(!distkit::breaker_metrics_policy<no_ignored_hook>);
struct throwing_duration_hook : outcome_only {
  void on_call(distkit::call_outcome /*outcome*/, std::chrono::nanoseconds /*elapsed*/) {}
};
static_assert(!distkit::breaker_metrics_policy<throwing_duration_hook>);  // its duration hook would be called

}  // namespace

TEST_CASE("circuit breaker: a metrics policy that asks for durations gets each call's elapsed",
          "[circuit_breaker][metrics]") {
  duration_recorder::shared log;
  distkit::manual_clock clock;
  distkit::circuit_breaker<distkit::count_window, distkit::manual_clock, duration_recorder> breaker{
      {.slow_call_duration_threshold = 1s, .ignore_exception = [](const std::exception_ptr&) { return true; }},
      clock,
      duration_recorder{&log}};

  breaker.try_acquire()->record_success(250ms);
  breaker.try_acquire()->record_success(2s);  // slow
  breaker.try_acquire()->record_failure(std::chrono::microseconds(7));
  breaker.try_acquire()->record_failure(-5ms);                       // negative: 0
  breaker.try_acquire()->record_success(std::chrono::hours::max());  // saturated, no overflow
  // call() measures with the breaker's clock: the callable advances it by 3 s, then throws an
  // exception the predicate ignores.
  CHECK_THROWS_AS(breaker.call([&]() -> int {
    clock.advance(3s);
    throw std::runtime_error("ignored");
  }),
                  std::runtime_error);
  CHECK(breaker.call([&] {
    clock.advance(40ms);
    return 1;
  }) == 1);

  REQUIRE(log.calls.size() == 6);
  CHECK(log.calls[0].second == 250ms);
  CHECK_FALSE(log.calls[0].first.slow);
  CHECK(log.calls[1].second == 2s);
  CHECK(log.calls[1].first.slow);
  CHECK(log.calls[2].second == std::chrono::microseconds(7));
  CHECK(log.calls[2].first.failed);
  CHECK(log.calls[3].second == 0ns);
  CHECK(log.calls[3].first.failed);
  CHECK(log.calls[4].second == std::chrono::nanoseconds(std::int64_t{1} << 62));
  CHECK(log.calls[4].first.slow);
  CHECK(log.calls[5].second == 40ms);
  REQUIRE(log.ignored.size() == 1);
  CHECK(log.ignored[0] == 3s);
  // A permit released without a result reports nothing.
  breaker.try_acquire()->release();
  CHECK(log.calls.size() == 6);
}

// The former names still compile (with a deprecation warning, silenced here) and are the same types.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static_assert(std::is_same_v<distkit::circuit_breaker_config, distkit::circuit_breaker_options>);
static_assert(std::is_same_v<distkit::breaker_metrics, distkit::breaker_stats>);
#pragma GCC diagnostic pop
