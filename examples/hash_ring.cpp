// SPDX-License-Identifier: MIT
// examples/hash_ring.cpp: shard a million keys over 10 cache servers, add an 11th, and see how
// few keys move, the load per server, and the replica set of one key.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "distkit/hash_ring.hpp"

int main() try {
  distkit::hash_ring<std::string> ring;  // XXH3 keys, 160 virtual nodes per server
  for (int i = 1; i <= 10; ++i) ring.add("cache-" + std::to_string(i) + ":11211");

  constexpr std::size_t keys = 1'000'000;
  std::vector<std::uint32_t> before(keys);
  for (std::size_t k = 0; k < keys; ++k)
    before[k] = static_cast<std::uint32_t>(ring.index_for("user:" + std::to_string(k)));

  ring.add("cache-11:11211");
  std::vector<std::size_t> load(ring.size(), 0);
  std::size_t moved = 0;
  for (std::size_t k = 0; k < keys; ++k) {
    const std::size_t now = ring.index_for("user:" + std::to_string(k));
    ++load[now];
    if (now != before[k]) ++moved;  // indices of the first 10 servers did not change
  }
  std::printf("added cache-11: %zu of %zu keys moved (%.2f%%; the ideal is 1/11 = %.2f%%)\n", moved, keys,
              100.0 * static_cast<double>(moved) / keys, 100.0 / 11);
  for (std::size_t s = 0; s < ring.size(); ++s) {
    std::printf("  %-16s %7zu keys (%.2fx the mean)\n", ring.node_at(s).c_str(), load[s],
                static_cast<double>(load[s]) * static_cast<double>(ring.size()) / keys);
  }

  const std::vector<std::string> replicas = ring.nodes_for("user:42", 3);
  std::printf("replica set of user:42: %s (primary), %s, %s\n", replicas[0].c_str(), replicas[1].c_str(),
              replicas[2].c_str());

  // The same servers as libmemcached's weighted ketama would pick:
  distkit::ketama_ring<std::string> ketama;
  for (int i = 1; i <= 10; ++i) ketama.add("cache-" + std::to_string(i) + ":11211");
  std::printf("ketama (libmemcached-compatible) owner of user:42: %s\n", ketama.node_for("user:42").c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "hash-ring example: %s\n", e.what());
  return 1;
}
