// SPDX-License-Identifier: MIT
// benchmarks/load_balancer_bench.cpp: the cost of one pick (try_pick + reporting the outcome)
// at 10, 100 and 1,000 endpoints for each picker, on 1 and 2 threads sharing one balancer, and
// what admission (an adaptive concurrency limit, a rate limit) adds to it.
// Baselines in the same run: nginx's smooth weighted round robin as nginx runs it (an O(N) pass
// per pick, here under a mutex so threads can share it) and a mutex-guarded least-request scan.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "distkit/load_balancer.hpp"

namespace {

using namespace std::chrono_literals;

// A rate no benchmark reaches: 2^31 - 1 picks per 2.15 s.
constexpr distkit::rate_limit unreachable_rate{.limit = (1U << 31) - 1,
                                               .window = std::chrono::nanoseconds((1LL << 31) - 1)};

template <class LB>
auto make(std::int64_t n) -> std::unique_ptr<LB> {
  std::unique_ptr<LB> lb;
  if constexpr (std::is_default_constructible_v<typename LB::admission_type>) {
    lb = std::make_unique<LB>();
  } else {
    lb = std::make_unique<LB>(distkit::load_balancer_options{}, typename LB::picker_type{}, typename LB::health_type{},
                              typename LB::clock_type{}, typename LB::admission_type{unreachable_rate});
  }
  for (std::int64_t i = 0; i < n; ++i)
    lb->add("10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ":80");
  return lb;
}

// One balancer per benchmark instance, shared by its threads.
template <class LB>
auto shared_balancer(std::int64_t n) -> LB& {
  static std::mutex m;
  static std::unique_ptr<LB> lb;
  static std::int64_t size = -1;
  const std::lock_guard<std::mutex> lock(m);
  if (size != n) {
    lb = make<LB>(n);
    size = n;
  }
  return *lb;
}

template <class Picker, class Clock, class Admission = distkit::no_admission>
void bm_pick(benchmark::State& state) {
  using lb_t = distkit::load_balancer<std::string, Picker, distkit::outlier_detection, Clock, Admission>;
  auto& lb = shared_balancer<lb_t>(state.range(0));
  for (auto _ : state) {
    auto r = lb.try_pick();
    benchmark::DoNotOptimize(r->endpoint().data());
    r->success(1ms);
  }
  state.SetItemsProcessed(state.iterations());
}

template <class Picker, class Clock>
void bm_pick_key(benchmark::State& state) {
  using lb_t = distkit::load_balancer<std::string, Picker, distkit::outlier_detection, Clock>;
  auto& lb = shared_balancer<lb_t>(state.range(0));
  std::uint64_t k = static_cast<std::uint64_t>(state.thread_index()) << 40;
  for (auto _ : state) {
    auto r = lb.try_pick(++k);
    benchmark::DoNotOptimize(r->endpoint().data());
    r->success(1ms);
  }
  state.SetItemsProcessed(state.iterations());
}

// nginx's ngx_http_upstream_get_peer: one pass over every peer per pick.
class nginx_swrr {
 public:
  explicit nginx_swrr(std::int64_t n)
      : weight_(static_cast<std::size_t>(n), 1), current_(static_cast<std::size_t>(n), 0) {}
  auto pick() -> std::size_t {
    const std::lock_guard<std::mutex> lock(m_);
    std::size_t best = 0;
    std::int64_t total = 0;
    for (std::size_t i = 0; i < weight_.size(); ++i) {
      current_[i] += weight_[i];
      total += weight_[i];
      if (current_[i] > current_[best]) best = i;
    }
    current_[best] -= total;
    return best;
  }

 private:
  std::mutex m_;
  std::vector<std::int64_t> weight_;
  std::vector<std::int64_t> current_;
};

class mutex_least_request {
 public:
  explicit mutex_least_request(std::int64_t n) : active_(static_cast<std::size_t>(n), 0) {}
  auto pick() -> std::size_t {
    const std::lock_guard<std::mutex> lock(m_);
    std::size_t best = 0;
    for (std::size_t i = 1; i < active_.size(); ++i) {
      if (active_[i] < active_[best]) best = i;
    }
    ++active_[best];
    return best;
  }
  void done(std::size_t i) {
    const std::lock_guard<std::mutex> lock(m_);
    --active_[i];
  }

 private:
  std::mutex m_;
  std::vector<std::int64_t> active_;
};

template <class Baseline>
auto shared_baseline(std::int64_t n) -> Baseline& {
  static std::mutex m;
  static std::unique_ptr<Baseline> b;
  static std::int64_t size = -1;
  const std::lock_guard<std::mutex> lock(m);
  if (size != n) {
    b = std::make_unique<Baseline>(n);
    size = n;
  }
  return *b;
}

void bm_nginx_swrr(benchmark::State& state) {
  auto& b = shared_baseline<nginx_swrr>(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(b.pick());
  state.SetItemsProcessed(state.iterations());
}

void bm_mutex_least_request(benchmark::State& state) {
  auto& b = shared_baseline<mutex_least_request>(state.range(0));
  for (auto _ : state) {
    const std::size_t i = b.pick();
    benchmark::DoNotOptimize(i);
    b.done(i);
  }
  state.SetItemsProcessed(state.iterations());
}

using distkit::manual_clock;
using distkit::steady_time;

#define DISTKIT_LB_BENCH(fn) BENCHMARK(fn)->Arg(10)->Arg(100)->Arg(1000)->Threads(1)->Threads(2)->UseRealTime()

DISTKIT_LB_BENCH((bm_pick<distkit::p2c_least_request_picker, manual_clock>))->Name("p2c_least_request/manual_clock");
DISTKIT_LB_BENCH((bm_pick<distkit::p2c_peak_ewma_picker, manual_clock>))->Name("p2c_peak_ewma/manual_clock");
DISTKIT_LB_BENCH((bm_pick<distkit::round_robin_picker, manual_clock>))->Name("round_robin/manual_clock");
DISTKIT_LB_BENCH((bm_pick_key<distkit::hash_picker<distkit::ring_placement>, manual_clock>))->Name("ring/manual_clock");
DISTKIT_LB_BENCH((bm_pick_key<distkit::hash_picker<distkit::maglev_placement>, manual_clock>))
    ->Name("maglev/manual_clock");
DISTKIT_LB_BENCH((bm_pick_key<distkit::bounded_load_picker<distkit::maglev_placement>, manual_clock>))
    ->Name("bounded_load_maglev/manual_clock");
DISTKIT_LB_BENCH((bm_pick<distkit::p2c_least_request_picker, manual_clock,
                          distkit::concurrency_limit_admission<distkit::aimd_limit>>))
    ->Name("p2c_least_request/manual_clock/aimd_admission");
DISTKIT_LB_BENCH((bm_pick<distkit::p2c_least_request_picker, manual_clock,
                          distkit::concurrency_limit_admission<distkit::gradient2_limit>>))
    ->Name("p2c_least_request/manual_clock/gradient2_admission");
DISTKIT_LB_BENCH((bm_pick<distkit::p2c_least_request_picker, manual_clock, distkit::rate_limit_admission<>>))
    ->Name("p2c_least_request/manual_clock/rate_admission");
DISTKIT_LB_BENCH((bm_pick<distkit::p2c_least_request_picker, steady_time>))->Name("p2c_least_request/steady_time");
DISTKIT_LB_BENCH((bm_pick<distkit::p2c_peak_ewma_picker, steady_time>))->Name("p2c_peak_ewma/steady_time");
DISTKIT_LB_BENCH(bm_nginx_swrr)->Name("baseline/nginx_swrr_mutex");
DISTKIT_LB_BENCH(bm_mutex_least_request)->Name("baseline/least_request_scan_mutex");

}  // namespace

BENCHMARK_MAIN();
