// SPDX-License-Identifier: MIT
// benchmarks/pipeline_bench.cpp: distkit::pipeline against oneTBB's parallel_pipeline.
//
// Three stages, 10M items: a serial source counting up, a parallel transform (trivial, or ~1 µs
// of calibrated spinning), a serial in-order sink summing. Both libraries get the same cap on
// items in flight (oneTBB's max_number_of_live_tokens) and the same number of threads.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <thread>

#include <time.h>

#include "distkit/pipeline.hpp"

#if defined(DISTKIT_BENCH_HAVE_TBB)
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_pipeline.h>
#endif

namespace {

constexpr std::uint64_t items = 10'000'000;

// CPU time of the whole process (every thread), in ns: steadier than wall time on a busy machine,
// and it counts what a library burns spinning as well as what it spends working.
auto process_cpu_ns() -> double {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

auto bench_threads() -> std::size_t { return std::max(1U, std::thread::hardware_concurrency()); }

// A dependent chain of multiply-adds: the compiler can neither drop nor vectorise it.
inline auto spin(std::uint64_t x, std::uint64_t rounds) -> std::uint64_t {
  for (std::uint64_t i = 0; i < rounds; ++i) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  return x;
}

auto thread_cpu_ns() -> std::uint64_t {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000U + static_cast<std::uint64_t>(ts.tv_nsec);
}

// Rounds of `spin` that take about 1 µs of CPU on this machine, measured once on this thread's
// CPU clock (a wall clock would count the time other processes hold the core).
auto rounds_per_microsecond() -> std::uint64_t {
  static const std::uint64_t rounds = [] {
    constexpr std::uint64_t probe = 20'000'000;
    std::uint64_t best = ~std::uint64_t{0};
    for (int attempt = 0; attempt < 5; ++attempt) {
      const auto t0 = thread_cpu_ns();
      benchmark::DoNotOptimize(spin(static_cast<std::uint64_t>(attempt), probe));
      best = std::min(best, thread_cpu_ns() - t0);
    }
    const std::uint64_t r = std::max<std::uint64_t>(1, probe * 1000 / best);
    std::fprintf(stderr, "calibrated: %llu spin rounds per microsecond of CPU\n", static_cast<unsigned long long>(r));
    return r;
  }();
  return rounds;
}

template <bool Work>
void bm_distkit(benchmark::State& state) {
  const auto cap = static_cast<std::size_t>(state.range(0));
  const std::uint64_t rounds = Work ? rounds_per_microsecond() : 0;
  const double cpu0 = process_cpu_ns();
  for (auto _ : state) {
    std::uint64_t next = 0;
    std::uint64_t sum = 0;
    auto p = distkit::make_pipeline(
        {.max_in_flight = cap, .threads = bench_threads()}, distkit::source([&]() -> std::optional<std::uint64_t> {
          if (next == items) return std::nullopt;
          return next++;
        }),
        distkit::stage(distkit::parallel(), [rounds](std::uint64_t x) { return Work ? spin(x, rounds) : x * 2 + 1; }),
        distkit::sink(distkit::serial_in_order, [&](std::uint64_t x) { sum += x; }));
    p.run();
    benchmark::DoNotOptimize(sum);
  }
  state.counters["cpu_ns_per_item"] =
      (process_cpu_ns() - cpu0) / static_cast<double>(static_cast<std::uint64_t>(state.iterations()) * items);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * items));
}

#if defined(DISTKIT_BENCH_HAVE_TBB)
template <bool Work>
void bm_tbb(benchmark::State& state) {
  const auto cap = static_cast<std::size_t>(state.range(0));
  const std::uint64_t rounds = Work ? rounds_per_microsecond() : 0;
  tbb::global_control threads(tbb::global_control::max_allowed_parallelism, bench_threads());
  const double cpu0 = process_cpu_ns();
  for (auto _ : state) {
    std::uint64_t next = 0;
    std::uint64_t sum = 0;
    tbb::parallel_pipeline(cap, tbb::make_filter<void, std::uint64_t>(tbb::filter_mode::serial_in_order,
                                                                      [&](tbb::flow_control& fc) -> std::uint64_t {
                                                                        if (next == items) {
                                                                          fc.stop();
                                                                          return 0;
                                                                        }
                                                                        return next++;
                                                                      }) &
                                    tbb::make_filter<std::uint64_t, std::uint64_t>(
                                        tbb::filter_mode::parallel,
                                        [rounds](std::uint64_t x) { return Work ? spin(x, rounds) : x * 2 + 1; }) &
                                    tbb::make_filter<std::uint64_t, void>(tbb::filter_mode::serial_in_order,
                                                                          [&](std::uint64_t x) { sum += x; }));
    benchmark::DoNotOptimize(sum);
  }
  state.counters["cpu_ns_per_item"] =
      (process_cpu_ns() - cpu0) / static_cast<double>(static_cast<std::uint64_t>(state.iterations()) * items);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * items));
}
#endif

}  // namespace

BENCHMARK_TEMPLATE(bm_distkit, false)
    ->Name("trivial/distkit")
    ->Arg(16)
    ->Arg(256)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
#if defined(DISTKIT_BENCH_HAVE_TBB)
BENCHMARK_TEMPLATE(bm_tbb, false)
    ->Name("trivial/tbb")
    ->Arg(16)
    ->Arg(256)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
#endif
BENCHMARK_TEMPLATE(bm_distkit, true)
    ->Name("work_1us/distkit")
    ->Arg(16)
    ->Arg(256)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
#if defined(DISTKIT_BENCH_HAVE_TBB)
BENCHMARK_TEMPLATE(bm_tbb, true)
    ->Name("work_1us/tbb")
    ->Arg(16)
    ->Arg(256)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
#endif

BENCHMARK_MAIN();
