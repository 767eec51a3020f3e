// SPDX-License-Identifier: MIT
// benchmarks/hash_ring_bench.cpp: key -> node lookups for 10, 100 and 1000 nodes with every
// placement, against libmemcached's ketama (`memcached_generate_hash`) on the same keys; the
// split of a ketama lookup into key hashing and search; replica sets against single lookups.
#include <benchmark/benchmark.h>
#include <libhashkit-1.0/hashkit.h>
#include <libmemcached/memcached.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "distkit/hash_ring.hpp"
#include "distkit/md5.hpp"

namespace {

constexpr std::size_t key_count = 1 << 16;  // cycled; distinct keys defeat the branch predictor

// Cache-style keys of 10 to 30 bytes ("user:<id>:session" and the like).
auto keys() -> const std::vector<std::string>& {
  static const std::vector<std::string> k = [] {
    std::mt19937_64 rng(42);
    std::vector<std::string> out(key_count);
    for (auto& s : out) {
      s = "user:" + std::to_string(rng() % 100'000'000);
      if (rng() % 2 == 0) s += ":session:" + std::to_string(rng() % 1000);
    }
    return out;
  }();
  return k;
}

auto server(std::size_t i) -> std::string {
  return "10." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ".1:11211";
}

template <class Ring>
auto make_ring(std::size_t n) -> Ring {
  Ring ring;
  std::vector<std::pair<std::string, std::int64_t>> members;
  for (std::size_t i = 0; i < n; ++i) members.emplace_back(server(i), 1);
  ring.add(members);
  return ring;
}

using ring_t = distkit::hash_ring<std::string>;
using ketama_t = distkit::ketama_ring<std::string>;
using jump_t = distkit::hash_ring<std::string, distkit::xxh3_hash, distkit::jump_placement>;
using rendezvous_t = distkit::hash_ring<std::string, distkit::xxh3_hash, distkit::rendezvous_placement>;
using maglev_t = distkit::hash_ring<std::string, distkit::xxh3_hash, distkit::maglev_placement>;

// End to end: hash the key, find the node index.
template <class Ring>
void bm_lookup(benchmark::State& state) {
  const Ring ring = make_ring<Ring>(static_cast<std::size_t>(state.range(0)));
  const auto& k = keys();
  std::size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(ring.index_for(k[i++ & (key_count - 1)]));
}

// libmemcached 1.1.4, weighted ketama (MD5 key hash): the same keys, the same server names.
struct memcached_ring {
  memcached_st* memc = memcached_create(nullptr);
  explicit memcached_ring(std::size_t n) {
    memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_DISTRIBUTION, MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA);
    memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1);
    memcached_server_list_st list = nullptr;
    for (std::size_t i = 0; i < n; ++i) {
      memcached_return_t rc = MEMCACHED_SUCCESS;
      const std::string host = server(i).substr(0, server(i).size() - 6);
      list = memcached_server_list_append_with_weight(list, host.c_str(), 11211, 1, &rc);
    }
    memcached_server_push(memc, list);
    memcached_server_list_free(list);
  }
  memcached_ring(const memcached_ring&) = delete;
  auto operator=(const memcached_ring&) -> memcached_ring& = delete;
  ~memcached_ring() { memcached_free(memc); }
};

void bm_libmemcached_lookup(benchmark::State& state) {
  const memcached_ring peer(static_cast<std::size_t>(state.range(0)));
  const auto& k = keys();
  std::size_t i = 0;
  for (auto _ : state) {
    const std::string& key = k[i++ & (key_count - 1)];
    benchmark::DoNotOptimize(memcached_generate_hash(peer.memc, key.data(), key.size()));
  }
}

// The two halves of a ketama lookup: the key's MD5 ...
void bm_ketama_key_hash(benchmark::State& state) {
  const auto& k = keys();
  std::size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(distkit::ketama_key_hash{}(k[i++ & (key_count - 1)]));
}
void bm_openssl_md5_key_hash(benchmark::State& state) {
  const auto& k = keys();
  std::size_t i = 0;
  for (auto _ : state) {
    const std::string& key = k[i++ & (key_count - 1)];
    benchmark::DoNotOptimize(distkit::md5_hash::digest(key.data(), key.size()));
  }
}
void bm_libhashkit_md5_key_hash(benchmark::State& state) {
  const auto& k = keys();
  std::size_t i = 0;
  for (auto _ : state) {
    const std::string& key = k[i++ & (key_count - 1)];
    benchmark::DoNotOptimize(libhashkit_md5(key.data(), key.size()));
  }
}
// ... and the search of the continuum for a precomputed hash.
template <class Ring>
void bm_search_only(benchmark::State& state) {
  const Ring ring = make_ring<Ring>(static_cast<std::size_t>(state.range(0)));
  std::vector<std::uint64_t> hashes(key_count);
  for (std::size_t j = 0; j < key_count; ++j) hashes[j] = ring.hash_function()(keys()[j]);
  std::size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(ring.placement_policy().lookup(hashes[i++ & (key_count - 1)]));
}

// Replica sets: three distinct nodes, as indices into a caller's buffer and as the nodes.
template <class Ring>
void bm_indices_for_3(benchmark::State& state) {
  const Ring ring = make_ring<Ring>(static_cast<std::size_t>(state.range(0)));
  const auto& k = keys();
  std::uint32_t out[3];
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ring.indices_for(k[i++ & (key_count - 1)], out));
    benchmark::DoNotOptimize(out);
  }
}
template <class Ring>
void bm_nodes_for_3(benchmark::State& state) {
  const Ring ring = make_ring<Ring>(static_cast<std::size_t>(state.range(0)));
  const auto& k = keys();
  std::size_t i = 0;
  for (auto _ : state) {
    // The nodes themselves, not only the set: a replica set is used by reading its nodes.
    std::size_t bytes = 0;
    for (const auto& node : ring.nodes_for(k[i++ & (key_count - 1)], 3)) bytes += node.size();
    benchmark::DoNotOptimize(bytes);
  }
}
// The single lookup that `nodes_for` is measured against: the node itself, read the same way.
template <class Ring>
void bm_node_for(benchmark::State& state) {
  const Ring ring = make_ring<Ring>(static_cast<std::size_t>(state.range(0)));
  const auto& k = keys();
  std::size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(ring.node_for(k[i++ & (key_count - 1)]).size());
}

// A lookup through the concurrent ring: one atomic shared_ptr load per call, vs a held snapshot.
void bm_concurrent_node_for(benchmark::State& state) {
  distkit::concurrent_hash_ring<std::string> ring;
  ring.update([&](auto& r) { r = make_ring<ring_t>(static_cast<std::size_t>(state.range(0))); });
  const auto& k = keys();
  std::size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(ring.snapshot()->index_for(k[i++ & (key_count - 1)]));
}

// The search alone, radix index + scan vs std::lower_bound, over the same sorted 64-bit points
// (160 per node) and the same random probes.
auto random_points(std::size_t count, std::uint64_t seed) -> std::vector<std::uint64_t> {
  std::mt19937_64 rng(seed);
  std::vector<std::uint64_t> v(count);
  for (auto& x : v) x = rng();
  return v;
}
void bm_radix_search(benchmark::State& state) {
  const auto points = random_points(static_cast<std::size_t>(state.range(0)) * 160, 1);
  std::vector<std::pair<std::uint64_t, std::uint32_t>> pairs;
  for (std::size_t j = 0; j < points.size(); ++j) pairs.emplace_back(points[j], static_cast<std::uint32_t>(j % 7));
  distkit::detail::ring_points<std::uint64_t> ring;
  ring.assign(std::move(pairs));
  const auto probes = random_points(key_count, 2);
  std::size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(ring.position(probes[i++ & (key_count - 1)]));
}
void bm_lower_bound_search(benchmark::State& state) {
  auto points = random_points(static_cast<std::size_t>(state.range(0)) * 160, 1);
  std::sort(points.begin(), points.end());
  const auto probes = random_points(key_count, 2);
  std::size_t i = 0;
  for (auto _ : state) {
    auto it = std::lower_bound(points.begin(), points.end(), probes[i++ & (key_count - 1)]);
    benchmark::DoNotOptimize(it == points.end() ? 0 : it - points.begin());
  }
}

}  // namespace

#define DISTKIT_NODES ->Arg(10)->Arg(100)->Arg(1000)
// libmemcached aborts above 100 servers (an assertion in update_continuum: its continuum is sized
// for at most 100 servers of 100 points), so the peer runs at 10 and 100 only.
BENCHMARK(bm_libmemcached_lookup)->Arg(10)->Arg(100);
BENCHMARK_TEMPLATE(bm_lookup, ketama_t) DISTKIT_NODES;
BENCHMARK_TEMPLATE(bm_lookup, ring_t) DISTKIT_NODES;
BENCHMARK_TEMPLATE(bm_lookup, jump_t) DISTKIT_NODES;
BENCHMARK_TEMPLATE(bm_lookup, rendezvous_t) DISTKIT_NODES;
BENCHMARK_TEMPLATE(bm_lookup, maglev_t) DISTKIT_NODES;
BENCHMARK(bm_libhashkit_md5_key_hash);
BENCHMARK(bm_openssl_md5_key_hash);
BENCHMARK(bm_ketama_key_hash);
BENCHMARK_TEMPLATE(bm_search_only, ketama_t) DISTKIT_NODES;
BENCHMARK_TEMPLATE(bm_search_only, ring_t) DISTKIT_NODES;
BENCHMARK(bm_radix_search) DISTKIT_NODES;
BENCHMARK(bm_lower_bound_search) DISTKIT_NODES;
BENCHMARK_TEMPLATE(bm_indices_for_3, ring_t) DISTKIT_NODES;
BENCHMARK_TEMPLATE(bm_indices_for_3, ketama_t) DISTKIT_NODES;
BENCHMARK_TEMPLATE(bm_indices_for_3, maglev_t) DISTKIT_NODES;
BENCHMARK_TEMPLATE(bm_node_for, ring_t) DISTKIT_NODES;
BENCHMARK_TEMPLATE(bm_nodes_for_3, ring_t) DISTKIT_NODES;
BENCHMARK_TEMPLATE(bm_node_for, ketama_t) DISTKIT_NODES;
BENCHMARK_TEMPLATE(bm_nodes_for_3, ketama_t) DISTKIT_NODES;
BENCHMARK_TEMPLATE(bm_node_for, jump_t) DISTKIT_NODES;
BENCHMARK_TEMPLATE(bm_nodes_for_3, jump_t) DISTKIT_NODES;
BENCHMARK_TEMPLATE(bm_node_for, rendezvous_t) DISTKIT_NODES;
BENCHMARK_TEMPLATE(bm_nodes_for_3, rendezvous_t) DISTKIT_NODES;
BENCHMARK_TEMPLATE(bm_node_for, maglev_t) DISTKIT_NODES;
BENCHMARK_TEMPLATE(bm_nodes_for_3, maglev_t) DISTKIT_NODES;
BENCHMARK(bm_concurrent_node_for) DISTKIT_NODES;
BENCHMARK_TEMPLATE(bm_lookup, ring_t) DISTKIT_NODES;  // again, next to the concurrent figures

BENCHMARK_MAIN();
