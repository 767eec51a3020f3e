// SPDX-License-Identifier: MIT
// tests/rate_limiter_concurrent_test.cpp: the rate limiter under threads (in-process store) and
// shared through a real redis-server child process (Redis store), including Redis dying.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <latch>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include "distkit/rate_limiter.hpp"

using namespace std::chrono_literals;
using distkit::decision;
using distkit::fixed_window;
using distkit::gcra;
using distkit::manual_clock;
using distkit::rate_limit;
using distkit::refusal;
using distkit::sliding_window_counter;
using distkit::sliding_window_log;

TEMPLATE_TEST_CASE("rate_limiter multi-thread admission never exceeds the limit", "[rate_limiter][concurrent]",
                   sliding_window_log, sliding_window_counter, gcra, fixed_window) {
  for (const unsigned threads : {1U, 2U, 4U, 8U}) {
    CAPTURE(threads);
    manual_clock clock;
    clock.advance(1h);
    // Time stands still, so exactly `limit` units of each key may pass, whatever the interleaving.
    distkit::rate_limiter<TestType, manual_clock> limiter{
        distkit::local_store<TestType>{rate_limit{300, 1min}, {.shards = 4}}, clock};
    constexpr std::uint64_t hot_keys = 3;
    constexpr std::uint64_t cold_keys = 4000;  // small limit each; grows the shards' tables concurrently
    constexpr std::uint64_t hot_attempts = 300;
    std::vector<std::atomic<std::uint64_t>> hot_admitted(hot_keys);
    std::vector<std::atomic<std::uint64_t>> cold_admitted(cold_keys);
    std::vector<std::atomic<std::uint64_t>> remaining_seen(300);
    std::latch start(threads + 1);
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        start.arrive_and_wait();
        for (std::uint64_t i = 0; i < hot_attempts; ++i) {
          for (std::uint64_t k = 0; k < hot_keys; ++k) {
            const decision d = limiter.try_acquire(k);
            if (d.allowed) {
              hot_admitted[k].fetch_add(1);
              if (k == 0) remaining_seen[d.remaining].fetch_add(1);
            }
          }
          const std::uint64_t cold = 1000 + (i * 13 + t * 7919) % cold_keys;
          if (limiter.try_acquire(cold, 100).allowed) cold_admitted[cold - 1000].fetch_add(1);
        }
        for (int pass = 0; pass < 3; ++pass) {
          for (std::uint64_t c = 0; c < cold_keys; ++c) {
            if (limiter.try_acquire(1000 + c, 100).allowed) cold_admitted[c].fetch_add(1);
          }
        }
      });
    }
    // A maintenance thread sweeps and reads statistics meanwhile (nothing is idle: it drops nothing).
    std::size_t evicted = 0;
    pool.emplace_back([&] {
      start.arrive_and_wait();
      for (int i = 0; i < 20; ++i) {
        evicted += limiter.evict_idle();
        (void)limiter.stats();
      }
    });
    for (auto& th : pool) th.join();
    REQUIRE(evicted == 0);
    for (std::uint64_t k = 0; k < hot_keys; ++k) REQUIRE(hot_admitted[k].load() == 300);
    // Each admission of key 0 saw a distinct `remaining`: 299, 298, ..., 0.
    for (auto& r : remaining_seen) REQUIRE(r.load() == 1);
    for (std::uint64_t c = 0; c < cold_keys; ++c) REQUIRE(cold_admitted[c].load() == 3);
    REQUIRE(limiter.stats().keys == hot_keys + cold_keys);
  }
}

TEMPLATE_TEST_CASE("rate_limiter batches from many threads never admit more than the limit",
                   "[rate_limiter][concurrent][batch]", sliding_window_log, sliding_window_counter, gcra,
                   fixed_window) {
  for (const unsigned threads : {2U, 4U}) {
    CAPTURE(threads);
    manual_clock clock;
    clock.advance(1h);
    // Time stands still: each key admits exactly `limit` units, however the batches interleave.
    distkit::rate_limiter<TestType, manual_clock> limiter{
        distkit::local_store<TestType>{rate_limit{50, 1min}, {.shards = 8}}, clock};
    constexpr std::uint64_t keys = 3000;  // grows the shards' tables while batches run
    std::vector<std::atomic<std::uint64_t>> admitted(keys);
    std::latch start(threads);
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        start.arrive_and_wait();
        std::vector<std::uint64_t> batch(37);
        std::vector<decision> out(batch.size());
        for (std::uint64_t round = 0; round < 200; ++round) {
          for (std::size_t i = 0; i < batch.size(); ++i) batch[i] = (round * 37 + i * 101 + t * 7) % keys;
          limiter.try_acquire_many(batch, out, 10);
          for (std::size_t i = 0; i < batch.size(); ++i) {
            if (out[i].allowed) admitted[batch[i]].fetch_add(10);
          }
        }
      });
    }
    for (auto& th : pool) th.join();
    std::uint64_t total = 0;
    for (auto& a : admitted) {
      REQUIRE(a.load() <= 50);
      total += a.load();
    }
    CHECK(total > 0);
  }
}

TEST_CASE("rate_limiter gcra admits at most burst plus refill while threads race a moving clock",
          "[rate_limiter][concurrent][gcra]") {
  manual_clock clock;
  // 100 per second: one token per 10 ms.
  distkit::rate_limiter<gcra, manual_clock> limiter{rate_limit{100, 1s}, clock};
  constexpr unsigned threads = 4;
  std::atomic<std::uint64_t> admitted{0};
  std::atomic<bool> done{false};
  std::latch start(threads + 1);
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      start.arrive_and_wait();
      while (!done.load()) {
        if (limiter.try_acquire(std::string_view("hot")).allowed) admitted.fetch_add(1);
      }
      for (int i = 0; i < 50; ++i) {
        if (limiter.try_acquire(std::string_view("hot")).allowed) admitted.fetch_add(1);
      }
    });
  }
  start.arrive_and_wait();
  for (int step = 0; step < 200; ++step) clock.advance(1ms);  // 200 ms: 20 tokens refill
  done.store(true);
  for (auto& th : pool) th.join();
  REQUIRE(admitted.load() <= 100 + 20);
  REQUIRE(admitted.load() >= 100);
}

#ifdef DISTKIT_TEST_NO_HIREDIS

TEST_CASE("rate_limiter redis store tests need hiredis", "[rate_limiter][redis]") {
  FAIL("hiredis (Debian libhiredis-dev) was not found at configure time: run scripts/install-deps");
}

#else

#include "distkit/redis/rate_limiter_store.hpp"
#include "support/redis_server.hpp"

namespace {

using distkit::failure_mode;
using distkit::redis_options;
using distkit::redis_store;

template <class A>
using redis_limiter = distkit::rate_limiter<A, distkit::steady_time, redis_store<A>>;

template <class A>
auto make_redis_limiter(int port, rate_limit r, failure_mode mode = failure_mode::fail_closed,
                        std::size_t connections = 1, std::string prefix = "test:") -> redis_limiter<A> {
  redis_options o;
  o.port = port;
  o.on_failure = mode;
  o.connections = connections;
  o.connect_timeout = 500ms;
  o.command_timeout = 500ms;
  o.key_prefix = std::move(prefix);
  return redis_limiter<A>{redis_store<A>{r, o}};
}

auto redis_integer(int port, const std::vector<std::string>& cmd) -> long long {
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port, timeval{5, 0});
  REQUIRE(c != nullptr);
  REQUIRE(c->err == 0);
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  for (const auto& s : cmd) {
    argv.push_back(s.data());
    lens.push_back(s.size());
  }
  auto* r = static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
  REQUIRE(r != nullptr);
  const long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1000;
  freeReplyObject(r);
  redisFree(c);
  return v;
}

}  // namespace

TEMPLATE_TEST_CASE("rate_limiter redis store shares one limit between two limiters and their threads",
                   "[rate_limiter][redis][concurrent]", sliding_window_log, gcra) {
  distkit_test::redis_server server;
  constexpr std::uint64_t limit = 50;
  const rate_limit policy{limit, 1h};  // nothing refills during the test
  auto a = make_redis_limiter<TestType>(server.port(), policy, failure_mode::fail_open, 2);
  auto b = make_redis_limiter<TestType>(server.port(), policy, failure_mode::fail_open, 2);
  std::atomic<std::uint64_t> admitted{0};
  std::atomic<std::uint64_t> other_admitted{0};
  std::atomic<std::uint64_t> unavailable{0};
  std::mutex seen_mutex;
  std::vector<std::uint64_t> remaining_seen;
  std::latch start(4);
  std::vector<std::thread> pool;
  for (int t = 0; t < 4; ++t) {
    auto& limiter = t % 2 == 0 ? a : b;
    pool.emplace_back([&] {
      start.arrive_and_wait();
      for (int i = 0; i < 40; ++i) {
        const decision d = limiter.try_acquire(std::string_view("tenant:1"));
        if (d.reason == refusal::store_unavailable) unavailable.fetch_add(1);
        if (d.allowed) {
          admitted.fetch_add(1);
          std::lock_guard<std::mutex> guard(seen_mutex);
          remaining_seen.push_back(d.remaining);
        }
        if (limiter.try_acquire(std::string_view("tenant:2"), 2).allowed) other_admitted.fetch_add(2);
      }
    });
  }
  for (auto& th : pool) th.join();
  REQUIRE(unavailable.load() == 0);
  REQUIRE(a.store().failures() == 0);
  REQUIRE(b.store().failures() == 0);
  // 160 attempts on one key from two connections pools: exactly the limit passed, each with a
  // distinct `remaining` (49 ... 0), as if one process had served them in order.
  REQUIRE(admitted.load() == limit);
  std::sort(remaining_seen.begin(), remaining_seen.end());
  for (std::uint64_t i = 0; i < limit; ++i) REQUIRE(remaining_seen[i] == i);
  REQUIRE(other_admitted.load() == limit);
  const decision refused = a.try_acquire(std::string_view("tenant:1"));
  REQUIRE_FALSE(refused.allowed);
  REQUIRE(refused.reason == refusal::rate_limited);
  REQUIRE(refused.retry_after > 0s);
  REQUIRE(refused.retry_after <= 1h);
  REQUIRE(refused.reset_after <= 1h);
}

TEMPLATE_TEST_CASE("rate_limiter redis store answers like the in-process algorithm and sets key expiry",
                   "[rate_limiter][redis][concurrent]", sliding_window_log, gcra) {
  distkit_test::redis_server server;
  auto limiter = make_redis_limiter<TestType>(server.port(), rate_limit{5, 10min});
  for (std::uint64_t i = 0; i < 5; ++i) {
    const decision d = limiter.try_acquire(std::string_view("user:7"));
    REQUIRE(d.allowed);
    REQUIRE(d.remaining == 4 - i);
    REQUIRE(d.limit == 5);
    REQUIRE(d.reset_after > 0s);
    REQUIRE(d.reset_after <= 10min);
  }
  const decision refused = limiter.try_acquire(std::string_view("user:7"));
  REQUIRE_FALSE(refused.allowed);
  REQUIRE(refused.remaining == 0);
  REQUIRE(refused.retry_after > 0s);
  REQUIRE(refused.retry_after <= 10min);
  const decision too_big = limiter.try_acquire(std::string_view("user:8"), 6);
  REQUIRE(too_big.reason == refusal::cost_exceeds_limit);
  // The key expires by itself once idle: Redis memory follows active keys too.
  const std::string key = std::is_same_v<TestType, gcra> ? "test:{user:7}:gcra" : "test:{user:7}:log";
  const long long ttl = redis_integer(server.port(), {"PTTL", key});
  REQUIRE(ttl > 0);
  REQUIRE(ttl <= 10 * 60 * 1000 + 1);
  // After SCRIPT FLUSH the store falls back to EVAL (NOSCRIPT) and keeps working.
  redisContext* c = redisConnectWithTimeout("127.0.0.1", server.port(), timeval{5, 0});
  REQUIRE(c != nullptr);
  freeReplyObject(redisCommand(c, "SCRIPT FLUSH"));
  redisFree(c);
  const decision after_flush = limiter.try_acquire(std::string_view("user:9"));
  REQUIRE(after_flush.allowed);
  REQUIRE(after_flush.remaining == 4);
  REQUIRE(limiter.store().failures() == 0);
  // The other algorithm on the same prefix and key keeps its own state (no WRONGTYPE clash).
  using other = std::conditional_t<std::is_same_v<TestType, gcra>, sliding_window_log, gcra>;
  auto neighbour = make_redis_limiter<other>(server.port(), rate_limit{5, 10min});
  const decision n = neighbour.try_acquire(std::string_view("user:7"));
  REQUIRE(n.allowed);
  REQUIRE(n.remaining == 4);
  REQUIRE(neighbour.store().failures() == 0);
}

TEMPLATE_TEST_CASE("rate_limiter redis store returns the configured decision when redis dies",
                   "[rate_limiter][redis][concurrent]", sliding_window_log, gcra) {
  for (const failure_mode mode : {failure_mode::fail_open, failure_mode::fail_closed}) {
    CAPTURE(mode == failure_mode::fail_open);
    distkit_test::redis_server server;
    auto limiter = make_redis_limiter<TestType>(server.port(), rate_limit{1, 1h}, mode);
    REQUIRE(limiter.try_acquire(std::string_view("k")).allowed);
    REQUIRE_FALSE(limiter.try_acquire(std::string_view("k")).allowed);
    server.kill();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 5; ++i) {
      const decision d = limiter.try_acquire(std::string_view("k"));
      REQUIRE(d.reason == refusal::store_unavailable);
      REQUIRE(d.allowed == (mode == failure_mode::fail_open));
      REQUIRE(d.limit == 1);
      if (!d.allowed) REQUIRE(d.retry_after == 1s);
    }
    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
    std::cout << "[redis down] 5 decisions in " << took.count() << " us; last error: " << limiter.store().last_error()
              << "\n";
    REQUIRE(limiter.store().failures() == 5);
    REQUIRE_FALSE(limiter.store().last_error().empty());
  }
}

TEMPLATE_TEST_CASE("rate_limiter redis store reconnects when redis comes back", "[rate_limiter][redis][concurrent]",
                   sliding_window_log, gcra) {
  auto server = std::make_unique<distkit_test::redis_server>();
  const int port = server->port();
  redis_options o;
  o.port = port;
  o.reconnect_interval = 1ms;  // the smallest allowed: starting a server takes longer (the default waits 100 ms)
  o.on_failure = failure_mode::fail_closed;
  redis_limiter<TestType> limiter{redis_store<TestType>{rate_limit{3, 1h}, o}};
  REQUIRE(limiter.try_acquire(std::string_view("k"), 3).allowed);
  server->kill();
  REQUIRE(limiter.try_acquire(std::string_view("k")).reason == refusal::store_unavailable);
  REQUIRE(limiter.try_acquire(std::string_view("k")).reason == refusal::store_unavailable);
  server = std::make_unique<distkit_test::redis_server>(port);  // a fresh, empty server
  const decision back = limiter.try_acquire(std::string_view("k"));
  REQUIRE(back.allowed);
  REQUIRE(back.reason == refusal::none);
  REQUIRE(back.remaining == 2);
  REQUIRE(limiter.store().failures() == 2);
}

TEMPLATE_TEST_CASE("rate_limiter redis store never hangs on a server that accepts but never answers",
                   "[rate_limiter][redis][concurrent]", sliding_window_log, gcra) {
  distkit_test::silent_server silent;
  redis_options o;
  o.port = silent.port();
  o.connect_timeout = 100ms;
  o.command_timeout = 100ms;
  o.on_failure = failure_mode::fail_closed;
  redis_limiter<TestType> limiter{redis_store<TestType>{rate_limit{10, 1s}, o}};
  const decision d = limiter.try_acquire(std::string_view("k"));
  REQUIRE(d.reason == refusal::store_unavailable);
  REQUIRE_FALSE(d.allowed);
  // And a port where nothing listens: refused at once, fail-open as configured.
  o.port = distkit_test::free_loopback_port();
  o.on_failure = failure_mode::fail_open;
  redis_limiter<TestType> nobody{redis_store<TestType>{rate_limit{10, 1s}, o}};
  const decision open = nobody.try_acquire(std::string_view("k"));
  REQUIRE(open.reason == refusal::store_unavailable);
  REQUIRE(open.allowed);
}

TEST_CASE("rate_limiter redis store rejects invalid options naming the parameter", "[rate_limiter][redis]") {
  using Catch::Matchers::Contains;
  redis_options o;
  o.port = 0;
  REQUIRE_THROWS_WITH(redis_store<gcra>(rate_limit{10, 1s}, o), Contains("port"));
  o = {};
  o.host.clear();
  REQUIRE_THROWS_WITH(redis_store<gcra>(rate_limit{10, 1s}, o), Contains("host"));
  o = {};
  o.connections = 0;
  REQUIRE_THROWS_WITH(redis_store<gcra>(rate_limit{10, 1s}, o), Contains("connections"));
  o = {};
  o.command_timeout = 0ms;
  REQUIRE_THROWS_WITH(redis_store<gcra>(rate_limit{10, 1s}, o), Contains("command_timeout"));
  REQUIRE_THROWS_AS(redis_store<gcra>(rate_limit{10, 5us}, {}), std::invalid_argument);
  REQUIRE_THROWS_WITH(redis_store<sliding_window_log>(rate_limit{0, 1s}, {}), Contains("limit"));
}

TEST_CASE("rate_limiter redis store rejects a non-positive failure_retry_after or reconnect_interval",
          "[rate_limiter][redis]") {
  using Catch::Matchers::Contains;
  redis_options o;
  o.failure_retry_after = -5000ms;
  REQUIRE_THROWS_WITH(redis_store<gcra>(rate_limit{10, 1s}, o),
                      Contains("failure_retry_after must be positive") && Contains("-5000"));
  o.failure_retry_after = 0ms;
  REQUIRE_THROWS_WITH(redis_store<gcra>(rate_limit{10, 1s}, o), Contains("failure_retry_after"));
  o = {};
  o.reconnect_interval = 0ms;
  REQUIRE_THROWS_WITH(redis_store<sliding_window_log>(rate_limit{10, 1s}, o), Contains("reconnect_interval"));
  o.reconnect_interval = -1ms;
  REQUIRE_THROWS_WITH(redis_store<gcra>(rate_limit{10, 1s}, o), Contains("reconnect_interval"));
  // The smallest valid values are accepted.
  o = {};
  o.failure_retry_after = 1ms;
  o.reconnect_interval = 1ms;
  REQUIRE_NOTHROW(redis_store<gcra>(rate_limit{10, 1s}, o));
}

#endif
