// SPDX-License-Identifier: MIT
// Tests of distkit::worker_pool: exactly-once execution, futures, errors, nested waits, bounded
// admission, shutdown accounting and the move-only task type.
#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <latch>
#include <limits>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "distkit/worker_pool.hpp"
#include "support/seed.hpp"

namespace {

using stealing_pool = distkit::worker_pool<distkit::work_stealing_queue>;
using global_pool = distkit::worker_pool<distkit::global_queue>;

constexpr std::size_t thread_counts[] = {1, 2, 4, 8};

// A gate that tasks wait on, so tests decide when workers may continue (no sleeping).
struct gate {
  std::promise<void> open_promise;
  std::shared_future<void> opened = open_promise.get_future().share();
  void open() { open_promise.set_value(); }
  void wait() const { opened.wait(); }
};

// Occupies every worker of `pool` with a task that waits on `g`; returns when all are running.
template <class Pool>
void occupy_all_workers(Pool& pool, gate& g) {
  std::latch started(static_cast<std::ptrdiff_t>(pool.concurrency()));
  for (std::size_t i = 0; i < pool.concurrency(); ++i) {
    // The task holds its own copy of the shared future, so the gate may go out of scope first.
    (void)pool.post([&started, opened = g.opened] {
      started.count_down();
      opened.wait();
    });
  }
  started.wait();
}

template <class Pool>
auto fib_futures(Pool& pool, int n) -> long {
  if (n < 2) return n;
  auto first = pool.submit([&pool, n] { return fib_futures(pool, n - 1); });
  const long second = fib_futures(pool, n - 2);
  return pool.get(first) + second;
}

template <class Pool>
auto fib_group(Pool& pool, int n) -> long {
  if (n < 2) return n;
  long first = 0;
  distkit::task_group group{pool};
  group.run([&] { first = fib_group(pool, n - 1); });
  const long second = fib_group(pool, n - 2);
  group.wait();
  return first + second;
}

constexpr auto fib_plain(int n) -> long { return n < 2 ? n : fib_plain(n - 1) + fib_plain(n - 2); }

// What task_group uses to drive a pool; the pool keeps it private (task_group is its friend).
template <class P>
concept exposes_group_hooks = requires(P& p, distkit::pool_task t) {
  p.post_group_task(std::move(t));
} || requires(P& p) { p.notify_waiters(); } || requires(P& p, std::exception_ptr e) { p.report_error(e); };

}  // namespace

TEST_CASE("worker_pool policies model their concepts", "[worker_pool][concepts]") {
  STATIC_REQUIRE(distkit::task_queue_policy<distkit::work_stealing_queue>);
  STATIC_REQUIRE(distkit::task_queue_policy<distkit::global_queue>);
  STATIC_REQUIRE(distkit::overflow_policy<distkit::blocking_overflow>);
  STATIC_REQUIRE(distkit::overflow_policy<distkit::rejecting_overflow>);
  STATIC_REQUIRE(distkit::overflow_policy<distkit::caller_runs_overflow>);
  STATIC_REQUIRE_FALSE(distkit::task_queue_policy<int>);
  STATIC_REQUIRE_FALSE(distkit::overflow_policy<distkit::global_queue>);
  STATIC_REQUIRE(std::is_same_v<distkit::v0::worker_pool<>, distkit::worker_pool<>>);
  STATIC_REQUIRE(std::is_same_v<distkit::worker_pool<>::post_result, void>);
  STATIC_REQUIRE(
      std::is_same_v<distkit::worker_pool<distkit::work_stealing_queue, distkit::rejecting_overflow>::post_result,
                     distkit::admission>);
  STATIC_REQUIRE(sizeof(distkit::pool_task) == 64);
  STATIC_REQUIRE(!std::is_copy_constructible_v<distkit::pool_task>);
  STATIC_REQUIRE(std::is_nothrow_move_constructible_v<distkit::pool_task>);
}

TEST_CASE("worker_pool keeps the hooks task_group drives private", "[worker_pool][concepts]") {
  struct public_hooks {
    void post_group_task(distkit::pool_task) {}
    void notify_waiters() noexcept {}
    void report_error(std::exception_ptr) noexcept {}
  };
  STATIC_REQUIRE(exposes_group_hooks<public_hooks>);  // the check itself can see public hooks
  STATIC_REQUIRE_FALSE(exposes_group_hooks<distkit::worker_pool<>>);
  STATIC_REQUIRE_FALSE(exposes_group_hooks<distkit::worker_pool<distkit::global_queue, distkit::rejecting_overflow>>);
}

TEST_CASE("worker_pool rejects invalid configuration naming the parameter", "[worker_pool][config]") {
  using Catch::Matchers::Contains;
  REQUIRE_THROWS_AS(distkit::worker_pool<>(0), std::invalid_argument);
  REQUIRE_THROWS_WITH(distkit::worker_pool<>(0), Contains("threads"));
  REQUIRE_THROWS_WITH(distkit::worker_pool<>(5000), Contains("threads"));
  using rejecting = distkit::worker_pool<distkit::work_stealing_queue, distkit::rejecting_overflow>;
  REQUIRE_THROWS_AS(rejecting(distkit::worker_pool_options{.threads = 2, .capacity = 0}), std::invalid_argument);
  REQUIRE_THROWS_WITH(rejecting(distkit::worker_pool_options{.threads = 2, .capacity = 0}), Contains("capacity"));
  using caller = distkit::worker_pool<distkit::global_queue, distkit::caller_runs_overflow>;
  REQUIRE_THROWS_WITH(caller(distkit::worker_pool_options{.threads = 1, .capacity = 0}), Contains("capacity"));
}

TEST_CASE("pool_task stores small callables inline, boxes large ones and is move-only", "[worker_pool][task]") {
  int calls = 0;
  distkit::pool_task small([&calls] { ++calls; });
  distkit::pool_task moved(std::move(small));
  CHECK_FALSE(static_cast<bool>(small));  // NOLINT(bugprone-use-after-move): checking the moved-from state
  moved();
  CHECK(calls == 1);

  auto owned = std::make_unique<int>(41);
  std::array<std::uint64_t, 32> big{};  // larger than the inline buffer
  big[31] = 1;
  distkit::pool_task large([&calls, p = std::move(owned), big] { calls += *p + static_cast<int>(big[31]); });
  distkit::pool_task target;
  target = std::move(large);
  target();
  CHECK(calls == 43);
  target.reset();
  CHECK_FALSE(static_cast<bool>(target));
}

TEMPLATE_TEST_CASE("worker_pool runs every accepted task exactly once under many submitters",
                   "[worker_pool][exactly_once]", stealing_pool, global_pool) {
  constexpr std::size_t submitters = 4;
  constexpr std::size_t per_submitter = 5000;
  for (std::size_t threads : thread_counts) {
    CAPTURE(threads);
    TestType pool(threads);
    std::vector<std::atomic<int>> runs(submitters * per_submitter * 2);
    std::vector<std::thread> producers;
    for (std::size_t s = 0; s < submitters; ++s) {
      producers.emplace_back([&, s] {
        for (std::size_t i = 0; i < per_submitter; ++i) {
          const std::size_t id = (s * per_submitter + i) * 2;
          // Every task also submits one nested task from inside the pool.
          pool.post([&pool, &runs, id] {
            runs[id].fetch_add(1, std::memory_order_relaxed);
            pool.post([&runs, id] { runs[id + 1].fetch_add(1, std::memory_order_relaxed); });
          });
        }
      });
    }
    for (auto& t : producers) t.join();
    pool.wait_idle();
    std::size_t wrong = 0;
    for (auto& r : runs) wrong += r.load() != 1 ? 1 : 0;
    CHECK(wrong == 0);
    const auto s = pool.stats();
    CHECK(s.submitted == runs.size());
    CHECK(s.completed == runs.size());
    CHECK(s.queued == 0);
    CHECK(s.threads == threads);
  }
}

TEMPLATE_TEST_CASE("worker_pool submit delivers results and exceptions through futures", "[worker_pool][future]",
                   stealing_pool, global_pool) {
  for (std::size_t threads : thread_counts) {
    CAPTURE(threads);
    TestType pool(threads);
    auto sum = pool.submit([](int a, int b) { return a + b; }, 40, 2);
    auto text = pool.submit([](std::string s) { return s + "!"; }, std::string("done"));
    auto nothing = pool.submit([] {});
    auto failing = pool.submit([]() -> int { throw std::runtime_error("task failed"); });
    auto move_only = pool.submit([p = std::make_unique<int>(7)] { return *p; });
    CHECK(sum.get() == 42);
    CHECK(text.get() == "done!");
    nothing.get();
    CHECK_THROWS_WITH(failing.get(), "task failed");
    CHECK(move_only.get() == 7);
    pool.wait_idle();  // exceptions of submitted tasks are not also sent to the error handler
  }
}

TEMPLATE_TEST_CASE("worker_pool sends posted-task exceptions to the error handler", "[worker_pool][errors]",
                   stealing_pool, global_pool) {
  for (std::size_t threads : thread_counts) {
    CAPTURE(threads);
    SECTION("the default handler keeps the first exception and wait_idle rethrows it once") {
      TestType pool(threads);
      pool.post([] { throw std::runtime_error("posted failure"); });
      pool.post([] {});
      REQUIRE_THROWS_WITH(pool.wait_idle(), "posted failure");
      REQUIRE_NOTHROW(pool.wait_idle());
      CHECK(pool.stats().failed == 1);
    }
    SECTION("a custom handler receives every exception") {
      TestType pool(threads);
      std::atomic<int> seen{0};
      pool.set_error_handler([&seen](std::exception_ptr e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::logic_error&) {
          seen.fetch_add(1);
        }
      });
      for (int i = 0; i < 100; ++i) pool.post([] { throw std::logic_error("bad"); });
      REQUIRE_NOTHROW(pool.wait_idle());
      CHECK(seen.load() == 100);
      CHECK(pool.stats().failed == 100);
    }
    SECTION("task_group::wait rethrows the first exception of its tasks") {
      TestType pool(threads);
      distkit::task_group group{pool};
      std::atomic<int> ran{0};
      for (int i = 0; i < 10; ++i) {
        group.run([&ran, i] {
          ran.fetch_add(1);
          if (i == 3) throw std::out_of_range("group failure");
        });
      }
      REQUIRE_THROWS_AS(group.wait(), std::out_of_range);
      CHECK(ran.load() == 10);
      REQUIRE_NOTHROW(group.wait());
    }
  }
}

TEMPLATE_TEST_CASE(
    "worker_pool nested waits stay shallow: repeated fork-join neither overflows the stack nor deadlocks",
    "[worker_pool][nested]", stealing_pool, global_pool) {
  // Workers that help while they wait could pick up each other's subtrees and nest until the
  // stack overflows (fib(25) on a two-thread global queue did). Own-deque helping and the depth
  // bound keep the nesting near the recursion depth.
  for (std::size_t threads : {std::size_t{2}, std::size_t{4}}) {
    CAPTURE(threads);
    TestType pool(threads);
    for (int round = 0; round < 4; ++round) {
      auto root = pool.submit([&pool] { return fib_group(pool, 24); });
      REQUIRE(root.get() == fib_plain(24));
    }
    // A chain deeper than the helping bound: each level waits on the one task it submitted.
    std::function<int(int)> chain = [&](int depth) -> int {
      if (depth == 0) return 0;
      auto next = pool.submit([&chain, depth] { return chain(depth - 1); });
      return pool.get(next) + 1;
    };
    auto deep = pool.submit([&chain] { return chain(600); });
    REQUIRE(deep.get() == 600);
  }
}

TEMPLATE_TEST_CASE("worker_pool nested fork-join does not deadlock pools of one and two threads",
                   "[worker_pool][nested]", stealing_pool, global_pool) {
  for (std::size_t threads : {std::size_t{1}, std::size_t{2}, std::size_t{4}}) {
    CAPTURE(threads);
    TestType pool(threads);
    // Futures waited on through the pool, from a task: each level waits on a task it submitted.
    auto root = pool.submit([&pool] { return fib_futures(pool, 16); });
    CHECK(root.get() == fib_plain(16));
    // Task groups, from a task and from the outside thread.
    auto in_task = pool.submit([&pool] { return fib_group(pool, 18); });
    CHECK(in_task.get() == fib_plain(18));
    CHECK(fib_group(pool, 15) == fib_plain(15));
    // wait_until on a worker: the flag is set by a task queued behind the waiter.
    auto waiter = pool.submit([&pool] {
      std::atomic<bool> flag{false};
      pool.post([&flag] { flag.store(true); });
      pool.wait_until([&flag] { return flag.load(); });
      return true;
    });
    CHECK(waiter.get());
    pool.wait_idle();
  }
}

TEMPLATE_TEST_CASE("worker_pool parallel_for visits every index exactly once", "[worker_pool][parallel_for]",
                   stealing_pool, global_pool) {
  for (std::size_t threads : thread_counts) {
    CAPTURE(threads);
    TestType pool(threads);
    std::vector<std::atomic<int>> hits(100'003);
    pool.parallel_for(0, hits.size(), [&hits](std::size_t i) { hits[i].fetch_add(1, std::memory_order_relaxed); });
    std::size_t wrong = 0;
    for (auto& h : hits) wrong += h.load() != 1 ? 1 : 0;
    CHECK(wrong == 0);

    std::atomic<std::uint64_t> total{0};
    pool.parallel_for(
        10, 1010,
        [&total](std::size_t begin, std::size_t end) {
          std::uint64_t local = 0;
          for (std::size_t i = begin; i < end; ++i) local += i;
          total.fetch_add(local);
        },
        7);
    CHECK(total.load() == (10 + 1009) * 1000 / 2);

    std::atomic<int> empty_calls{0};
    pool.parallel_for(5, 5, [&empty_calls](std::size_t) { empty_calls.fetch_add(1); });
    CHECK(empty_calls.load() == 0);
    CHECK_THROWS_WITH(pool.parallel_for(0, 1000,
                                        [](std::size_t i) {
                                          if (i == 500) throw std::runtime_error("index 500");
                                        }),
                      "index 500");
    // parallel_for nested in a task helps instead of blocking its worker.
    auto nested = pool.submit([&pool] {
      std::atomic<int> count{0};
      pool.parallel_for(0, 1000, [&count](std::size_t) { count.fetch_add(1, std::memory_order_relaxed); });
      return count.load();
    });
    CHECK(nested.get() == 1000);
  }
}

TEMPLATE_TEST_CASE("worker_pool shutdown(drain) runs every accepted task, including ones they submit",
                   "[worker_pool][shutdown]", stealing_pool, global_pool) {
  for (std::size_t threads : thread_counts) {
    CAPTURE(threads);
    TestType pool(threads);
    gate g;
    occupy_all_workers(pool, g);
    std::atomic<int> ran{0};
    std::atomic<int> nested{0};
    for (int i = 0; i < 1000; ++i) {
      pool.post([&] {
        ran.fetch_add(1);
        pool.post([&nested] { nested.fetch_add(1); });  // accepted: the pool is draining, not cancelled
      });
    }
    auto fut = pool.submit([] { return 5; });
    std::thread stopper([&pool] { (void)pool.shutdown(distkit::shutdown_mode::drain); });
    g.open();
    stopper.join();
    CHECK(ran.load() == 1000);
    CHECK(nested.load() == 1000);
    CHECK(fut.get() == 5);
    const auto s = pool.stats();
    CHECK(s.completed == s.submitted);
    CHECK(s.cancelled == 0);
    CHECK(s.submitted == threads + 2001);
  }
}

TEMPLATE_TEST_CASE("worker_pool shutdown(cancel) returns or settles every task that never ran",
                   "[worker_pool][shutdown]", stealing_pool, global_pool) {
  for (std::size_t threads : thread_counts) {
    CAPTURE(threads);
    TestType pool(threads);
    gate g;
    occupy_all_workers(pool, g);
    std::atomic<int> ran{0};
    constexpr int posted = 300;
    constexpr int submitted = 50;
    constexpr int grouped = 20;
    for (int i = 0; i < posted; ++i) pool.post([&ran] { ran.fetch_add(1); });
    std::vector<std::future<int>> futures;
    for (int i = 0; i < submitted; ++i) futures.push_back(pool.submit([&ran, i] { return ran.fetch_add(1) + i; }));
    distkit::task_group group{pool};
    for (int i = 0; i < grouped; ++i) group.run([&ran] { ran.fetch_add(1); });
    CHECK(pool.stats().queued == posted + submitted + grouped);

    auto stopping = std::async(std::launch::async, [&pool] { return pool.shutdown(distkit::shutdown_mode::cancel); });
    // The workers are held by the gate, so the queued tasks are all cancelled; wait for that
    // (the counter moves when shutdown has taken them), then let the running tasks finish.
    while (pool.stats().cancelled < posted + submitted + grouped) std::this_thread::yield();
    g.open();
    std::vector<distkit::pool_task> unrun = stopping.get();

    CHECK(ran.load() == 0);
    CHECK(unrun.size() == posted);
    for (auto& f : futures) CHECK_THROWS_AS(f.get(), distkit::task_cancelled);
    CHECK_THROWS_AS(group.wait(), distkit::task_cancelled);
    for (auto& task : unrun) task();  // the caller owns them now
    CHECK(ran.load() == posted);
    const auto s = pool.stats();
    CHECK(s.completed == threads);
    CHECK(s.cancelled == posted + submitted + grouped);
    CHECK(s.completed + s.cancelled == s.submitted);
  }
}

TEMPLATE_TEST_CASE("worker_pool shutdown(cancel) accounts for every task accepted during a submission race",
                   "[worker_pool][shutdown]", stealing_pool, global_pool) {
  for (std::size_t threads : thread_counts) {
    CAPTURE(threads);
    TestType pool(threads);
    std::atomic<std::uint64_t> accepted{0};
    std::atomic<std::uint64_t> ran{0};
    std::latch producing(3);
    std::vector<std::thread> producers;
    for (int p = 0; p < 3; ++p) {
      producers.emplace_back([&] {
        producing.count_down();
        for (;;) {
          try {
            pool.post([&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
          } catch (const std::logic_error&) {
            return;  // shut down: this post was not accepted
          }
          accepted.fetch_add(1, std::memory_order_relaxed);
        }
      });
    }
    producing.wait();
    const auto unrun = pool.shutdown(distkit::shutdown_mode::cancel);
    for (auto& t : producers) t.join();
    CHECK(ran.load() + unrun.size() == accepted.load());
    const auto s = pool.stats();
    CHECK(s.submitted == accepted.load());
    CHECK(s.completed + s.cancelled == s.submitted);
  }
}

TEMPLATE_TEST_CASE("worker_pool refuses submissions after shutdown with an error naming the pool",
                   "[worker_pool][shutdown]", stealing_pool, global_pool) {
  using Catch::Matchers::Contains;
  TestType pool(distkit::worker_pool_options{.threads = 2, .name = "request-handlers"});
  pool.post([] {});
  (void)pool.shutdown();
  REQUIRE_THROWS_AS(pool.post([] {}), std::logic_error);
  REQUIRE_THROWS_WITH(pool.post([] {}), Contains("request-handlers"));
  REQUIRE_THROWS_AS((void)pool.submit([] { return 1; }), std::logic_error);
  CHECK(pool.shutdown().empty());  // a second shutdown does nothing
  // shutdown and wait_idle from inside a task are refused rather than deadlocking.
  // (Catch2 assertions are not thread-safe, so the task reports what it saw.)
  TestType other(1);
  auto inner = other.submit([&other] {
    int refused = 0;
    try {
      other.wait_idle();
    } catch (const std::logic_error&) {
      ++refused;
    }
    try {
      (void)other.shutdown();
    } catch (const std::logic_error&) {
      ++refused;
    }
    return refused;
  });
  CHECK(inner.get() == 2);
}

TEMPLATE_TEST_CASE("worker_pool destructor drains accepted tasks", "[worker_pool][shutdown]", stealing_pool,
                   global_pool) {
  for (std::size_t threads : thread_counts) {
    CAPTURE(threads);
    std::atomic<int> ran{0};
    {
      TestType pool(threads);
      gate g;
      occupy_all_workers(pool, g);
      for (int i = 0; i < 500; ++i) pool.post([&ran] { ran.fetch_add(1); });
      g.open();
    }
    CHECK(ran.load() == 500);
  }
}

TEMPLATE_TEST_CASE("worker_pool bounded inbox applies its overflow policy", "[worker_pool][bounded]",
                   distkit::work_stealing_queue, distkit::global_queue) {
  using Queue = TestType;
  const distkit::worker_pool_options options{.threads = 2, .capacity = 4, .name = "bounded"};

  SECTION("block: the submitter waits for room, and nothing is lost") {
    distkit::worker_pool<Queue, distkit::blocking_overflow> pool(options);
    gate g;
    occupy_all_workers(pool, g);
    std::atomic<int> ran{0};
    for (int i = 0; i < 4; ++i) pool.post([&ran] { ran.fetch_add(1); });
    CHECK(pool.try_post([&ran] { ran.fetch_add(1); }) == distkit::admission::rejected);
    CHECK_FALSE(pool.try_submit([] { return 1; }).has_value());
    std::thread producer([&] {
      for (int i = 0; i < 100; ++i) pool.post([&ran] { ran.fetch_add(1); });
    });
    g.open();
    producer.join();
    pool.wait_idle();
    CHECK(ran.load() == 104);
    CHECK(pool.stats().rejected == 2);
  }
  SECTION("reject: post returns rejected and submit an empty optional") {
    distkit::worker_pool<Queue, distkit::rejecting_overflow> pool(options);
    gate g;
    occupy_all_workers(pool, g);
    std::atomic<int> ran{0};
    for (int i = 0; i < 4; ++i) CHECK(pool.post([&ran] { ran.fetch_add(1); }) == distkit::admission::accepted);
    CHECK(pool.post([&ran] { ran.fetch_add(1); }) == distkit::admission::rejected);
    auto refused = pool.submit([] { return 1; });
    CHECK_FALSE(refused.has_value());
    // A task group is never refused: the caller runs its task instead.
    distkit::task_group group{pool};
    group.run([&ran] { ran.fetch_add(100); });
    CHECK(ran.load() == 100);
    g.open();
    group.wait();
    pool.wait_idle();
    CHECK(ran.load() == 104);
    CHECK(pool.stats().rejected == 2);
    auto accepted = pool.submit([] { return 3; });
    REQUIRE(accepted.has_value());
    CHECK(accepted->get() == 3);
  }
  SECTION("caller_runs: the submitting thread runs the task when the inbox is full") {
    distkit::worker_pool<Queue, distkit::caller_runs_overflow> pool(options);
    gate g;
    occupy_all_workers(pool, g);
    std::atomic<int> ran{0};
    for (int i = 0; i < 4; ++i) pool.post([&ran] { ran.fetch_add(1); });
    const auto me = std::this_thread::get_id();
    std::thread::id ran_on;
    pool.post([&ran_on] { ran_on = std::this_thread::get_id(); });
    CHECK(ran_on == me);
    auto fut = pool.submit([] { return std::this_thread::get_id(); });
    CHECK(fut.get() == me);
    pool.post([] { throw std::runtime_error("inline failure"); });  // goes to the error handler
    g.open();
    CHECK_THROWS_WITH(pool.wait_idle(), "inline failure");
    CHECK(ran.load() == 4);
    CHECK(pool.stats().ran_in_caller == 3);
  }
}

TEST_CASE("worker_pool wait_until blocks an outside thread until a task makes the predicate true",
          "[worker_pool][wait]") {
  for (std::size_t threads : thread_counts) {
    CAPTURE(threads);
    stealing_pool pool(threads);
    std::atomic<bool> flag{false};
    pool.post([&flag] { flag.store(true); });
    pool.wait_until([&flag] { return flag.load(); });
    CHECK(flag.load());
    auto fut = pool.submit([] { return 9; });
    CHECK(pool.get(fut) == 9);
  }
}

TEST_CASE("worker_pool work stealing spreads nested work across workers", "[worker_pool][stealing]") {
  stealing_pool pool(4);
  // One task spawns many children onto its own deque and holds its worker until they all ran:
  // only other workers can run them, and they must steal them.
  std::atomic<int> children{0};
  auto parent = pool.submit([&] {
    for (int i = 0; i < 64; ++i) pool.post([&children] { children.fetch_add(1); });
    while (children.load() < 64) std::this_thread::yield();  // not helping: forces the others to steal
    return true;
  });
  CHECK(parent.get());
  pool.wait_idle();
  CHECK(pool.stats().stolen >= 64);
}

TEMPLATE_TEST_CASE("worker_pool survives a randomised mix of operations from many threads", "[worker_pool][.stress]",
                   stealing_pool, global_pool) {
  const auto seed = distkit_test::test_seed("worker_pool stress");
  for (std::size_t threads : thread_counts) {
    CAPTURE(threads);
    TestType pool(threads);
    std::atomic<std::uint64_t> expected{0};
    std::atomic<std::uint64_t> got{0};
    std::atomic<int> wrong_fib{0};
    std::vector<std::thread> clients;
    for (std::uint64_t c = 0; c < 4; ++c) {
      clients.emplace_back([&, c] {
        std::mt19937_64 rng(seed + c);
        for (int i = 0; i < 5000; ++i) {
          switch (rng() % 4) {
            case 0:
              expected.fetch_add(1);
              pool.post([&got] { got.fetch_add(1); });
              break;
            case 1: {
              expected.fetch_add(1);
              auto f = pool.submit([&got] { return got.fetch_add(1); });
              if (rng() % 2 == 0) (void)f.get();
              break;
            }
            case 2: {
              expected.fetch_add(4);
              distkit::task_group group{pool};
              for (int k = 0; k < 4; ++k) group.run([&got] { got.fetch_add(1); });
              group.wait();
              break;
            }
            default: {
              const int n = static_cast<int>(rng() % 12);
              auto f = pool.submit([&pool, n] { return fib_group(pool, n); });
              if (f.get() != fib_plain(n)) wrong_fib.fetch_add(1);
              break;
            }
          }
        }
      });
    }
    for (auto& t : clients) t.join();
    pool.wait_idle();
    CHECK(got.load() == expected.load());
    CHECK(wrong_fib.load() == 0);
    const auto s = pool.stats();
    CHECK(s.completed == s.submitted);
  }
}

// ---- regressions: wake-ups, index arithmetic, argument passing, caller_runs accounting ----

namespace {

// A barrier of `need` arrivals whose waiters the test can also release itself, so a stall is
// reported by a bounded wait and then unblocked (the pool can still be joined).
class release_barrier {
 public:
  explicit release_barrier(std::size_t need) : need_(need) {}
  void arrive_and_wait() {
    std::unique_lock lock(mutex_);
    if (++arrived_ >= need_) open_locked();
    cv_.wait(lock, [this] { return open_; });
  }
  // True if every participant arrived before `limit` passed; releases the waiters either way.
  auto all_arrived_within(std::chrono::seconds limit) -> bool {
    std::unique_lock lock(mutex_);
    const bool all = cv_.wait_for(lock, limit, [this] { return open_; });
    open_locked();
    return all;
  }

 private:
  void open_locked() {
    open_ = true;
    cv_.notify_all();
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  std::size_t need_;
  std::size_t arrived_ = 0;
  bool open_ = false;
};

}  // namespace

TEMPLATE_TEST_CASE("worker_pool wakes a worker for a task pushed while another wake-up is in flight",
                   "[worker_pool][wakeup]", stealing_pool, global_pool) {
  // N/2 tasks each post a child, then wait on a barrier of N that only the N/2 children can
  // complete: every child must reach a parked worker, although the children are pushed onto
  // different deques while one wake-up is already on its way.
  for (std::size_t threads : {std::size_t{4}, std::size_t{8}}) {
    CAPTURE(threads);
    TestType pool(threads);
    for (int round = 0; round < 40; ++round) {
      CAPTURE(round);
      release_barrier barrier(threads);
      for (std::size_t i = 0; i < threads / 2; ++i) {
        pool.post([&pool, &barrier] {
          pool.post([&barrier] { barrier.arrive_and_wait(); });
          barrier.arrive_and_wait();
        });
      }
      const bool all = barrier.all_arrived_within(std::chrono::seconds(20));
      pool.wait_idle();
      REQUIRE(all);
    }
  }
}

TEMPLATE_TEST_CASE("worker_pool parallel_for near SIZE_MAX visits exactly the range", "[worker_pool][parallel_for]",
                   stealing_pool, global_pool) {
  constexpr std::size_t top = std::numeric_limits<std::size_t>::max();
  for (std::size_t threads : {std::size_t{1}, std::size_t{3}}) {
    CAPTURE(threads);
    TestType pool(threads);
    for (std::size_t grain : {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{64}, std::size_t{1000}}) {
      CAPTURE(grain);
      std::vector<std::atomic<int>> hits(101);
      std::atomic<int> outside{0};
      CHECK_NOTHROW(pool.parallel_for(
          top - 101, top,
          [&](std::size_t i) {
            if (i < top - 101 || i >= top) {
              outside.fetch_add(1);
              throw std::runtime_error("index outside the range");  // ends the run (it would wrap on)
            } else {
              hits[i - (top - 101)].fetch_add(1);
            }
          },
          grain));
      CHECK(outside.load() == 0);
      std::size_t wrong = 0;
      for (auto& h : hits) wrong += h.load() != 1 ? 1 : 0;
      CHECK(wrong == 0);
      std::atomic<std::uint64_t> visited{0};
      std::atomic<int> bad_chunks{0};
      CHECK_NOTHROW(pool.parallel_for(
          top - 1000, top,
          [&](std::size_t begin, std::size_t end) {
            if (begin >= end || begin < top - 1000) {
              bad_chunks.fetch_add(1);
              throw std::runtime_error("chunk outside the range");
            }
            visited.fetch_add(end - begin);
          },
          grain));
      CHECK(bad_chunks.load() == 0);
      CHECK(visited.load() == 1000);
    }
  }
}

TEMPLATE_TEST_CASE("worker_pool submit passes move-only arguments to by-value parameters like std::async",
                   "[worker_pool][future]", stealing_pool, global_pool) {
  TestType pool(2);
  auto doubled = pool.submit([](std::unique_ptr<int> p) { return *p * 2; }, std::make_unique<int>(21));
  CHECK(doubled.get() == 42);
  auto joined = pool.submit([](std::string a, const std::string& b) { return a + b; }, std::string("ab"), "cd");
  CHECK(joined.get() == "abcd");
  // A callable that takes an lvalue reference still gets the task's own copy, as before.
  auto bumped = pool.submit(
      [](int& x) {
        ++x;
        return x;
      },
      41);
  CHECK(bumped.get() == 42);
  // A move-only callable whose call operator consumes it.
  struct consume {
    std::unique_ptr<int> value;
    auto operator()() && -> int { return *value; }
  };
  auto consumed = pool.submit(consume{std::make_unique<int>(7)});
  CHECK(consumed.get() == 7);
  pool.wait_idle();
}

TEMPLATE_TEST_CASE("worker_pool counts a posted task that throws in the caller under caller_runs as failed",
                   "[worker_pool][bounded][errors]", distkit::work_stealing_queue, distkit::global_queue) {
  distkit::worker_pool<TestType, distkit::caller_runs_overflow> pool(
      distkit::worker_pool_options{.threads = 1, .capacity = 1, .name = "caller"});
  std::atomic<int> handled{0};
  pool.set_error_handler([&handled](std::exception_ptr) { handled.fetch_add(1); });
  gate g;
  occupy_all_workers(pool, g);
  pool.post([] {});                                              // fills the inbox
  pool.post([] { throw std::runtime_error("in the caller"); });  // runs here, and throws
  CHECK(pool.stats().ran_in_caller == 1);
  CHECK(handled.load() == 1);
  CHECK(pool.stats().failed == 1);
  g.open();
  pool.wait_idle();
  CHECK(pool.stats().failed == 1);
}

TEMPLATE_TEST_CASE("worker_pool fork-join from many concurrent roots never deadlocks, whatever is helped",
                   "[worker_pool][nested]", stealing_pool, global_pool) {
  // The README's claim for helping: fork-join (each task waits only for what it submitted) never
  // deadlocks, however the waiting workers interleave unrelated roots on their stacks.
  for (std::size_t threads : {std::size_t{1}, std::size_t{2}, std::size_t{4}}) {
    CAPTURE(threads);
    TestType pool(threads);
    std::vector<std::future<long>> roots;
    for (int i = 0; i < 8; ++i) {
      roots.push_back(pool.submit([&pool, i] { return i % 2 == 0 ? fib_futures(pool, 13) : fib_group(pool, 13); }));
    }
    for (auto& root : roots) CHECK(root.get() == fib_plain(13));
    pool.wait_idle();
  }
}

// The former names still compile (with a deprecation warning, silenced here) and are the same types.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static_assert(std::is_same_v<distkit::pool_queue::work_stealing, distkit::work_stealing_queue>);
static_assert(std::is_same_v<distkit::pool_queue::global_queue, distkit::global_queue>);
static_assert(std::is_same_v<distkit::overflow::block, distkit::blocking_overflow>);
static_assert(std::is_same_v<distkit::overflow::reject, distkit::rejecting_overflow>);
static_assert(std::is_same_v<distkit::overflow::caller_runs, distkit::caller_runs_overflow>);
#pragma GCC diagnostic pop
