// SPDX-License-Identifier: MIT
// benchmarks/metrics_bench.cpp: the hot-path cost of distkit's metrics against prometheus-cpp
// (Debian prometheus-cpp-dev, its core library) in the same run: a counter increment on 1 and 2
// threads sharing one counter, a histogram record on 1 and 2 threads; a plain std::atomic
// fetch_add as the contention reference. Then what metrics cost a primitive: the closed-path
// circuit-breaker call and the rate-limiter decision (hot key, caller-supplied time) with the
// default no-op policy (detached) and with the registry policy (attached).
#include <benchmark/benchmark.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <vector>

#include "distkit/metrics.hpp"
#include "distkit/metrics/circuit_breaker.hpp"
#include "distkit/metrics/rate_limiter.hpp"

#ifdef DISTKIT_BENCH_PROMETHEUS_CPP
#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#endif

using namespace std::chrono_literals;

namespace {

// ---- counters -------------------------------------------------------------------------------

void bm_distkit_counter(benchmark::State& state) {
  static distkit::metrics_registry registry;
  static distkit::counter& c = registry.make_counter("distkit_bench_events_total", "Events.");
  for (auto _ : state) c.inc();
  benchmark::DoNotOptimize(c.value());
  state.SetItemsProcessed(state.iterations());
}

void bm_atomic_fetch_add(benchmark::State& state) {
  alignas(64) static std::atomic<std::uint64_t> c{0};
  for (auto _ : state) c.fetch_add(1, std::memory_order_relaxed);
  state.SetItemsProcessed(state.iterations());
}

// ---- histograms -----------------------------------------------------------------------------

// Latencies around 1 ms (lognormal, in nanoseconds), the same sequence for both libraries.
auto latencies_ns() -> const std::vector<std::uint64_t>& {
  static const std::vector<std::uint64_t> values = [] {
    std::mt19937_64 rng(42);
    std::lognormal_distribution<double> d(13.8, 1.0);
    std::vector<std::uint64_t> v(4096);
    for (auto& x : v) x = static_cast<std::uint64_t>(d(rng));
    return v;
  }();
  return values;
}

void bm_distkit_histogram(benchmark::State& state) {
  static distkit::metrics_registry registry;
  static distkit::histogram& h =
      registry.make_histogram("distkit_bench_latency_seconds", "Latency.", {.units_per_exposed = 1e9});
  const auto& values = latencies_ns();
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * 1000;
  for (auto _ : state) h.observe(values[i++ & 4095]);
  state.SetItemsProcessed(state.iterations());
}

#ifdef DISTKIT_BENCH_PROMETHEUS_CPP

auto prometheus_registry() -> prometheus::Registry& {
  static prometheus::Registry registry;
  return registry;
}

void bm_prometheus_cpp_counter(benchmark::State& state) {
  static prometheus::Counter& c = prometheus::BuildCounter()
                                      .Name("distkit_bench_prom_events_total")
                                      .Help("Events.")
                                      .Register(prometheus_registry())
                                      .Add({});
  for (auto _ : state) c.Increment();
  state.SetItemsProcessed(state.iterations());
}

void bm_prometheus_cpp_histogram(benchmark::State& state) {
  // The same 11 bounds distkit exposes by default (Prometheus's), in seconds.
  static prometheus::Histogram& h =
      prometheus::BuildHistogram()
          .Name("distkit_bench_prom_latency_seconds")
          .Help("Latency.")
          .Register(prometheus_registry())
          .Add({}, prometheus::Histogram::BucketBoundaries{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
  const auto& values = latencies_ns();
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * 1000;
  for (auto _ : state) h.Observe(static_cast<double>(values[i++ & 4095]) * 1e-9);
  state.SetItemsProcessed(state.iterations());
}

#endif

// ---- what metrics cost a primitive ----------------------------------------------------------

[[gnu::noinline]] auto dependency(std::uint64_t x) -> std::uint64_t { return x * 2654435761U + 1; }

// The closed-path call of benchmarks/circuit_breaker_bench.cpp: try_acquire, the call, record.
template <class Breaker>
void run_breaker(benchmark::State& state, Breaker& breaker) {
  std::uint64_t x = static_cast<std::uint64_t>(state.thread_index());
  for (auto _ : state) {
    if (auto permit = breaker.try_acquire()) {
      x = dependency(x);
      permit->record_success(1ms);
    }
    benchmark::DoNotOptimize(x);
  }
  if (state.thread_index() == 0 && breaker.state() != distkit::breaker_state::closed) {
    state.SkipWithError("the breaker left the closed state");
  }
  state.SetItemsProcessed(state.iterations());
}

void bm_breaker_detached(benchmark::State& state) {
  static distkit::circuit_breaker<> breaker;
  run_breaker(state, breaker);
}

void bm_breaker_attached(benchmark::State& state) {
  static distkit::metrics_registry registry;
  static distkit::circuit_breaker<distkit::count_window, distkit::steady_time, distkit::breaker_registry_metrics>
      breaker{{}, {}, {registry, "bench"}};
  run_breaker(state, breaker);
}

// The hot-key decision of benchmarks/rate_limiter_bench.cpp (100 per second, caller's time
// refreshed every 256 calls; CPU time, one thread, as there).
struct caller_time {
  std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now();
  std::uint32_t calls = 0;
  auto get() -> std::chrono::steady_clock::time_point {
    if ((++calls & 255U) == 0) now = std::chrono::steady_clock::now();
    return now;
  }
};

template <class Limiter>
void run_limiter(benchmark::State& state, Limiter& limiter) {
  caller_time t;
  const std::uint64_t key = 0xFFFF'FFFF'0000'0000ULL;
  for (auto _ : state) benchmark::DoNotOptimize(limiter.try_acquire(key, 1, t.get()));
  state.SetItemsProcessed(state.iterations());
}

template <class A>
void bm_limiter_detached(benchmark::State& state) {
  static distkit::rate_limiter<A> limiter{{100, 1s}};
  run_limiter(state, limiter);
}

template <class A>
void bm_limiter_attached(benchmark::State& state) {
  static distkit::metrics_registry registry;
  static distkit::rate_limiter<A, distkit::steady_time, distkit::local_store<A>, distkit::limiter_registry_metrics>
      limiter{{100, 1s}, {}, {registry, "bench"}};
  run_limiter(state, limiter);
}

}  // namespace

BENCHMARK(bm_distkit_counter)->Name("counter_inc/distkit")->Threads(1)->Threads(2)->UseRealTime();
#ifdef DISTKIT_BENCH_PROMETHEUS_CPP
BENCHMARK(bm_prometheus_cpp_counter)->Name("counter_inc/prometheus_cpp")->Threads(1)->Threads(2)->UseRealTime();
#endif
BENCHMARK(bm_atomic_fetch_add)->Name("counter_inc/std_atomic_fetch_add")->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(bm_distkit_histogram)->Name("histogram_observe/distkit")->Threads(1)->Threads(2)->UseRealTime();
#ifdef DISTKIT_BENCH_PROMETHEUS_CPP
BENCHMARK(bm_prometheus_cpp_histogram)->Name("histogram_observe/prometheus_cpp")->Threads(1)->Threads(2)->UseRealTime();
#endif
BENCHMARK(bm_breaker_detached)->Name("breaker_closed_call/detached")->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(bm_breaker_attached)->Name("breaker_closed_call/attached")->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK_TEMPLATE(bm_limiter_detached, distkit::gcra)->Name("limiter_hot_key/gcra/detached");
BENCHMARK_TEMPLATE(bm_limiter_attached, distkit::gcra)->Name("limiter_hot_key/gcra/attached");
BENCHMARK_TEMPLATE(bm_limiter_detached, distkit::sliding_window_counter)
    ->Name("limiter_hot_key/sliding_window_counter/detached");
BENCHMARK_TEMPLATE(bm_limiter_attached, distkit::sliding_window_counter)
    ->Name("limiter_hot_key/sliding_window_counter/attached");

BENCHMARK_MAIN();
