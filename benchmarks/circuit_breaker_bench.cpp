// SPDX-License-Identifier: MIT
// benchmarks/circuit_breaker_bench.cpp: the cost of protecting a call with a circuit breaker in
// the closed state (acquire + record), on 1 and 2 threads sharing one breaker, against no
// breaker and against a naive mutex breaker (the lock taken before and after the call, as in
// sony/gobreaker or the seed's version, over the same 100-call count window).
#include <benchmark/benchmark.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>

#include "distkit/circuit_breaker.hpp"

namespace {

using namespace std::chrono_literals;

// The protected call: trivial, so the benchmark shows the breaker's overhead.
[[gnu::noinline]] auto dependency(std::uint64_t x) -> std::uint64_t { return x * 2654435761U + 1; }

// A naive breaker: one mutex guarding a state and a count window, taken in allow() and in
// done() (never around the call itself: that would be the seed's worse bug).
class mutex_breaker {
 public:
  auto allow() -> bool {
    std::lock_guard lock(mutex_);
    return !open_;
  }
  void done(bool failed, std::chrono::nanoseconds elapsed) {
    std::lock_guard lock(mutex_);
    const std::uint8_t code = static_cast<std::uint8_t>(1U | (failed ? 2U : 0U) | (elapsed > 60s ? 4U : 0U));
    const std::uint8_t old = ring_[next_];
    ring_[next_] = code;
    next_ = (next_ + 1) % ring_.size();
    calls_ += (code & 1U) - (old & 1U);
    failed_ += ((code >> 1) & 1U) - ((old >> 1) & 1U);
    slow_ += ((code >> 2) & 1U) - ((old >> 2) & 1U);
    if (calls_ >= 100 && (failed_ * 2 >= calls_ || slow_ >= calls_)) open_ = true;
  }

 private:
  std::mutex mutex_;
  bool open_ = false;
  std::array<std::uint8_t, 100> ring_{};
  std::size_t next_ = 0;
  std::uint64_t calls_ = 0;
  std::uint64_t failed_ = 0;
  std::uint64_t slow_ = 0;
};

void bm_no_breaker(benchmark::State& state) {
  std::uint64_t x = static_cast<std::uint64_t>(state.thread_index());
  for (auto _ : state) {
    x = dependency(x);
    benchmark::DoNotOptimize(x);
  }
  state.SetItemsProcessed(state.iterations());
}

template <class Breaker>
void bm_breaker(benchmark::State& state, Breaker& breaker) {
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

void bm_distkit_count(benchmark::State& state) {
  static distkit::circuit_breaker<> breaker;  // defaults: count window of 100, batches of 16
  bm_breaker(state, breaker);
}

void bm_distkit_count_unbatched(benchmark::State& state) {
  static distkit::circuit_breaker<> breaker({.success_batch = 1});  // every outcome straight into the ring
  bm_breaker(state, breaker);
}

void bm_distkit_time(benchmark::State& state) {
  // A 60-second window; reads the steady clock once per record to find the bucket.
  static distkit::circuit_breaker<distkit::time_window> breaker({.sliding_window_size = 60});
  bm_breaker(state, breaker);
}

void bm_distkit_call(benchmark::State& state) {
  // The one-step form: call() also times the call with two steady-clock reads.
  static distkit::circuit_breaker<> breaker;
  std::uint64_t x = static_cast<std::uint64_t>(state.thread_index());
  for (auto _ : state) {
    x = breaker.call(dependency, x);
    benchmark::DoNotOptimize(x);
  }
  state.SetItemsProcessed(state.iterations());
}

void bm_mutex_breaker(benchmark::State& state) {
  static mutex_breaker breaker;
  std::uint64_t x = static_cast<std::uint64_t>(state.thread_index());
  for (auto _ : state) {
    if (breaker.allow()) {
      x = dependency(x);
      breaker.done(false, 1ms);
    }
    benchmark::DoNotOptimize(x);
  }
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

BENCHMARK(bm_no_breaker)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(bm_distkit_count)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(bm_distkit_count_unbatched)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(bm_distkit_time)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(bm_distkit_call)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(bm_mutex_breaker)->Threads(1)->Threads(2)->UseRealTime();

BENCHMARK_MAIN();
