// SPDX-License-Identifier: MIT
// Worker pool benchmarks: distkit::worker_pool against oneTBB, Boost.Asio's thread_pool,
// rvaser/thread_pool and a plain mutex + condition-variable pool, on (a) 1M empty posts from one
// outside thread, (b) 1M submits with futures, (c) fork-join fib(25), (d) parallel_for over 10M.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <latch>
#include <memory>
#include <mutex>
#include <numeric>
#include <thread>
#include <vector>

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <thread_pool/thread_pool.hpp>

#include "distkit/worker_pool.hpp"

namespace {

constexpr std::size_t tasks = 1'000'000;
constexpr int fib_n = 25;
constexpr std::size_t elements = 10'000'000;

auto threads() -> std::size_t { return std::max(2u, std::thread::hardware_concurrency()); }

// The baseline every pool tutorial writes: one deque, one mutex, one condition variable.
class mutex_pool {
 public:
  explicit mutex_pool(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) workers_.emplace_back([this] { run(); });
  }
  mutex_pool(const mutex_pool&) = delete;
  auto operator=(const mutex_pool&) -> mutex_pool& = delete;
  ~mutex_pool() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  void post(std::function<void()> f) {
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(f));
      ++pending_;
    }
    work_cv_.notify_one();
  }
  void wait_idle() {
    std::unique_lock lock(mutex_);
    idle_cv_.wait(lock, [this] { return pending_ == 0; });
  }

 private:
  void run() {
    for (;;) {
      std::function<void()> f;
      {
        std::unique_lock lock(mutex_);
        work_cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        f = std::move(queue_.front());
        queue_.pop_front();
      }
      f();
      std::lock_guard lock(mutex_);
      if (--pending_ == 0) idle_cv_.notify_all();
    }
  }
  std::mutex mutex_;
  std::condition_variable work_cv_;
  std::condition_variable idle_cv_;
  std::deque<std::function<void()>> queue_;
  std::size_t pending_ = 0;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

// Keeps the optimiser from deleting an "empty" task while costing nothing measurable.
inline void empty_task() { benchmark::ClobberMemory(); }

// ---------------------------------------------------------------- (a) 1M empty posts

template <class Pool>
void bm_post_distkit(benchmark::State& state) {
  Pool pool(threads());
  for (auto _ : state) {
    for (std::size_t i = 0; i < tasks; ++i) pool.post([] { empty_task(); });
    pool.wait_idle();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * tasks));
}

void bm_post_tbb_task_group(benchmark::State& state) {
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads());
  for (auto _ : state) {
    tbb::task_group group;
    for (std::size_t i = 0; i < tasks; ++i) group.run([] { empty_task(); });
    group.wait();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * tasks));
}

void bm_post_tbb_arena_enqueue(benchmark::State& state) {
  tbb::task_arena arena(static_cast<int>(threads()), 0);  // every slot for workers, like a pool
  for (auto _ : state) {
    std::atomic<std::size_t> left{tasks};
    std::promise<void> all_ran;
    for (std::size_t i = 0; i < tasks; ++i) {
      arena.enqueue([&] {
        empty_task();
        if (left.fetch_sub(1, std::memory_order_acq_rel) == 1) all_ran.set_value();
      });
    }
    all_ran.get_future().wait();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * tasks));
}

void bm_post_asio(benchmark::State& state) {
  for (auto _ : state) {
    boost::asio::thread_pool pool(threads());
    for (std::size_t i = 0; i < tasks; ++i) boost::asio::post(pool, [] { empty_task(); });
    pool.join();  // runs everything posted, then stops
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * tasks));
}

void bm_post_rvaser(benchmark::State& state) {
  for (auto _ : state) {
    thread_pool::ThreadPool pool(threads());
    // Its only submission call returns a future; the destructor drains the queues.
    for (std::size_t i = 0; i < tasks; ++i) (void)pool.Submit([] { empty_task(); });
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * tasks));
}

void bm_post_mutex_pool(benchmark::State& state) {
  mutex_pool pool(threads());
  for (auto _ : state) {
    for (std::size_t i = 0; i < tasks; ++i) pool.post([] { empty_task(); });
    pool.wait_idle();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * tasks));
}

// ---------------------------------------------------------------- (b) 1M submits with futures

template <class Pool>
void bm_submit_distkit(benchmark::State& state) {
  Pool pool(threads());
  std::vector<std::future<int>> futures;
  futures.reserve(tasks);
  for (auto _ : state) {
    futures.clear();
    for (std::size_t i = 0; i < tasks; ++i) futures.push_back(pool.submit([i] { return static_cast<int>(i & 7); }));
    long sum = 0;
    for (auto& f : futures) sum += f.get();
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * tasks));
}

void bm_submit_tbb(benchmark::State& state) {
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads());
  std::vector<std::future<int>> futures;
  futures.reserve(tasks);
  for (auto _ : state) {
    futures.clear();
    tbb::task_group group;
    for (std::size_t i = 0; i < tasks; ++i) {
      // task_group runs its callable as const, so the packaged_task sits behind a shared_ptr.
      auto task = std::make_shared<std::packaged_task<int()>>([i] { return static_cast<int>(i & 7); });
      futures.push_back(task->get_future());
      group.run([task] { (*task)(); });
    }
    long sum = 0;
    for (auto& f : futures) sum += f.get();
    benchmark::DoNotOptimize(sum);
    group.wait();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * tasks));
}

void bm_submit_asio(benchmark::State& state) {
  std::vector<std::future<int>> futures;
  futures.reserve(tasks);
  for (auto _ : state) {
    futures.clear();
    boost::asio::thread_pool pool(threads());
    for (std::size_t i = 0; i < tasks; ++i) {
      std::packaged_task<int()> task([i] { return static_cast<int>(i & 7); });
      futures.push_back(task.get_future());
      boost::asio::post(pool, std::move(task));
    }
    long sum = 0;
    for (auto& f : futures) sum += f.get();
    benchmark::DoNotOptimize(sum);
    pool.join();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * tasks));
}

void bm_submit_rvaser(benchmark::State& state) {
  std::vector<std::future<int>> futures;
  futures.reserve(tasks);
  thread_pool::ThreadPool pool(threads());
  for (auto _ : state) {
    futures.clear();
    for (std::size_t i = 0; i < tasks; ++i) futures.push_back(pool.Submit([i] { return static_cast<int>(i & 7); }));
    long sum = 0;
    for (auto& f : futures) sum += f.get();
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * tasks));
}

void bm_submit_mutex_pool(benchmark::State& state) {
  mutex_pool pool(threads());
  std::vector<std::future<int>> futures;
  futures.reserve(tasks);
  for (auto _ : state) {
    futures.clear();
    for (std::size_t i = 0; i < tasks; ++i) {
      // std::function needs a copyable callable, hence the shared_ptr (as such pools do).
      auto task = std::make_shared<std::packaged_task<int()>>([i] { return static_cast<int>(i & 7); });
      futures.push_back(task->get_future());
      pool.post([task] { (*task)(); });
    }
    long sum = 0;
    for (auto& f : futures) sum += f.get();
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * tasks));
}

// ---------------------------------------------------------------- (c) fork-join fib(25)
// One task per call, no cutoff: it measures spawn + join. Pools without a helping wait
// (Asio, rvaser, the mutex pool) would deadlock here once every worker blocks on a child.

template <class Pool>
auto fib_distkit(Pool& pool, int n) -> long {
  if (n < 2) return n;
  long a = 0;
  distkit::task_group group{pool};
  group.run([&] { a = fib_distkit(pool, n - 1); });
  const long b = fib_distkit(pool, n - 2);
  group.wait();
  return a + b;
}

auto fib_tbb(int n) -> long {
  if (n < 2) return n;
  long a = 0;
  tbb::task_group group;
  group.run([&] { a = fib_tbb(n - 1); });
  const long b = fib_tbb(n - 2);
  group.wait();
  return a + b;
}

auto fib_serial(int n) -> long { return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2); }

template <class Pool>
void bm_fib_distkit(benchmark::State& state) {
  Pool pool(threads());
  for (auto _ : state) {
    long result = pool.submit([&pool] { return fib_distkit(pool, fib_n); }).get();
    benchmark::DoNotOptimize(result);
  }
}

void bm_fib_tbb(benchmark::State& state) {
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads());
  for (auto _ : state) {
    long result = fib_tbb(fib_n);
    benchmark::DoNotOptimize(result);
  }
}

void bm_fib_serial(benchmark::State& state) {
  for (auto _ : state) {
    long result = fib_serial(fib_n);
    benchmark::DoNotOptimize(result);
  }
}

// ---------------------------------------------------------------- (d) parallel_for over 10M

std::vector<std::uint32_t>& data() {
  static std::vector<std::uint32_t> v(elements, 1);
  return v;
}

inline void touch(std::uint32_t& x) { x = x * 3 + 1; }

template <class Pool>
void bm_for_distkit(benchmark::State& state) {
  Pool pool(threads());
  auto& v = data();
  for (auto _ : state) {
    pool.parallel_for(0, v.size(), [&v](std::size_t i) { touch(v[i]); });
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * elements));
}

void bm_for_tbb(benchmark::State& state) {
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads());
  auto& v = data();
  for (auto _ : state) {
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, v.size()), [&v](const tbb::blocked_range<std::size_t>& r) {
      for (std::size_t i = r.begin(); i != r.end(); ++i) touch(v[i]);
    });
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * elements));
}

// The pools without a parallel_for get the usual hand-written split: 8 chunks per thread.
template <class PostChunk>
void chunked(std::size_t n, PostChunk&& post_chunk) {
  const std::size_t chunks = threads() * 8;
  const std::size_t size = (n + chunks - 1) / chunks;
  for (std::size_t begin = 0; begin < n; begin += size) post_chunk(begin, std::min(n, begin + size));
}

void bm_for_asio(benchmark::State& state) {
  boost::asio::thread_pool pool(threads());
  auto& v = data();
  for (auto _ : state) {
    std::latch done(static_cast<std::ptrdiff_t>(threads() * 8));
    chunked(v.size(), [&](std::size_t b, std::size_t e) {
      boost::asio::post(pool, [&v, &done, b, e] {
        for (std::size_t i = b; i < e; ++i) touch(v[i]);
        done.count_down();
      });
    });
    done.wait();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * elements));
}

void bm_for_rvaser(benchmark::State& state) {
  thread_pool::ThreadPool pool(threads());
  auto& v = data();
  std::vector<std::future<void>> parts;
  for (auto _ : state) {
    parts.clear();
    chunked(v.size(), [&](std::size_t b, std::size_t e) {
      parts.push_back(pool.Submit([&v, b, e] {
        for (std::size_t i = b; i < e; ++i) touch(v[i]);
      }));
    });
    for (auto& p : parts) p.get();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * elements));
}

void bm_for_mutex_pool(benchmark::State& state) {
  mutex_pool pool(threads());
  auto& v = data();
  for (auto _ : state) {
    chunked(v.size(), [&](std::size_t b, std::size_t e) {
      pool.post([&v, b, e] {
        for (std::size_t i = b; i < e; ++i) touch(v[i]);
      });
    });
    pool.wait_idle();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * elements));
}

void bm_for_serial(benchmark::State& state) {
  auto& v = data();
  for (auto _ : state) {
    for (auto& x : v) touch(x);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * elements));
}

using ws_pool = distkit::worker_pool<distkit::work_stealing_queue>;
using gq_pool = distkit::worker_pool<distkit::global_queue>;

}  // namespace

// Wall-clock time decides; the CPU column is the whole process's CPU time (all threads), which
// shows what each pool burns (spinning included) and is steadier on a shared machine.
#define DISTKIT_POOL_BENCH(fn) BENCHMARK(fn)->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond)

DISTKIT_POOL_BENCH(bm_post_distkit<ws_pool>)->Name("a_post/distkit_work_stealing");
DISTKIT_POOL_BENCH(bm_post_distkit<gq_pool>)->Name("a_post/distkit_global_queue");
DISTKIT_POOL_BENCH(bm_post_tbb_task_group)->Name("a_post/tbb_task_group");
DISTKIT_POOL_BENCH(bm_post_tbb_arena_enqueue)->Name("a_post/tbb_arena_enqueue");
DISTKIT_POOL_BENCH(bm_post_asio)->Name("a_post/asio_thread_pool");
DISTKIT_POOL_BENCH(bm_post_rvaser)->Name("a_post/rvaser_thread_pool");
DISTKIT_POOL_BENCH(bm_post_mutex_pool)->Name("a_post/mutex_condvar_pool");

DISTKIT_POOL_BENCH(bm_submit_distkit<ws_pool>)->Name("b_submit/distkit_work_stealing");
DISTKIT_POOL_BENCH(bm_submit_distkit<gq_pool>)->Name("b_submit/distkit_global_queue");
DISTKIT_POOL_BENCH(bm_submit_tbb)->Name("b_submit/tbb_task_group_packaged_task");
DISTKIT_POOL_BENCH(bm_submit_asio)->Name("b_submit/asio_thread_pool");
DISTKIT_POOL_BENCH(bm_submit_rvaser)->Name("b_submit/rvaser_thread_pool");
DISTKIT_POOL_BENCH(bm_submit_mutex_pool)->Name("b_submit/mutex_condvar_pool");

DISTKIT_POOL_BENCH(bm_fib_distkit<ws_pool>)->Name("c_fib25/distkit_work_stealing");
DISTKIT_POOL_BENCH(bm_fib_distkit<gq_pool>)->Name("c_fib25/distkit_global_queue");
DISTKIT_POOL_BENCH(bm_fib_tbb)->Name("c_fib25/tbb_task_group");
DISTKIT_POOL_BENCH(bm_fib_serial)->Name("c_fib25/serial");

DISTKIT_POOL_BENCH(bm_for_distkit<ws_pool>)->Name("d_for10M/distkit_work_stealing");
DISTKIT_POOL_BENCH(bm_for_distkit<gq_pool>)->Name("d_for10M/distkit_global_queue");
DISTKIT_POOL_BENCH(bm_for_tbb)->Name("d_for10M/tbb_parallel_for");
DISTKIT_POOL_BENCH(bm_for_asio)->Name("d_for10M/asio_thread_pool");
DISTKIT_POOL_BENCH(bm_for_rvaser)->Name("d_for10M/rvaser_thread_pool");
DISTKIT_POOL_BENCH(bm_for_mutex_pool)->Name("d_for10M/mutex_condvar_pool");
DISTKIT_POOL_BENCH(bm_for_serial)->Name("d_for10M/serial");

BENCHMARK_MAIN();
