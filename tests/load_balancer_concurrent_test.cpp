// SPDX-License-Identifier: MIT
// tests/load_balancer_concurrent_test.cpp: picks from many threads while endpoints join, leave
// and change weight, and under a concurrency limit (run under ThreadSanitizer in the
// `concurrent` leg).
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "distkit/adaptive_limit.hpp"

#include "distkit/load_balancer.hpp"

using namespace std::chrono_literals;

namespace {

template <class LB>
void churn_while_picking(LB& lb, int threads) {
  // Endpoints 0..3 stay; 4 and 5 come and go and change weight. Every pick must name one of
  // the six, every handle must report to a live endpoint, and in-flight counts must return to 0.
  const std::vector<std::string> eps{"e0", "e1", "e2", "e3", "e4", "e5"};
  for (int i = 0; i < 4; ++i) lb.add(eps[i]);
  std::atomic<bool> stop{false};
  std::atomic<int> started{0};
  std::atomic<std::uint64_t> bad{0};
  std::atomic<std::uint64_t> picks{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      started.fetch_add(1);
      std::uint64_t local = 0;
      while (!stop.load(std::memory_order_acquire) || local < 2000) {
        std::optional<typename LB::request> r;
        if constexpr (requires { lb.try_pick(std::string("k")); }) {
          r = lb.try_pick("key-" + std::to_string(local % 97));
        } else {
          r = lb.try_pick();
        }
        if (!r) {
          bad.fetch_add(1);
          continue;
        }
        const std::string& e = r->endpoint();
        if (e.size() != 2 || e[0] != 'e' || e[1] < '0' || e[1] > '5') bad.fetch_add(1);
        if ((local + static_cast<std::uint64_t>(t)) % 7 == 0) {
          r->failure(1ms);
        } else {
          r->success(2ms);
        }
        ++local;
      }
      picks.fetch_add(local);
    });
  }
  while (started.load() != threads) std::this_thread::yield();
  for (int round = 0; round < 100; ++round) {
    lb.add(eps[4], 1 + round % 3);
    lb.add(eps[5]);
    lb.set_weight(eps[4], 2);
    lb.remove(eps[5]);
    lb.remove(eps[4]);
  }
  stop.store(true, std::memory_order_release);
  for (auto& w : workers) w.join();
  CHECK(bad.load() == 0);
  CHECK(picks.load() >= 2000U * static_cast<std::uint64_t>(threads));
  for (int i = 0; i < 4; ++i) CHECK(lb.stats(eps[i]).active == 0);
}

}  // namespace

TEST_CASE("load_balancer picks from many threads while endpoints join, leave and change weight",
          "[load_balancer][concurrent]") {
  for (const int threads : {1, 2, 4, 8}) {
    CAPTURE(threads);
    SECTION("P2C least-request") {
      distkit::load_balancer<std::string> lb;
      churn_while_picking(lb, threads);
    }
    SECTION("round robin") {
      distkit::load_balancer<std::string, distkit::round_robin_picker> lb;
      churn_while_picking(lb, threads);
    }
    SECTION("P2C peak-EWMA") {
      distkit::load_balancer<std::string, distkit::p2c_peak_ewma_picker> lb;
      churn_while_picking(lb, threads);
    }
    SECTION("Maglev affinity") {
      distkit::load_balancer<std::string, distkit::hash_picker<distkit::maglev_placement>> lb;
      churn_while_picking(lb, threads);
    }
  }
}

TEST_CASE("load_balancer ejection accounting stays exact under concurrent failures", "[load_balancer][concurrent]") {
  distkit::outlier_detection health;
  health.consecutive_failures = 3;
  health.max_ejection_percent = 30;
  health.panic_threshold_percent = 0;
  distkit::load_balancer<std::string, distkit::round_robin_picker> lb({}, {}, health);
  for (int i = 0; i < 10; ++i) lb.add("e" + std::to_string(i));
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        if (auto r = lb.try_pick()) r->failure(1ms);
      }
    });
  }
  for (auto& w : workers) w.join();
  // Everything failed: exactly the budget (3 of 10) is ejected, never more.
  std::size_t ejected = 0;
  for (int i = 0; i < 10; ++i) ejected += lb.stats("e" + std::to_string(i)).ejected ? 1 : 0;
  CHECK(ejected == lb.ejected_count());
  CHECK(ejected == 3);
}

TEST_CASE("load_balancer with a concurrency limit never has more requests in flight than the limit",
          "[load_balancer][concurrent][admission]") {
  using admission = distkit::concurrency_limit_admission<distkit::aimd_limit>;
  using lb_t = distkit::load_balancer<std::string, distkit::p2c_least_request_picker, distkit::outlier_detection,
                                      distkit::steady_time, admission>;
  for (const int threads : {2, 4, 8}) {
    CAPTURE(threads);
    // Fewer places than threads, so that picks are refused all along.
    const auto limit = static_cast<double>(threads / 2);
    lb_t lb({}, {}, {}, {}, admission{distkit::aimd_limit{{.initial = limit, .min = limit, .max = limit}}});
    for (int i = 0; i < 4; ++i) lb.add("e" + std::to_string(i));
    constexpr int quota = 2000;                // admitted requests per thread
    constexpr long max_attempts = 20'000'000;  // a bounded wait: a lost token fails, never hangs
    std::atomic<int> in_flight{0};
    std::atomic<int> most{0};
    std::atomic<int> finished{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        int admitted = 0;
        for (long attempt = 0; attempt < max_attempts && admitted < quota; ++attempt) {
          auto r = lb.try_pick();
          if (!r) {
            std::this_thread::yield();
            continue;
          }
          const int now = in_flight.fetch_add(1) + 1;
          int seen = most.load();
          while (now > seen && !most.compare_exchange_weak(seen, now)) {
          }
          std::this_thread::yield();
          in_flight.fetch_sub(1);
          switch ((admitted + t) % 3) {
            case 0:
              r->success(std::chrono::milliseconds(1));
              break;
            case 1:
              r->failure(std::chrono::milliseconds(1));
              break;
            default:
              r->release();
          }
          ++admitted;
        }
        if (admitted == quota) finished.fetch_add(1);
      });
    }
    for (auto& w : workers) w.join();
    CHECK(finished.load() == threads);
    CHECK(most.load() >= 1);
    CHECK(most.load() <= static_cast<int>(limit));
    CHECK(lb.admission().inflight() == 0);
    CHECK(lb.admission().limit() == static_cast<std::size_t>(limit));
    for (int i = 0; i < 4; ++i) CHECK(lb.stats("e" + std::to_string(i)).active == 0);
  }
}

TEST_CASE("load_balancer snapshot readers stay safe while threads come and go, more than the 64 reader slots",
          "[load_balancer][concurrent][snapshot]") {
  // Waves of 80 reader threads (more than the 64 owned slots: the rest share counters), each
  // exiting before the next wave claims the slots they gave back, while a writer publishes
  // without pause. Every value read must be whole (ASan and TSan see a value freed while read),
  // and when the readers are gone no reader may be left counted (a publish would wait forever).
  struct payload {
    std::uint64_t magic = 0x5EED5EED;
    std::vector<std::uint64_t> data = std::vector<std::uint64_t>(8, 7);
  };
  distkit::detail::snapshot_cell<payload> cell(std::make_unique<const payload>(), 1);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> publishes{0};
  std::thread writer([&] {
    while (!stop.load(std::memory_order_acquire)) {
      const std::lock_guard<std::mutex> lock(cell.write_mutex());
      cell.publish(std::make_unique<const payload>());
      publishes.fetch_add(1, std::memory_order_relaxed);
    }
  });
  std::atomic<std::uint64_t> bad{0};
  for (int wave = 0; wave < 3; ++wave) {
    std::vector<std::thread> readers;
    for (int t = 0; t < 80; ++t) {
      readers.emplace_back([&] {
        for (int i = 0; i < 500; ++i) {
          const auto g = cell.read();
          if (g->magic != 0x5EED5EED || g->data.size() != 8 || g->data[7] != 7) bad.fetch_add(1);
          {
            const auto nested = cell.read();  // a read inside a read on the same thread
            if (nested->magic != 0x5EED5EED) bad.fetch_add(1);
          }
        }
      });
    }
    for (auto& r : readers) r.join();
  }
  stop.store(true, std::memory_order_release);
  writer.join();
  CHECK(bad.load() == 0);
  CHECK(publishes.load() > 0);
  CHECK(cell.readers() == 0);
}
