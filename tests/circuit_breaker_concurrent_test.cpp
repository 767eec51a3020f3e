// SPDX-License-Identifier: MIT
// Concurrent tests of distkit::circuit_breaker (run under ThreadSanitizer by the tsan leg).
#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

#include "distkit/circuit_breaker.hpp"
#include "support/seed.hpp"

using namespace std::chrono_literals;
using distkit::breaker_state;

namespace {

void update_max(std::atomic<int>& max, int value) {
  int seen = max.load();
  while (value > seen && !max.compare_exchange_weak(seen, value)) {
  }
}

}  // namespace

TEMPLATE_TEST_CASE("circuit_breaker never lets more than the permitted probes run under many threads",
                   "[circuit_breaker][concurrent]", distkit::count_window, distkit::time_window) {
  const auto seed = distkit_test::test_seed("circuit_breaker never lets more than the permitted probes run");
  constexpr std::uint32_t permitted = 5;
  for (unsigned threads : {1U, 2U, 4U, 8U}) {
    distkit::manual_clock clock;
    // A count window of 50 calls, or a time window of 2 s with time running 50x faster.
    constexpr bool timed = TestType::is_time_based;
    const std::chrono::microseconds step = timed ? 5000us : 100us;
    distkit::circuit_breaker<TestType, distkit::manual_clock> breaker(
        {.minimum_number_of_calls = 20,
         .sliding_window_size = timed ? 2U : 50U,
         .permitted_number_of_calls_in_half_open_state = permitted,
         .wait_duration_in_open_state = timed ? 200ms : 20ms},
        clock);
    std::atomic<int> opens{0};
    std::atomic<int> closes{0};
    breaker.on_state_transition([&](const distkit::state_transition& e) {
      if (e.to == breaker_state::open) opens.fetch_add(1);
      if (e.to == breaker_state::closed && e.from == breaker_state::half_open) closes.fetch_add(1);
    });
    constexpr std::size_t slots = 4096;
    std::vector<std::atomic<int>> in_flight(slots);
    std::vector<std::atomic<int>> recorded(slots);
    std::atomic<int> max_in_flight{0};
    std::atomic<int> max_recorded{0};
    // Every thread makes the same number of calls and moves time on by one step per call, and
    // the dependency alternates between healthy and failing every 2,000 steps of time. (A thread
    // descheduled while holding a probe keeps half-open waiting, as it should; with a per-thread
    // budget it still reports later, and time keeps moving.)
    const std::uint64_t calls_per_thread = 40'000 / threads;
    const auto phase = step * 2'000;

    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        std::mt19937_64 rng(seed + t);
        for (std::uint64_t call = 0; call < calls_per_thread; ++call) {
          clock.advance(step);
          const bool sick = (clock.now().time_since_epoch() / phase) % 2 == 1;
          auto permit = breaker.try_acquire();
          if (!permit) continue;
          const bool probe = permit->state() == breaker_state::half_open;
          const std::size_t slot = permit->generation() % slots;
          if (probe) update_max(max_in_flight, in_flight[slot].fetch_add(1) + 1);
          if (rng() % 4 == 0) std::this_thread::yield();  // widen the race windows
          const bool failed = sick && rng() % 100 < 70;
          const bool dropped = rng() % 10 == 0;
          if (probe) in_flight[slot].fetch_sub(1);
          if (dropped) {
            permit.reset();  // unrecorded: frees a half-open slot, records nothing
          } else if (failed) {
            if (probe) update_max(max_recorded, recorded[slot].fetch_add(1) + 1);
            permit->record_failure(1ms);
          } else {
            if (probe) update_max(max_recorded, recorded[slot].fetch_add(1) + 1);
            permit->record_success(1ms);
          }
        }
      });
    }
    for (auto& th : pool) th.join();
    const auto m = breaker.metrics();
    INFO("threads " << threads << ", opens " << opens.load() << ", closes " << closes.load() << ", state "
                    << distkit::to_string(m.state) << ", buffered " << m.buffered_calls << ", failed " << m.failed_calls
                    << ", not permitted " << m.not_permitted_calls);
    CHECK(max_in_flight.load() <= static_cast<int>(permitted));
    CHECK(max_recorded.load() <= static_cast<int>(permitted));
    CHECK(opens.load() >= 1);
    CHECK(closes.load() >= 1);  // it tripped and recovered
  }
}

TEMPLATE_TEST_CASE("circuit_breaker loses no outcome recorded concurrently", "[circuit_breaker][concurrent]",
                   distkit::count_window, distkit::time_window) {
  for (std::uint32_t batch : {1U, 16U}) {
    for (unsigned threads : {1U, 2U, 4U, 8U}) {
      distkit::manual_clock clock;
      distkit::circuit_breaker<TestType, distkit::manual_clock> breaker({.slow_call_duration_threshold = 1s,
                                                                         .minimum_number_of_calls = 1,
                                                                         .sliding_window_size = 50'000,
                                                                         .success_batch = batch},
                                                                        clock);
      breaker.transition_to(breaker_state::metrics_only);  // records, never trips
      constexpr int per_thread = 5'000;
      std::vector<std::thread> pool;
      for (unsigned t = 0; t < threads; ++t) {
        pool.emplace_back([&breaker] {
          for (int i = 0; i < per_thread; ++i) {
            auto p = breaker.try_acquire();
            if (i % 10 == 0) {
              p->record_failure(1ms);
            } else if (i % 10 == 1) {
              p->record_success(2s);
            } else {
              p->record_success(1ms);
            }
          }
        });
      }
      for (auto& th : pool) th.join();
      const auto m = breaker.metrics();
      INFO("batch " << batch << ", threads " << threads);
      CHECK(m.buffered_calls == threads * per_thread);
      CHECK(m.failed_calls == threads * per_thread / 10);
      CHECK(m.slow_calls == threads * per_thread / 10);
      CHECK(m.state == breaker_state::metrics_only);
    }
  }
}
