// SPDX-License-Identifier: MIT
// Tests of distkit::bloom_filter with the lock_free_concurrency policy: parallel inserts lose no key,
// and queries run safely alongside inserts (the TSan leg runs this file).
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "distkit/bloom_filter.hpp"
#include "support/seed.hpp"

namespace {

template <class Layout>
using concurrent_filter =
    distkit::bloom_filter<std::uint64_t, distkit::xxh3_hash, Layout, distkit::lock_free_concurrency>;
template <class Layout>
using plain_filter = distkit::bloom_filter<std::uint64_t, distkit::xxh3_hash, Layout>;

auto mix(std::uint64_t x) -> std::uint64_t {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

TEMPLATE_TEST_CASE("bloom_filter with lock_free_concurrency loses no key when threads insert at once",
                   "[bloom_filter][concurrent]", distkit::classic_layout, distkit::blocked_layout,
                   distkit::split_block_layout) {
  const auto seed = distkit_test::test_seed("bloom_filter concurrent inserts");
  constexpr std::uint64_t per_thread = 5000;
  for (const unsigned threads : {1U, 2U, 4U, 8U}) {
    INFO(threads << " threads");
    const std::uint64_t total = per_thread * threads;
    concurrent_filter<TestType> shared(total, 0.01);
    std::vector<std::thread> workers;
    for (unsigned t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        std::vector<std::uint64_t> batch;
        for (std::uint64_t i = t * per_thread; i < (t + 1) * per_thread; ++i) {
          // Half one by one, half through the prefetching batch path.
          if (i % 2 == 0) {
            shared.insert(mix(seed ^ mix(i)));
          } else {
            batch.push_back(mix(seed ^ mix(i)));
          }
        }
        shared.insert_many(batch);
      });
    }
    for (auto& w : workers) w.join();
    std::size_t missing = 0;
    for (std::uint64_t i = 0; i < total; ++i) missing += shared.contains(mix(seed ^ mix(i))) ? 0U : 1U;
    CHECK(missing == 0);
    // Set bits commute: the result is the filter one thread would have built.
    plain_filter<TestType> serial(total, 0.01);
    for (std::uint64_t i = 0; i < total; ++i) serial.insert(mix(seed ^ mix(i)));
    CHECK((shared.to_bytes() == serial.to_bytes()));
  }
}

TEMPLATE_TEST_CASE("bloom_filter with lock_free_concurrency answers queries while others insert",
                   "[bloom_filter][concurrent]", distkit::classic_layout, distkit::blocked_layout,
                   distkit::split_block_layout) {
  const auto seed = distkit_test::test_seed("bloom_filter concurrent readers");
  constexpr std::uint64_t n = 20000;
  concurrent_filter<TestType> f(n, 0.01);
  concurrent_filter<TestType> other(n, 0.01);
  std::atomic<std::uint64_t> published{0};
  std::atomic<std::size_t> missing{0};
  std::thread writer([&] {
    for (std::uint64_t i = 0; i < n; ++i) {
      f.insert(mix(seed ^ i));
      published.store(i + 1, std::memory_order_release);  // a key is published after its insert
    }
  });
  std::thread merger([&] {
    for (std::uint64_t i = 0; i < n; i += 64) other.insert(mix(~seed ^ i));
  });
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&, r] {
      std::uint64_t checked = 0;
      while (checked < n) {
        const std::uint64_t upto = published.load(std::memory_order_acquire);
        for (; checked < upto; ++checked) {
          if (!f.contains(mix(seed ^ checked))) missing.fetch_add(1);
        }
        if (r == 0) (void)f.estimated_false_positive_rate();  // whole-array reads race-free too
        std::this_thread::yield();
      }
    });
  }
  writer.join();
  for (auto& t : readers) t.join();
  merger.join();
  f.merge(other);
  CHECK(missing.load() == 0);
  for (std::uint64_t i = 0; i < n; i += 64) REQUIRE(f.contains(mix(~seed ^ i)));
  CHECK(f.approximate_count() == Approx(static_cast<double>(n + n / 64)).epsilon(0.05));
}
