// SPDX-License-Identifier: MIT
// Tests of distkit::mpmc_queue and distkit::spsc_queue: FIFO (total and per producer), overflow
// policies, timeouts and stop tokens, close() under contention, and exactly-once delivery of
// every item under many threads (the TSan leg runs these).
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <latch>
#include <memory>
#include <random>
#include <stop_token>
#include <thread>
#include <vector>

#include "distkit/queue.hpp"
#include "support/seed.hpp"

namespace {

using namespace std::chrono_literals;

// A liveness check: waits a bounded time for `f`, failing (never hanging) if it does not finish.
template <class Future>
auto finishes(Future& f) -> bool {
  return f.wait_for(30s) == std::future_status::ready;
}

struct item {
  std::uint32_t producer = 0;
  std::uint32_t seq = 0;
};

}  // namespace

TEST_CASE("queue policies model their concepts", "[queue][concepts]") {
  STATIC_REQUIRE(distkit::queue_overflow_policy<distkit::blocking_overflow>);
  STATIC_REQUIRE(distkit::queue_overflow_policy<distkit::rejecting_overflow>);
  STATIC_REQUIRE(distkit::queue_overflow_policy<distkit::drop_oldest_overflow>);
  STATIC_REQUIRE(distkit::queue_element<std::unique_ptr<int>>);
  STATIC_REQUIRE(std::is_same_v<distkit::v0::mpmc_queue<int>, distkit::mpmc_queue<int>>);
}

TEST_CASE("queue rejects invalid configuration naming the parameter", "[queue][config]") {
  using Catch::Matchers::Contains;
  REQUIRE_THROWS_AS(distkit::mpmc_queue<int>(0), std::invalid_argument);
  REQUIRE_THROWS_WITH(distkit::mpmc_queue<int>(0), Contains("distkit::mpmc_queue: capacity"));
  REQUIRE_THROWS_WITH(distkit::spsc_queue<int>(0), Contains("distkit::spsc_queue: capacity"));
  REQUIRE_THROWS_WITH(distkit::mpmc_queue<int>((std::size_t{1} << 40) + 1), Contains("capacity"));
}

TEMPLATE_TEST_CASE("queue keeps FIFO order, reports full and empty, and leaves refused values intact", "[queue][fifo]",
                   distkit::mpmc_queue<std::unique_ptr<int>>, distkit::spsc_queue<std::unique_ptr<int>>) {
  TestType q(5);
  REQUIRE(q.capacity() == 8);
  REQUIRE(q.empty());
  REQUIRE_FALSE(q.try_pop());
  for (int i = 0; i < 8; ++i) REQUIRE(q.try_push(std::make_unique<int>(i)));
  REQUIRE(q.size() == 8);
  auto extra = std::make_unique<int>(99);
  REQUIRE_FALSE(q.try_push(std::move(extra)));
  REQUIRE(extra != nullptr);  // a refused push does not consume its argument
  REQUIRE(*extra == 99);
  for (int round = 0; round < 3; ++round) {  // wrap around the ring several times
    for (int i = 0; i < 8; ++i) {
      auto v = q.try_pop();
      REQUIRE(v);
      REQUIRE(**v == round * 8 + i);
      REQUIRE(q.try_push(std::make_unique<int>((round + 1) * 8 + i)));
    }
  }
  REQUIRE(q.size() == 8);
}

TEMPLATE_TEST_CASE("queue bulk operations move a contiguous prefix in order", "[queue][bulk]", distkit::mpmc_queue<int>,
                   distkit::spsc_queue<int>) {
  TestType q(8);
  std::vector<int> in{0, 1, 2, 3, 4, 5};
  REQUIRE(q.try_push_bulk(in.begin(), in.end()) == 6);
  std::vector<int> more{6, 7, 8, 9};
  REQUIRE(q.try_push_bulk(more.begin(), more.end()) == 2);  // only two slots left
  REQUIRE(q.try_push_bulk(more.begin() + 2, more.end()) == 0);
  std::vector<int> out;
  REQUIRE(q.try_pop_bulk(std::back_inserter(out), 3) == 3);
  REQUIRE(q.try_pop_bulk(std::back_inserter(out), 100) == 5);
  REQUIRE(out == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7});
  REQUIRE(q.try_pop_bulk(std::back_inserter(out), 100) == 0);
}

TEST_CASE("queue overflow policies: reject refuses, drop_oldest discards the oldest", "[queue][overflow]") {
  SECTION("reject") {
    distkit::mpmc_queue<int, distkit::rejecting_overflow> q(2);
    REQUIRE(q.push(1) == distkit::push_result::pushed);
    REQUIRE(q.push(2) == distkit::push_result::pushed);
    REQUIRE(q.push(3) == distkit::push_result::rejected);
    distkit::spsc_queue<int, distkit::rejecting_overflow> s(1);
    REQUIRE(s.push(1) == distkit::push_result::pushed);
    REQUIRE(s.push(2) == distkit::push_result::pushed);
    REQUIRE(s.push(3) == distkit::push_result::rejected);
  }
  SECTION("drop_oldest") {
    distkit::mpmc_queue<int, distkit::drop_oldest_overflow> q(4);
    for (int i = 0; i < 4; ++i) REQUIRE(q.push(i) == distkit::push_result::pushed);
    REQUIRE(q.push(4) == distkit::push_result::dropped_oldest);
    REQUIRE(q.push(5) == distkit::push_result::dropped_oldest);
    REQUIRE(q.dropped() == 2);
    std::vector<int> out;
    while (auto v = q.try_pop()) out.push_back(*v);
    REQUIRE(out == std::vector<int>{2, 3, 4, 5});
  }
}

TEMPLATE_TEST_CASE("queue blocking calls time out on a full or empty queue", "[queue][timeout]",
                   distkit::mpmc_queue<int>, distkit::spsc_queue<int>) {
  TestType q(1);
  REQUIRE_FALSE(q.pop_for(1ms));
  REQUIRE_FALSE(q.pop_until(std::chrono::steady_clock::time_point{}));
  REQUIRE(q.capacity() == 2);
  REQUIRE(q.push(7) == distkit::push_result::pushed);
  REQUIRE(q.push(6) == distkit::push_result::pushed);
  REQUIRE(q.push_for(8, 1ms) == distkit::push_result::timed_out);
  REQUIRE(q.push_until(8, std::chrono::steady_clock::time_point{}) == distkit::push_result::timed_out);
  REQUIRE(q.pop_for(1ms) == 7);
  REQUIRE(q.pop_for(1ms) == 6);
}

TEMPLATE_TEST_CASE("queue blocking calls return when stop is requested", "[queue][stop]", distkit::mpmc_queue<int>,
                   distkit::spsc_queue<int>) {
  SECTION("a blocked pop") {
    TestType q(1);
    std::stop_source stop;
    std::latch ready(1);
    auto popped = std::async(std::launch::async, [&] {
      ready.count_down();
      return q.pop(stop.get_token());
    });
    ready.wait();
    stop.request_stop();
    const bool woke = finishes(popped);
    q.close();  // if the stop request was missed, close releases the thread so the test fails, not hangs
    REQUIRE(woke);
    REQUIRE_FALSE(popped.get());
  }
  SECTION("a blocked push") {
    TestType q(1);
    REQUIRE(q.try_push(1));
    REQUIRE(q.try_push(0));
    std::stop_source stop;
    auto pushed = std::async(std::launch::async, [&] { return q.push(2, stop.get_token()); });
    stop.request_stop();
    const bool woke = finishes(pushed);
    q.close();
    REQUIRE(woke);
    REQUIRE(pushed.get() == distkit::push_result::stopped);
    REQUIRE(q.try_pop() == 1);
    REQUIRE(q.try_pop() == 0);
    REQUIRE_FALSE(q.try_pop());  // the stopped push left nothing behind
  }
}

TEMPLATE_TEST_CASE("queue close wakes every blocked caller and keeps what it accepted", "[queue][close]",
                   distkit::mpmc_queue<int>, distkit::spsc_queue<int>) {
  constexpr bool multi = std::is_same_v<TestType, distkit::mpmc_queue<int>>;
  const int waiters = multi ? 4 : 1;
  SECTION("blocked consumers") {
    TestType q(4);
    std::vector<std::future<std::optional<int>>> pops;
    for (int i = 0; i < waiters; ++i) pops.push_back(std::async(std::launch::async, [&] { return q.pop(); }));
    q.close();
    for (auto& f : pops) {
      REQUIRE(finishes(f));
      REQUIRE_FALSE(f.get());
    }
    REQUIRE(q.push(1) == distkit::push_result::closed);
    REQUIRE_FALSE(q.try_push(1));
  }
  SECTION("blocked producers, then the accepted items drain") {
    TestType q(2);
    REQUIRE(q.try_push(10));
    REQUIRE(q.try_push(11));
    std::vector<std::future<distkit::push_result>> pushes;
    for (int i = 0; i < waiters; ++i) pushes.push_back(std::async(std::launch::async, [&] { return q.push(99); }));
    q.close();
    for (auto& f : pushes) {
      REQUIRE(finishes(f));
      REQUIRE(f.get() == distkit::push_result::closed);
    }
    REQUIRE(q.pop() == 10);
    REQUIRE(q.pop() == 11);
    REQUIRE_FALSE(q.pop());  // closed and drained: returns at once
    REQUIRE(q.is_closed());
  }
}

namespace {

// An element whose first move construction (the one into the queue's slot) stops until released,
// so a test can hold a producer between claiming a slot and publishing it.
struct gated {
  struct gate {
    std::latch entered{1};
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    std::atomic<bool> armed{true};
    std::atomic<bool> opened{false};
    void open() {
      if (!opened.exchange(true)) release.set_value();
    }
  };
  // Opens the gate when a failed check leaves the test early, so the parked producer can finish
  // and the test fails instead of hanging.
  struct open_on_exit {
    gate& g;
    ~open_on_exit() { g.open(); }
  };
  gate* g = nullptr;
  int value = 0;
  gated(gate* gate_ptr, int v) : g(gate_ptr), value(v) {}
  gated(gated&& o) noexcept : g(o.g), value(o.value) {
    if (g != nullptr && g->armed.exchange(false)) {
      g->entered.count_down();
      g->released.wait();
    }
  }
  auto operator=(gated&& o) noexcept -> gated& {
    g = o.g;
    value = o.value;
    return *this;
  }
  ~gated() = default;
};

}  // namespace

TEST_CASE("mpmc_queue close keeps an item whose push claimed its slot before the close", "[queue][close]") {
  gated::gate g;
  distkit::mpmc_queue<gated> q(4);
  auto producer = std::async(std::launch::async, [&] { return q.try_push(gated{&g, 7}); });
  gated::open_on_exit guard{g};
  g.entered.wait();  // the producer holds a ticket and is copying its item in
  q.close();
  REQUIRE(q.is_closed());
  REQUIRE_FALSE(q.drained());  // one accepted item is still on its way
  auto consumer = std::async(std::launch::async, [&] { return q.pop(); });
  g.open();
  REQUIRE(finishes(producer));
  REQUIRE(producer.get());
  REQUIRE(finishes(consumer));
  auto v = consumer.get();
  REQUIRE(v);
  REQUIRE(v->value == 7);
  REQUIRE(q.drained());
}

TEST_CASE("spsc_queue close refuses a push caught between filling and publishing its slot", "[queue][close]") {
  gated::gate g;
  distkit::spsc_queue<gated> q(4);
  auto producer = std::async(std::launch::async, [&] { return q.try_push(gated{&g, 7}); });
  gated::open_on_exit guard{g};
  g.entered.wait();
  q.close();
  REQUIRE(q.drained());  // nothing was accepted
  g.open();
  REQUIRE(finishes(producer));
  REQUIRE_FALSE(producer.get());  // so the push must report refusal, and the item must not appear
  REQUIRE_FALSE(q.try_pop());
  REQUIRE(q.drained());
}

namespace {

// Producers push blocking (and in bulk) while consumers pop (blocking and in bulk); the queue is
// closed while they run. Every item whose push was accepted must be popped exactly once, no
// refused item may appear, and each consumer must see each producer's items in order.
template <class Queue>
void run_exactly_once(std::size_t producers, std::size_t consumers, std::uint32_t per_producer, bool close_early,
                      std::uint64_t seed) {
  Queue q(64);
  std::vector<std::vector<std::uint8_t>> accepted(producers, std::vector<std::uint8_t>(per_producer, 0));
  std::vector<std::vector<std::atomic<std::uint32_t>>> seen(producers);
  for (auto& s : seen) s = std::vector<std::atomic<std::uint32_t>>(per_producer);
  std::atomic<std::uint64_t> order_violations{0};
  std::atomic<std::uint64_t> unexpected{0};
  std::atomic<std::size_t> producers_done{0};
  {
    std::vector<std::jthread> threads;
    for (std::size_t c = 0; c < consumers; ++c) {
      threads.emplace_back([&, c] {
        std::vector<std::int64_t> last(producers, -1);
        std::mt19937_64 rng(seed + 1000 + c);
        auto take = [&](const item& it) {
          seen[it.producer][it.seq].fetch_add(1, std::memory_order_relaxed);
          if (static_cast<std::int64_t>(it.seq) <= last[it.producer]) order_violations.fetch_add(1);
          last[it.producer] = it.seq;
        };
        for (;;) {
          if (rng() % 4 == 0) {
            std::vector<item> batch;
            if (q.try_pop_bulk(std::back_inserter(batch), 1 + rng() % 8) != 0) {
              for (const auto& it : batch) take(it);
              continue;
            }
          }
          auto v = q.pop();
          if (!v) break;  // closed and drained
          take(*v);
        }
      });
    }
    for (std::size_t p = 0; p < producers; ++p) {
      threads.emplace_back([&, p] {
        std::mt19937_64 rng(seed + p);
        std::uint32_t i = 0;
        while (i < per_producer) {
          if (rng() % 4 == 0) {
            std::vector<item> batch;
            for (std::uint32_t k = 0; k < 1 + rng() % 8 && i + k < per_producer; ++k) {
              batch.push_back({static_cast<std::uint32_t>(p), i + k});
            }
            const std::size_t n = q.try_push_bulk(batch.begin(), batch.end());
            for (std::size_t k = 0; k < n; ++k) accepted[p][i + k] = 1;
            i += static_cast<std::uint32_t>(n);
            if (n != 0) continue;
          }
          const auto r = q.push(item{static_cast<std::uint32_t>(p), i});
          if (r == distkit::push_result::closed) break;
          if (r != distkit::push_result::pushed) unexpected.fetch_add(1);  // Catch2 asserts on the main thread only
          accepted[p][i++] = 1;
        }
        if (producers_done.fetch_add(1) + 1 == producers) q.close();
      });
    }
    if (close_early) {
      // Close while producers are still pushing: as soon as some items went through.
      while (q.size() == 0 && producers_done.load() < producers) std::this_thread::yield();
      q.close();
    }
  }
  std::uint64_t lost = 0, duplicated = 0, phantom = 0, delivered = 0;
  for (std::size_t p = 0; p < producers; ++p) {
    for (std::uint32_t i = 0; i < per_producer; ++i) {
      const auto n = seen[p][i].load();
      delivered += n;
      if (accepted[p][i] != 0 && n == 0) ++lost;
      if (n > 1) ++duplicated;
      if (accepted[p][i] == 0 && n != 0) ++phantom;
    }
  }
  INFO("producers " << producers << ", consumers " << consumers << ", delivered " << delivered);
  REQUIRE(lost == 0);
  REQUIRE(duplicated == 0);
  REQUIRE(phantom == 0);
  REQUIRE(order_violations.load() == 0);
  REQUIRE(unexpected.load() == 0);
  if (!close_early) REQUIRE(delivered == producers * per_producer);
}

}  // namespace

TEST_CASE("mpmc_queue delivers every accepted item exactly once under many threads, closed at the end or midway",
          "[queue][stress]") {
  const auto seed = distkit_test::test_seed("mpmc exactly once");
  for (std::size_t threads : {1, 2, 4}) {
    run_exactly_once<distkit::mpmc_queue<item>>(threads, threads, 20000 / static_cast<std::uint32_t>(threads), false,
                                                seed);
    run_exactly_once<distkit::mpmc_queue<item>>(threads, threads, 20000, true, seed);
  }
}

TEST_CASE("spsc_queue delivers every accepted item exactly once, closed at the end or midway", "[queue][stress]") {
  const auto seed = distkit_test::test_seed("spsc exactly once");
  run_exactly_once<distkit::spsc_queue<item>>(1, 1, 50000, false, seed);
  run_exactly_once<distkit::spsc_queue<item>>(1, 1, 50000, true, seed);
}

TEST_CASE("mpmc_queue keeps one FIFO order across producers", "[queue][fifo][total]") {
  // Each push is stamped from one global counter just before it starts and just after it returns.
  // Total FIFO means: if push A returned before push B started, A is popped before B. Walking the
  // pops in order, no item may have returned before a previously popped item had started.
  constexpr std::size_t producers = 4;
  constexpr std::uint32_t per_producer = 5000;
  struct stamped {
    std::uint64_t start = 0;
    std::uint32_t producer = 0, seq = 0;
  };
  distkit::mpmc_queue<stamped> q(128);
  std::atomic<std::uint64_t> clock{0};
  std::atomic<std::uint64_t> unexpected{0};
  std::vector<std::vector<std::uint64_t>> end_stamp(producers, std::vector<std::uint64_t>(per_producer));
  std::vector<stamped> popped;
  popped.reserve(producers * per_producer);
  {
    std::vector<std::jthread> threads;
    threads.emplace_back([&] {
      while (auto v = q.pop()) popped.push_back(*v);
    });
    std::atomic<std::size_t> done{0};
    for (std::size_t p = 0; p < producers; ++p) {
      threads.emplace_back([&, p] {
        for (std::uint32_t i = 0; i < per_producer; ++i) {
          stamped s{clock.fetch_add(1), static_cast<std::uint32_t>(p), i};
          if (q.push(s) != distkit::push_result::pushed) unexpected.fetch_add(1);
          end_stamp[p][i] = clock.fetch_add(1);
        }
        if (done.fetch_add(1) + 1 == producers) q.close();
      });
    }
  }
  REQUIRE(unexpected.load() == 0);
  REQUIRE(popped.size() == producers * per_producer);
  std::uint64_t max_start = 0;
  std::uint64_t violations = 0;
  for (const auto& s : popped) {
    if (end_stamp[s.producer][s.seq] < max_start) ++violations;
    max_start = std::max(max_start, s.start);
  }
  REQUIRE(violations == 0);
}

TEST_CASE("mpmc_queue drop_oldest accounts for every item under contention", "[queue][overflow][stress]") {
  distkit::mpmc_queue<std::uint32_t, distkit::drop_oldest_overflow> q(8);
  constexpr std::uint32_t per_producer = 20000;
  std::atomic<std::uint64_t> popped{0};
  std::atomic<std::uint64_t> dropped_results{0};
  std::atomic<std::uint64_t> unexpected{0};
  {
    std::vector<std::jthread> threads;
    std::atomic<int> done{0};
    for (int p = 0; p < 2; ++p) {
      threads.emplace_back([&] {
        for (std::uint32_t i = 0; i < per_producer; ++i) {
          const auto r = q.push(i);
          if (r != distkit::push_result::pushed && r != distkit::push_result::dropped_oldest) unexpected.fetch_add(1);
          if (r == distkit::push_result::dropped_oldest) dropped_results.fetch_add(1);
        }
        if (done.fetch_add(1) + 1 == 2) q.close();
      });
    }
    threads.emplace_back([&] {
      while (q.pop()) popped.fetch_add(1);
    });
  }
  REQUIRE(unexpected.load() == 0);
  REQUIRE(popped.load() + q.dropped() == 2 * per_producer);
  REQUIRE(dropped_results.load() <= q.dropped());
}

// The former names still compile (with a deprecation warning, silenced here) and are the same
// types as the worker pool's policies.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static_assert(std::is_same_v<distkit::queue_overflow::block, distkit::blocking_overflow>);
static_assert(std::is_same_v<distkit::queue_overflow::reject, distkit::rejecting_overflow>);
static_assert(std::is_same_v<distkit::queue_overflow::drop_oldest, distkit::drop_oldest_overflow>);
static_assert(std::is_same_v<distkit::queue_overflow_action, distkit::overflow_action>);
static_assert(!distkit::queue_overflow_policy<distkit::caller_runs_overflow>);
#pragma GCC diagnostic pop
