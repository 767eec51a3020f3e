// SPDX-License-Identifier: MIT
// Benchmarks of distkit::mpmc_queue and spsc_queue against moodycamel::ConcurrentQueue,
// atomic_queue and Boost.Lockfree (each from its Debian package), in one run:
//   throughput: P producers and C consumers move a fixed batch of 64-bit items (items/s);
//   latency:    two threads bounce one item back and forth through two queues; the figure is
//               the round trip halved, i.e. one push-to-pop hand-off.
// Every queue is driven through its non-blocking calls in a spin loop, the way each peer's own
// benchmarks drive it; distkit's blocking pop is measured separately.
#include <benchmark/benchmark.h>

#include <atomic>
#include <boost/lockfree/queue.hpp>
#include <boost/lockfree/spsc_queue.hpp>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include <atomic_queue/atomic_queue.h>
#include <concurrentqueue/concurrentqueue.h>

#include "distkit/queue.hpp"

namespace {

constexpr std::size_t capacity = 4096;
constexpr std::uint64_t batch = 1 << 16;

struct distkit_mpmc {
  static constexpr const char* name = "distkit_mpmc";
  distkit::mpmc_queue<std::uint64_t> q{capacity};
  auto push(std::uint64_t v) -> bool { return q.try_push(std::move(v)); }
  auto pop(std::uint64_t& v) -> bool {
    auto r = q.try_pop();
    if (!r) return false;
    v = *r;
    return true;
  }
};

struct distkit_mpmc_blocking {
  distkit::mpmc_queue<std::uint64_t> q{capacity};
  auto push(std::uint64_t v) -> bool { return q.push(v) == distkit::push_result::pushed; }
  auto pop(std::uint64_t& v) -> bool {
    auto r = q.pop();
    v = *r;
    return true;
  }
};

struct distkit_spsc {
  distkit::spsc_queue<std::uint64_t> q{capacity};
  auto push(std::uint64_t v) -> bool { return q.try_push(std::move(v)); }
  auto pop(std::uint64_t& v) -> bool {
    auto r = q.try_pop();
    if (!r) return false;
    v = *r;
    return true;
  }
};

struct moodycamel_queue {
  moodycamel::ConcurrentQueue<std::uint64_t> q{capacity};
  auto push(std::uint64_t v) -> bool { return q.enqueue(v); }
  auto pop(std::uint64_t& v) -> bool { return q.try_dequeue(v); }
};

struct atomic_queue_b {
  // Values pushed are never 0 (the queue's empty marker); see run_throughput.
  atomic_queue::AtomicQueueB<std::uint64_t> q{capacity};
  auto push(std::uint64_t v) -> bool { return q.try_push(v); }
  auto pop(std::uint64_t& v) -> bool { return q.try_pop(v); }
};

struct boost_lockfree_queue {
  boost::lockfree::queue<std::uint64_t, boost::lockfree::fixed_sized<true>> q{capacity};
  auto push(std::uint64_t v) -> bool { return q.bounded_push(v); }
  auto pop(std::uint64_t& v) -> bool { return q.pop(v); }
};

struct boost_spsc_queue {
  boost::lockfree::spsc_queue<std::uint64_t> q{capacity};
  auto push(std::uint64_t v) -> bool { return q.push(v); }
  auto pop(std::uint64_t& v) -> bool { return q.pop(v); }
};

template <class Q>
void throughput(benchmark::State& state) {
  const auto producers = static_cast<std::size_t>(state.range(0));
  const auto consumers = static_cast<std::size_t>(state.range(1));
  for (auto _ : state) {
    auto q = std::make_unique<Q>();
    std::atomic<std::uint64_t> popped{0};
    std::atomic<std::uint64_t> checksum{0};
    {
      std::vector<std::jthread> threads;
      for (std::size_t p = 0; p < producers; ++p) {
        threads.emplace_back([&, p] {
          const std::uint64_t share = batch / producers;
          for (std::uint64_t i = 1; i <= share; ++i) {
            while (!q->push(i + p * batch)) std::this_thread::yield();
          }
        });
      }
      for (std::size_t c = 0; c < consumers; ++c) {
        threads.emplace_back([&] {
          std::uint64_t sum = 0;
          std::uint64_t v = 0;
          while (popped.load(std::memory_order_relaxed) < batch / producers * producers) {
            if (q->pop(v)) {
              sum += v;
              popped.fetch_add(1, std::memory_order_relaxed);
            } else {
              std::this_thread::yield();
            }
          }
          checksum.fetch_add(sum);
        });
      }
    }
    benchmark::DoNotOptimize(checksum.load());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * (batch / producers * producers)));
}

// One push-to-pop hand-off, measured as half a round trip between two threads.
template <class Q>
void latency(benchmark::State& state) {
  auto ping = std::make_unique<Q>();
  auto pong = std::make_unique<Q>();
  std::atomic<bool> stop{false};
  std::jthread echo([&] {
    std::uint64_t v = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      if (ping->pop(v)) {
        while (!pong->push(v)) {
        }
      }
    }
  });
  std::uint64_t n = 1;
  for (auto _ : state) {
    while (!ping->push(n)) {
    }
    std::uint64_t v = 0;
    while (!pong->pop(v)) {
    }
    benchmark::DoNotOptimize(v);
    ++n;
  }
  stop.store(true);
  // Wakes an echo thread parked in a blocking pop. Not 0: atomic_queue reserves 0 as its empty
  // marker, and a pop that finds it spins until a real value arrives.
  while (!ping->push(n)) {
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.counters["ns_per_hop"] = benchmark::Counter(static_cast<double>(state.iterations()) * 2,
                                                    benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

}  // namespace

#define DISTKIT_QUEUE_THROUGHPUT(Q) \
  BENCHMARK_TEMPLATE(throughput, Q)->ArgNames({"producers", "consumers"})->Args({1, 1})->Args({2, 2})->UseRealTime()
DISTKIT_QUEUE_THROUGHPUT(distkit_mpmc);
DISTKIT_QUEUE_THROUGHPUT(moodycamel_queue);
DISTKIT_QUEUE_THROUGHPUT(atomic_queue_b);
DISTKIT_QUEUE_THROUGHPUT(boost_lockfree_queue);
BENCHMARK_TEMPLATE(throughput, distkit_spsc)->ArgNames({"producers", "consumers"})->Args({1, 1})->UseRealTime();
BENCHMARK_TEMPLATE(throughput, boost_spsc_queue)->ArgNames({"producers", "consumers"})->Args({1, 1})->UseRealTime();

BENCHMARK_TEMPLATE(latency, distkit_mpmc)->UseRealTime();
BENCHMARK_TEMPLATE(latency, distkit_spsc)->UseRealTime();
BENCHMARK_TEMPLATE(latency, moodycamel_queue)->UseRealTime();
BENCHMARK_TEMPLATE(latency, atomic_queue_b)->UseRealTime();
BENCHMARK_TEMPLATE(latency, boost_lockfree_queue)->UseRealTime();
BENCHMARK_TEMPLATE(latency, boost_spsc_queue)->UseRealTime();
BENCHMARK_TEMPLATE(latency, distkit_mpmc_blocking)->UseRealTime();

BENCHMARK_MAIN();
