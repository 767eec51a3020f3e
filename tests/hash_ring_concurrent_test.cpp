// SPDX-License-Identifier: MIT
// tests/hash_ring_concurrent_test.cpp: lookups from many threads while the membership changes
// (run under ThreadSanitizer in the `concurrent` leg).
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "distkit/hash_ring.hpp"

namespace {
auto node_name(std::size_t i) -> std::string { return "node-" + std::to_string(i); }
}  // namespace

TEST_CASE("hash_ring concurrent lookups never see a half-built ring while nodes join and leave",
          "[hash_ring][concurrent]") {
  for (const int readers : {1, 2, 4, 8}) {
    CAPTURE(readers);
    // Membership alternates between the nodes 0..9 and 0..10 (node 10 also changes weight), so
    // every published ring is one of those states; a lookup must give a member of its snapshot,
    // and the snapshot must be internally consistent (size and nodes agree).
    distkit::concurrent_hash_ring<std::string> ring;
    for (std::size_t i = 0; i < 10; ++i) ring.add(node_name(i));
    std::atomic<bool> stop{false};
    std::atomic<int> started{0};
    std::atomic<std::uint64_t> failures{0};
    std::atomic<std::uint64_t> lookups{0};
    std::vector<std::thread> threads;
    for (int r = 0; r < readers; ++r) {
      threads.emplace_back([&, r] {
        started.fetch_add(1);
        std::uint64_t local = 0;
        std::uint64_t bad = 0;
        std::uint64_t k = static_cast<std::uint64_t>(r) << 40;
        while (!stop.load(std::memory_order_acquire) || local < 1000) {
          const auto snap = ring.snapshot();
          const std::size_t n = snap->size();
          if (n != 10 && n != 11) ++bad;
          for (int i = 0; i < 64; ++i, ++k) {
            const std::string key = "key-" + std::to_string(k);
            const std::size_t idx = snap->index_for(key);
            if (idx >= n || !snap->contains(snap->node_at(idx))) ++bad;
            const auto replicas = snap->nodes_for(key, 3);
            if (replicas.size() != 3 || replicas[0] != snap->node_at(idx)) ++bad;
            ++local;
          }
          // The convenience path (one atomic load per call) must work too.
          const std::string owner = ring.node_for("key-" + std::to_string(k));
          if (owner.rfind("node-", 0) != 0) ++bad;
        }
        failures.fetch_add(bad);
        lookups.fetch_add(local);
      });
    }
    while (started.load() != readers) std::this_thread::yield();
    for (int round = 0; round < 60; ++round) {
      ring.add(node_name(10), 1 + round % 3);
      ring.set_weight(node_name(10), 2);
      ring.remove(node_name(10));
    }
    stop.store(true, std::memory_order_release);
    for (auto& t : threads) t.join();
    CHECK(failures.load() == 0);
    CHECK(lookups.load() >= static_cast<std::uint64_t>(readers) * 1000);
    CHECK(ring.size() == 10);
  }
}

TEST_CASE("hash_ring concurrent update applies several changes as one published ring", "[hash_ring][concurrent]") {
  distkit::concurrent_hash_ring<std::string> ring;
  ring.update([](auto& r) {
    r.add("a");
    r.add("b");
  });
  CHECK(ring.size() == 2);
  // A change that throws publishes nothing.
  CHECK_THROWS_AS(ring.update([](auto& r) {
    r.add("c");
    r.add("a");
  }),
                  std::invalid_argument);
  CHECK(ring.size() == 2);
  const auto held = ring.snapshot();
  ring.remove("a");
  CHECK(held->size() == 2);  // a held snapshot never changes
  CHECK(ring.snapshot()->size() == 1);
}
