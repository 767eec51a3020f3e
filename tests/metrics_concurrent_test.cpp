// SPDX-License-Identifier: MIT
// Concurrent tests of distkit/metrics.hpp (run under TSan): increments from many threads are
// never lost, whether a thread owns a shard slot or shares the overflow cell, while threads come
// and go (slots are handed over) and while a scraper reads.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "distkit/metrics.hpp"
#include "distkit/metrics/bloom_filter.hpp"
#include "distkit/metrics/circuit_breaker.hpp"
#include "distkit/metrics/hash_ring.hpp"
#include "distkit/metrics/pipeline.hpp"
#include "distkit/metrics/rate_limiter.hpp"
#include "distkit/metrics/worker_pool.hpp"

TEST_CASE("metrics concurrent increments from several threads lose nothing", "[metrics][concurrent]") {
  // More threads than shard slots, so some of them use the shared overflow cells.
  const std::size_t slots = distkit::detail::metric_slot_count();
  for (const std::size_t threads : {std::size_t{1}, std::size_t{2}, std::size_t{4}, std::size_t{8}, slots + 3}) {
    constexpr std::uint64_t per_thread = 20'000;
    distkit::metrics_registry reg;
    auto& c = reg.make_counter("distkit_test_events_total", "Events.");
    auto& g = reg.make_gauge("distkit_test_level", "Level.");
    auto& h = reg.make_histogram("distkit_test_value", "Values.");
    std::atomic<bool> done{false};
    std::uint64_t last_seen = 0;
    bool monotonic = true;
    std::thread scraper([&] {
      while (!done.load(std::memory_order_acquire)) {
        const std::uint64_t v = c.value();
        if (v < last_seen) monotonic = false;
        last_seen = v;
        (void)reg.to_openmetrics();
      }
    });
    std::vector<std::thread> workers;
    for (std::size_t t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        for (std::uint64_t i = 0; i < per_thread; ++i) {
          c.inc();
          g.add(2);
          g.sub(1);
          h.observe(t * 1000 + (i % 300));
        }
      });
    }
    for (auto& w : workers) w.join();
    done.store(true, std::memory_order_release);
    scraper.join();
    INFO(threads << " threads, " << slots << " shard slots");
    CHECK(monotonic);
    CHECK(c.value() == threads * per_thread);
    CHECK(g.value() == static_cast<double>(threads * per_thread));
    const auto s = h.snapshot();
    CHECK(s.count == threads * per_thread);
    std::uint64_t sum = 0;
    for (std::size_t t = 0; t < threads; ++t) {
      for (std::uint64_t i = 0; i < per_thread; ++i) sum += t * 1000 + (i % 300);
    }
    CHECK(s.sum == sum);
  }
}

TEST_CASE("metrics counts survive threads exiting and their slots being reused", "[metrics][concurrent]") {
  distkit::counter c;
  distkit::histogram h;
  constexpr int waves = 20;
  constexpr int per_wave = 3;
  constexpr std::uint64_t per_thread = 1000;
  for (int wave = 0; wave < waves; ++wave) {
    std::vector<std::thread> ts;
    for (int t = 0; t < per_wave; ++t) {
      ts.emplace_back([&] {
        for (std::uint64_t i = 0; i < per_thread; ++i) {
          c.inc();
          h.observe(i);
        }
      });
    }
    for (auto& t : ts) t.join();
  }
  CHECK(c.value() == waves * per_wave * per_thread);
  CHECK(h.snapshot().count == waves * per_wave * per_thread);
  // Every slot was given back: a new thread can claim one.
  int slot = -3;
  std::thread([&] { slot = distkit::detail::metric_slot_index(); }).join();
  CHECK(slot >= 0);
}

TEST_CASE("metrics families create children concurrently, one per label tuple", "[metrics][concurrent]") {
  distkit::metrics_registry reg;
  auto& fam = reg.counter_family("distkit_test_requests_total", "Requests.", {"code"});
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) fam.with({std::to_string(i % 7)}).inc();
    });
  }
  for (auto& t : ts) t.join();
  std::uint64_t total = 0;
  for (int code = 0; code < 7; ++code) total += fam.with({std::to_string(code)}).value();
  CHECK(total == 4000);
}

TEST_CASE("metrics of a breaker and a limiter shared by several threads count every call", "[metrics][concurrent]") {
  using namespace std::chrono_literals;
  distkit::metrics_registry reg;
  distkit::circuit_breaker<distkit::count_window, distkit::steady_time, distkit::breaker_registry_metrics> breaker{
      {}, {}, {reg, "b"}};
  distkit::rate_limiter<distkit::gcra, distkit::steady_time, distkit::local_store<distkit::gcra>,
                        distkit::limiter_registry_metrics>
      limiter{{.limit = 1000, .window = 3600s}, {}, {reg, "l"}};
  constexpr int threads = 4;
  constexpr int calls = 5000;
  std::atomic<std::uint64_t> allowed{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < calls; ++i) {
        if (auto p = breaker.try_acquire()) p->record_success(1ms);
        if (limiter.try_acquire(t)) allowed.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (auto& t : ts) t.join();
  const std::string text = reg.to_prometheus();
  CHECK(text.find("distkit_circuit_breaker_calls_total{breaker=\"b\",outcome=\"success\"} " +
                  std::to_string(threads * calls) + "\n") != std::string::npos);
  CHECK(text.find("decision=\"allowed\",reason=\"none\"} " + std::to_string(allowed.load()) + "\n") !=
        std::string::npos);
  CHECK(text.find("decision=\"denied\",reason=\"rate_limited\"} " + std::to_string(threads * calls - allowed.load()) +
                  "\n") != std::string::npos);
}

TEST_CASE("metrics of a worker pool are read from its counters at scrape time", "[metrics][worker_pool][concurrent]") {
  distkit::metrics_registry reg;
  const auto sample = [&](const std::string& series) {
    const std::string text = reg.to_prometheus();
    const auto at = text.find(series + " ");
    if (at == std::string::npos) return std::string("<absent>");
    const auto start = at + series.size() + 1;
    return text.substr(start, text.find('\n', start) - start);
  };
  {
    distkit::worker_pool<distkit::work_stealing_queue, distkit::rejecting_overflow> pool{
        distkit::worker_pool_options{.threads = 2, .capacity = 1}};
    distkit::worker_pool_metrics exported{reg, pool, "io"};
    std::atomic<int> ran{0};
    for (int i = 0; i < 100; ++i) {
      while (pool.try_post([&] { ran.fetch_add(1); }) != distkit::admission::accepted) std::this_thread::yield();
    }
    pool.wait_idle();
    CHECK(ran.load() == 100);
    CHECK(sample("distkit_worker_pool_tasks_submitted_total{pool=\"io\"}") == "100");
    CHECK(sample("distkit_worker_pool_tasks_completed_total{pool=\"io\"}") == "100");
    CHECK(sample("distkit_worker_pool_queue_depth{pool=\"io\"}") == "0");
    CHECK(sample("distkit_worker_pool_threads{pool=\"io\"}") == "2");
    CHECK(sample("distkit_worker_pool_tasks_rejected_total{pool=\"io\"}") == std::to_string(pool.stats().rejected));
    CHECK_THROWS_WITH((distkit::worker_pool_metrics{reg, pool, "io"}), Catch::Contains("label_values"));
    // The registration is destroyed before the pool: its series leave the exposition.
  }
  CHECK(sample("distkit_worker_pool_tasks_submitted_total{pool=\"io\"}") == "<absent>");
  CHECK(reg.to_prometheus().find("# TYPE distkit_worker_pool_tasks_submitted_total counter") != std::string::npos);
}

TEST_CASE("metrics of a pipeline are read from its stage counters at scrape time", "[metrics][pipeline][concurrent]") {
  distkit::metrics_registry reg;
  const auto sample = [&](const std::string& series) {
    const std::string text = reg.to_prometheus();
    const auto at = text.find(series + " ");
    if (at == std::string::npos) return std::string("<absent>");
    const auto start = at + series.size() + 1;
    return text.substr(start, text.find('\n', start) - start);
  };
  int next = 0;
  std::atomic<long> total{0};
  auto p = distkit::make_pipeline(
      {.max_in_flight = 16, .threads = 2},
      distkit::source([&]() -> std::optional<int> { return next < 1000 ? std::optional(next++) : std::nullopt; }),
      distkit::stage(distkit::parallel(),
                     [](int x) -> std::optional<int> {
                       if (x % 4 == 0) return std::nullopt;
                       return x;
                     }),
      distkit::sink(distkit::serial_in_order, [&](int x) { total.fetch_add(x, std::memory_order_relaxed); }));
  {
    distkit::pipeline_metrics exported{reg, p, "ingest"};
    CHECK(sample("distkit_pipeline_stage_items_out_total{pipeline=\"ingest\",stage=\"0\"}") == "0");
    std::thread scraper([&] {
      for (int i = 0; i < 20; ++i) (void)reg.to_prometheus();  // scrapes while the run goes on
    });
    CHECK(p.run() == distkit::pipeline_status::completed);
    scraper.join();
    CHECK(sample("distkit_pipeline_stage_items_out_total{pipeline=\"ingest\",stage=\"0\"}") == "1000");
    CHECK(sample("distkit_pipeline_stage_items_in_total{pipeline=\"ingest\",stage=\"1\"}") == "1000");
    CHECK(sample("distkit_pipeline_stage_items_dropped_total{pipeline=\"ingest\",stage=\"1\"}") == "250");
    CHECK(sample("distkit_pipeline_stage_items_in_total{pipeline=\"ingest\",stage=\"2\"}") == "750");
    CHECK(sample("distkit_pipeline_items_in_flight{pipeline=\"ingest\"}") == "0");
    const auto peak = std::stoi(sample("distkit_pipeline_peak_items_in_flight{pipeline=\"ingest\"}"));
    CHECK(peak >= 1);
    CHECK(peak <= 16);
  }
  CHECK(sample("distkit_pipeline_items_in_flight{pipeline=\"ingest\"}") == "<absent>");
}

TEST_CASE("metrics: a lock-free Bloom filter and a concurrent hash ring are scraped while they change",
          "[metrics][concurrent][bloom_filter][hash_ring]") {
  distkit::metrics_registry reg;
  distkit::bloom_filter<std::uint64_t, distkit::xxh3_hash, distkit::split_block_layout, distkit::lock_free_concurrency>
      seen(100'000, 0.01);
  distkit::bloom_filter_metrics seen_metrics{reg, seen, "seen"};
  distkit::concurrent_hash_ring<std::string> ring;
  distkit::hash_ring_metrics ring_metrics{reg, ring, "cache"};
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (std::uint64_t i = 0; i < 50'000; ++i) {
      seen.insert(i);
      if (i % 1000 == 0) ring.add("node-" + std::to_string(i / 1000));
    }
    done.store(true);
  });
  std::size_t scrapes = 0;
  while (!done.load() || scrapes == 0) {
    const std::string text = reg.to_prometheus();
    CHECK(text.find("distkit_bloom_filter_fill_ratio{filter=\"seen\"}") != std::string::npos);
    ++scrapes;
  }
  writer.join();
  const std::string text = reg.to_prometheus();
  CHECK(text.find("distkit_hash_ring_nodes{ring=\"cache\"} 50") != std::string::npos);
}
