// SPDX-License-Identifier: MIT
// benchmarks/rate_limiter_bench.cpp: ns per try_acquire for each algorithm (1 hot key, 1M keys;
// 1 and 2 threads; clock read per call vs caller-supplied time), next to the seed's design (one
// global mutex, a timestamp list per key rebuilt on every call), and the round trip of a
// decision through a real redis-server child process (started here, on a free loopback port),
// and the machine's floor for the batch rows: random cache-line updates, 1 and 2 threads.
#include <benchmark/benchmark.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <new>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "distkit/rate_limiter.hpp"

#if defined(__linux__)
#include <sys/mman.h>
#endif

#ifdef DISTKIT_BENCH_REDIS
#include "distkit/redis/rate_limiter_store.hpp"
#include "support/redis_server.hpp"
#endif

using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t many_keys = std::uint64_t{1} << 20;  // 1,048,576 keys
constexpr std::uint64_t key_mask = many_keys - 1;
// An odd multiplier walks all 2^20 keys in a scattered order (no two consecutive calls share a
// cache line), so the 1M-key runs measure table lookups that miss the cache, as in a gateway.
constexpr std::uint64_t stride = 0x9E3779B97F4A7C15ULL;

// 100 per second per key: the hot key is refused most of the time (as an abusive client would
// be); the 1M keys are mostly allowed. Both paths cost the same lookup and update.
const distkit::rate_limit policy{100, 1s};

template <class A>
auto shared_limiter() -> distkit::rate_limiter<A>& {
  static distkit::rate_limiter<A> limiter{policy};
  return limiter;
}

template <class A>
void populate() {
  static std::once_flag once;
  std::call_once(once, [] {
    auto& l = shared_limiter<A>();
    const auto now = std::chrono::steady_clock::now();
    for (std::uint64_t k = 0; k < many_keys; ++k) benchmark::DoNotOptimize(l.try_acquire(k, 1, now));
  });
}

// The caller-supplied time: what an event loop already holds (refreshed every 256 calls here).
struct caller_time {
  std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now();
  std::uint32_t calls = 0;
  auto get() -> std::chrono::steady_clock::time_point {
    if ((++calls & 255U) == 0) now = std::chrono::steady_clock::now();
    return now;
  }
};

template <class A, bool CallerNow>
void bm_hot_key(benchmark::State& state) {
  auto& limiter = shared_limiter<A>();
  caller_time t;
  const std::uint64_t key = 0xFFFF'FFFF'0000'0000ULL;
  for (auto _ : state) {
    if constexpr (CallerNow) {
      benchmark::DoNotOptimize(limiter.try_acquire(key, 1, t.get()));
    } else {
      benchmark::DoNotOptimize(limiter.try_acquire(key));
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

template <class A, bool CallerNow>
void bm_many_keys(benchmark::State& state) {
  populate<A>();
  auto& limiter = shared_limiter<A>();
  caller_time t;
  std::uint64_t i =
      static_cast<std::uint64_t>(state.thread_index()) * (many_keys / 2);  // threads serve different clients
  for (auto _ : state) {
    const std::uint64_t key = (++i * stride) & key_mask;
    if constexpr (CallerNow) {
      benchmark::DoNotOptimize(limiter.try_acquire(key, 1, t.get()));
    } else {
      benchmark::DoNotOptimize(limiter.try_acquire(key));
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// The batch path: the same scattered keys, 64 per `try_acquire_many` call, caller-supplied
// time. One iteration is one batch; `ns_per_decision` divides by the 64 decisions (for 2
// threads, wall time over both threads' decisions: the throughput of the pair).
template <class A>
void bm_many_keys_batch(benchmark::State& state) {
  populate<A>();
  auto& limiter = shared_limiter<A>();
  constexpr std::size_t batch = 64;
  std::array<std::uint64_t, batch> keys{};
  std::array<distkit::decision, batch> out{};
  caller_time t;
  std::uint64_t i =
      static_cast<std::uint64_t>(state.thread_index()) * (many_keys / 2);  // threads serve different clients
  for (auto _ : state) {
    for (auto& key : keys) key = (++i * stride) & key_mask;
    benchmark::DoNotOptimize(limiter.try_acquire_many(keys, out, 1, t.get()));
  }
  const auto decisions = static_cast<double>(state.iterations() * batch);
  state.SetItemsProcessed(static_cast<std::int64_t>(decisions));
  state.counters["ns_per_decision"] =
      benchmark::Counter(decisions * 1e-9, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// The seed's limiter, as a baseline: one mutex, a vector of timestamps per key, rebuilt on
// every call (drops the expired, appends when under the limit), steady_clock read per call.
class seed_limiter {
 public:
  auto allow(std::uint64_t key) -> bool {
    std::lock_guard<std::mutex> guard(mutex_);
    const auto now = std::chrono::steady_clock::now();
    auto& log = requests_[key];
    std::vector<std::chrono::steady_clock::time_point> kept;
    for (const auto t : log) {
      if (now - t < window_) kept.push_back(t);
    }
    const bool ok = kept.size() < limit_;
    if (ok) kept.push_back(now);
    log = std::move(kept);
    return ok;
  }

 private:
  std::mutex mutex_;
  std::unordered_map<std::uint64_t, std::vector<std::chrono::steady_clock::time_point>> requests_;
  std::size_t limit_ = 100;
  std::chrono::nanoseconds window_ = 1s;
};

auto shared_seed() -> seed_limiter& {
  static seed_limiter s;
  return s;
}

void bm_seed_hot_key(benchmark::State& state) {
  auto& s = shared_seed();
  for (auto _ : state) benchmark::DoNotOptimize(s.allow(0xFFFF'FFFF'0000'0000ULL));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void bm_seed_many_keys(benchmark::State& state) {
  static std::once_flag once;
  std::call_once(once, [] {
    for (std::uint64_t k = 0; k < many_keys; ++k) benchmark::DoNotOptimize(shared_seed().allow(k));
  });
  auto& s = shared_seed();
  std::uint64_t i =
      static_cast<std::uint64_t>(state.thread_index()) * (many_keys / 2);  // threads serve different clients
  for (auto _ : state) benchmark::DoNotOptimize(s.allow((++i * stride) & key_mask));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// The memory floor of the 1M-key runs: one dependent cache miss per operation, chasing a random
// cycle through 48 MiB (the size of the 1M-key GCRA table), as a limiter lookup must.
void bm_dependent_miss(benchmark::State& state) {
  static const std::vector<std::uint32_t> next = [] {
    constexpr std::size_t n = (48u << 20) / 64;  // one entry per cache line
    std::vector<std::uint32_t> order(n);
    for (std::size_t i = 0; i < n; ++i) order[i] = static_cast<std::uint32_t>(i);
    std::uint64_t x = 88172645463325252ULL;
    for (std::size_t i = n - 1; i > 0; --i) {  // Fisher-Yates with xorshift
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      std::swap(order[i], order[x % (i + 1)]);
    }
    std::vector<std::uint32_t> links(n * 16);
    for (std::size_t i = 0; i < n; ++i) links[order[i] * 16] = order[(i + 1) % n] * 16;
    return links;
  }();
  std::uint32_t at = 0;
  for (auto _ : state) {
    at = next[at];
    benchmark::DoNotOptimize(at);
  }
}

// The memory floor of the batch rows: independent read-modify-writes of random cache lines of
// 64 MiB (huge pages), each prefetched 16 updates ahead, 64 per iteration like a batch. What a
// decision that updates one cold table line costs at best here, and how the memory system
// itself scales from one thread to two (each thread updates its own half).
void bm_random_update_floor(benchmark::State& state) {
  constexpr std::size_t bytes = std::size_t{64} << 20;
  constexpr std::size_t words_per_line = 8;
  static std::uint64_t* const mem = [] {
    void* p = ::operator new(bytes, std::align_val_t{std::size_t{2} << 20});
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    ::madvise(p, bytes, MADV_HUGEPAGE);
#endif
    std::memset(p, 0, bytes);
    return static_cast<std::uint64_t*>(p);
  }();
  const std::size_t half = bytes / 64 / 2;
  const std::size_t first = static_cast<std::size_t>(state.thread_index()) * half;
  std::uint64_t x = 0x9E3779B97F4A7C15ULL + static_cast<std::uint64_t>(state.thread_index());
  const auto next_line = [&] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return (first + x % half) * words_per_line;
  };
  std::array<std::size_t, 64> ring{};
  for (auto& i : ring) i = next_line();
  std::size_t at = 0;
  for (auto _ : state) {
    for (int k = 0; k < 64; ++k, ++at) {
      __builtin_prefetch(&mem[ring[(at + 16) % 64]], 1, 3);
      ++mem[ring[at % 64]];
      ring[at % 64] = next_line();
    }
  }
  const auto updates = static_cast<double>(state.iterations() * 64);
  state.counters["ns_per_update"] =
      benchmark::Counter(updates * 1e-9, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void bm_steady_clock_now(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(std::chrono::steady_clock::now());
}

}  // namespace

#define DISTKIT_BENCH_ALGO(A)                                                                                    \
  BENCHMARK_TEMPLATE(bm_hot_key, distkit::A, false)->Name("hot_key/" #A "/clock")->Threads(1)->Threads(2);       \
  BENCHMARK_TEMPLATE(bm_hot_key, distkit::A, true)->Name("hot_key/" #A "/caller_now")->Threads(1)->Threads(2);   \
  BENCHMARK_TEMPLATE(bm_many_keys, distkit::A, false)->Name("1M_keys/" #A "/clock")->Threads(1)->Threads(2);     \
  BENCHMARK_TEMPLATE(bm_many_keys, distkit::A, true)->Name("1M_keys/" #A "/caller_now")->Threads(1)->Threads(2); \
  BENCHMARK_TEMPLATE(bm_many_keys_batch, distkit::A)                                                             \
      ->Name("1M_keys/" #A "/caller_now_batch64")                                                                \
      ->UseRealTime()                                                                                            \
      ->Threads(1)                                                                                               \
      ->Threads(2)

DISTKIT_BENCH_ALGO(sliding_window_log);
DISTKIT_BENCH_ALGO(sliding_window_counter);
DISTKIT_BENCH_ALGO(gcra);
DISTKIT_BENCH_ALGO(fixed_window);
BENCHMARK(bm_seed_hot_key)->Name("hot_key/seed_mutex_list/clock")->Threads(1)->Threads(2);
BENCHMARK(bm_seed_many_keys)->Name("1M_keys/seed_mutex_list/clock")->Threads(1)->Threads(2);
BENCHMARK(bm_steady_clock_now)->Name("steady_clock_now");
BENCHMARK(bm_dependent_miss)->Name("dependent_cache_miss_48MiB");
BENCHMARK(bm_random_update_floor)->Name("memory_floor/64MiB/random_update")->UseRealTime()->Threads(1)->Threads(2);

#ifdef DISTKIT_BENCH_REDIS
namespace {

std::unique_ptr<distkit_test::redis_server> redis;

template <class A>
void bm_redis(benchmark::State& state) {
  distkit::redis_options o;
  o.port = redis->port();
  o.key_prefix = "bench:";
  distkit::rate_limiter<A, distkit::steady_time, distkit::redis_store<A>> limiter{
      distkit::redis_store<A>{distkit::rate_limit{1'000'000, 1s}, o}};
  std::uint64_t i = 0;
  for (auto _ : state) {
    const auto d = limiter.try_acquire((++i * stride) & 1023);
    if (d.reason == distkit::refusal::store_unavailable) {
      state.SkipWithError("redis unavailable");
      break;
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void bm_redis_ping(benchmark::State& state) {
  redisContext* c = redisConnect("127.0.0.1", redis->port());
  for (auto _ : state) freeReplyObject(redisCommand(c, "PING"));
  redisFree(c);
}

}  // namespace

BENCHMARK_TEMPLATE(bm_redis, distkit::sliding_window_log)->Name("redis/sliding_window_log")->UseRealTime();
BENCHMARK_TEMPLATE(bm_redis, distkit::gcra)->Name("redis/gcra")->UseRealTime();
BENCHMARK(bm_redis_ping)->Name("redis/PING")->UseRealTime();

int main(int argc, char** argv) {
  redis = std::make_unique<distkit_test::redis_server>();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  redis.reset();
  return 0;
}
#else
BENCHMARK_MAIN();
#endif
