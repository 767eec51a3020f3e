// SPDX-License-Identifier: MIT
// benchmarks/hash_bench.cpp: the four hash policies on 8, 16, 64 and 1024-byte keys.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "distkit/hash.hpp"
#include "distkit/md5.hpp"

namespace {

// 1,024 distinct random keys of the given length, cycled through so the branch predictor and
// the cache see realistic variety rather than one hot key.
auto make_keys(std::size_t length) -> std::vector<std::string> {
  std::mt19937_64 rng(42);
  std::vector<std::string> keys(1024);
  for (auto& k : keys) {
    k.resize(length);
    for (auto& c : k) c = static_cast<char>('a' + rng() % 26);
  }
  return keys;
}

template <class Hash>
void bm_hash(benchmark::State& state) {
  const auto keys = make_keys(static_cast<std::size_t>(state.range(0)));
  const Hash hash;
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(hash(keys[i++ & 1023]));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}

}  // namespace

BENCHMARK_TEMPLATE(bm_hash, distkit::xxh3_hash)->Arg(8)->Arg(16)->Arg(64)->Arg(1024);
BENCHMARK_TEMPLATE(bm_hash, distkit::xxh64_hash)->Arg(8)->Arg(16)->Arg(64)->Arg(1024);
BENCHMARK_TEMPLATE(bm_hash, distkit::fnv1a_hash)->Arg(8)->Arg(16)->Arg(64)->Arg(1024);
BENCHMARK_TEMPLATE(bm_hash, distkit::md5_hash)->Arg(8)->Arg(16)->Arg(64)->Arg(1024);

BENCHMARK_MAIN();
