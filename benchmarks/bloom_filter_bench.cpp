// SPDX-License-Identifier: MIT
// benchmarks/bloom_filter_bench.cpp: the three layouts against libbloom, same keys, same 1% target,
// for a filter that fits in cache (1M keys) and one that does not (100M keys): insert, positive
// and negative queries, single-key and batch paths.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "distkit/bloom_filter.hpp"

#if DISTKIT_BENCH_LIBBLOOM
#include <bloom.h>
#endif

namespace {

constexpr double target_rate = 0.01;
constexpr std::size_t chunk = 1024;                  // keys per benchmark iteration
constexpr std::uint64_t negative_base = 1ULL << 40;  // query keys never inserted
constexpr std::uint64_t scratch_base = 1ULL << 41;   // keys of the insert benchmarks

// The keys: 8-byte integers, splitmix64 of a counter (distinct, uniformly spread bytes).
inline auto key_at(std::uint64_t i) noexcept -> std::uint64_t {
  std::uint64_t x = i + 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

inline void fill_keys(std::array<std::uint64_t, chunk>& keys, std::uint64_t first) noexcept {
  for (std::size_t j = 0; j < chunk; ++j) keys[j] = key_at(first + j);
}

template <class Layout>
struct distkit_impl {
  using filter = distkit::bloom_filter<std::uint64_t, distkit::xxh3_hash, Layout>;
  static constexpr bool has_batch = true;
  filter f;
  explicit distkit_impl(std::uint64_t n) : f(n, target_rate) {}
  void insert(std::uint64_t key) noexcept { f.insert(key); }
  [[nodiscard]] auto contains(std::uint64_t key) const noexcept -> bool { return f.contains(key); }
  void insert_many(std::span<const std::uint64_t> keys) noexcept { f.insert_many(keys); }
  auto contains_many(std::span<const std::uint64_t> keys, std::span<bool> out) const -> std::size_t {
    return f.contains_many(keys, out);
  }
  [[nodiscard]] auto bits() const noexcept -> double { return static_cast<double>(f.bit_count()); }
  [[nodiscard]] auto hashes() const noexcept -> double { return f.hash_count(); }
};

#if DISTKIT_BENCH_LIBBLOOM
struct libbloom_impl {
  static constexpr bool has_batch = false;
  struct bloom b {};
  explicit libbloom_impl(std::uint64_t n) {
    if (bloom_init(&b, static_cast<int>(n), target_rate) != 0) std::abort();
  }
  libbloom_impl(const libbloom_impl&) = delete;
  auto operator=(const libbloom_impl&) -> libbloom_impl& = delete;
  ~libbloom_impl() { bloom_free(&b); }
  void insert(std::uint64_t key) noexcept { bloom_add(&b, &key, sizeof key); }
  [[nodiscard]] auto contains(std::uint64_t key) const noexcept -> bool {
    return bloom_check(const_cast<struct bloom*>(&b), &key, sizeof key) == 1;
  }
  [[nodiscard]] auto bits() const noexcept -> double { return b.bits; }
  [[nodiscard]] auto hashes() const noexcept -> double { return b.hashes; }
};
#endif

// One filter per (implementation, size), holding keys [0, n), built on first use and kept for
// the whole process, so a 100M-key filter is built once.
template <class Impl>
auto loaded(std::uint64_t n) -> const Impl& {
  static std::unique_ptr<Impl> small, large;
  auto& slot = n <= 1'000'000 ? small : large;
  if (!slot) {
    slot = std::make_unique<Impl>(n);
    if constexpr (Impl::has_batch) {
      std::array<std::uint64_t, chunk> keys;
      for (std::uint64_t i = 0; i < n; i += chunk) {
        fill_keys(keys, i);
        slot->insert_many(std::span<const std::uint64_t>(keys.data(), std::min<std::uint64_t>(chunk, n - i)));
      }
    } else {
      for (std::uint64_t i = 0; i < n; ++i) slot->insert(key_at(i));
    }
  }
  return *slot;
}

// An empty filter per (implementation, size) that the insert benchmarks fill.
template <class Impl>
auto scratch(std::uint64_t n) -> Impl& {
  static std::unique_ptr<Impl> small, large;
  auto& slot = n <= 1'000'000 ? small : large;
  if (!slot) slot = std::make_unique<Impl>(n);
  return *slot;
}

template <class Impl>
void report(benchmark::State& state, const Impl& impl, std::uint64_t n) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * chunk));
  state.counters["bits_per_key"] = impl.bits() / static_cast<double>(n);
  state.counters["k"] = impl.hashes();
}

// The query keys, made once before any timing: the loop reads them, so what a query costs does
// not include making its key (splitmix64, which a -march=native build vectorises and a default
// build does not: that difference belongs to the harness, not to the filter). 2^20 keys: for
// positive queries keys spread evenly over the n inserted ones, for negative ones keys never
// inserted. Read in order, 8 MiB, prefetched by the hardware.
constexpr std::size_t table_keys = std::size_t{1} << 20;
auto query_keys(std::uint64_t n, bool positive) -> const std::vector<std::uint64_t>& {
  static std::map<std::pair<std::uint64_t, bool>, std::vector<std::uint64_t>> tables;
  auto& table = tables[{n, positive}];
  if (table.empty()) {
    table.resize(table_keys);
    const std::uint64_t stride = std::max<std::uint64_t>(1, n / table_keys);
    for (std::size_t j = 0; j < table_keys; ++j) {
      table[j] = positive ? key_at((j * stride) % n) : key_at(negative_base + j);
    }
  }
  return table;
}

template <class Impl>
void bm_query(benchmark::State& state, std::uint64_t n, bool positive, bool batch) {
  const Impl& impl = loaded<Impl>(n);
  const std::vector<std::uint64_t>& table = query_keys(n, positive);
  std::array<bool, chunk> out{};
  std::size_t next = 0;
  std::size_t found = 0;
  for (auto _ : state) {
    const std::span<const std::uint64_t> keys(table.data() + next, chunk);
    next = (next + chunk) % table_keys;
    if constexpr (Impl::has_batch) {
      if (batch) {
        found += impl.contains_many(keys, out);
        benchmark::DoNotOptimize(found);
        continue;
      }
    }
    for (std::uint64_t key : keys) found += impl.contains(key) ? 1U : 0U;
    benchmark::DoNotOptimize(found);
  }
  report(state, impl, n);
  state.counters["hit_rate"] = static_cast<double>(found) / static_cast<double>(state.iterations() * chunk);
}

template <class Impl>
void bm_insert(benchmark::State& state, std::uint64_t n, bool batch) {
  Impl& impl = scratch<Impl>(n);
  std::array<std::uint64_t, chunk> keys;
  static std::uint64_t next = 0;  // fresh keys across repetitions
  for (auto _ : state) {
    fill_keys(keys, scratch_base + next);
    next += chunk;
    if constexpr (Impl::has_batch) {
      if (batch) {
        impl.insert_many(keys);
        benchmark::ClobberMemory();
        continue;
      }
    }
    for (std::uint64_t key : keys) impl.insert(key);
    benchmark::ClobberMemory();
  }
  report(state, impl, n);
}

template <class Impl>
void register_impl(const std::string& name) {
  for (const std::uint64_t n : {std::uint64_t{1'000'000}, std::uint64_t{100'000'000}}) {
    const std::string size = n == 1'000'000 ? "1M" : "100M";
    const std::string prefix = name + "/" + size + "/";
    benchmark::RegisterBenchmark((prefix + "insert").c_str(),
                                 [n](benchmark::State& s) { bm_insert<Impl>(s, n, false); });
    benchmark::RegisterBenchmark((prefix + "query_positive").c_str(),
                                 [n](benchmark::State& s) { bm_query<Impl>(s, n, true, false); });
    benchmark::RegisterBenchmark((prefix + "query_negative").c_str(),
                                 [n](benchmark::State& s) { bm_query<Impl>(s, n, false, false); });
    if constexpr (Impl::has_batch) {
      benchmark::RegisterBenchmark((prefix + "batch_insert").c_str(),
                                   [n](benchmark::State& s) { bm_insert<Impl>(s, n, true); });
      benchmark::RegisterBenchmark((prefix + "batch_query_positive").c_str(),
                                   [n](benchmark::State& s) { bm_query<Impl>(s, n, true, true); });
      benchmark::RegisterBenchmark((prefix + "batch_query_negative").c_str(),
                                   [n](benchmark::State& s) { bm_query<Impl>(s, n, false, true); });
    }
  }
}

// The memory floor: independent random 64-byte reads over a 128 MiB array (huge pages, as the
// filter's), with nothing else to do, so the core keeps as many misses in flight as it can. No
// out-of-cache query path can beat it.
void bm_memory_floor(benchmark::State& state) {
  constexpr std::size_t bytes = std::size_t{128} << 20;
  constexpr std::size_t lines = bytes / 64;
  static const distkit::detail::bloom_words<std::uint64_t> memory = [] {
    distkit::detail::bloom_words<std::uint64_t> w(bytes / 8);
    for (std::size_t i = 0; i < w.size(); i += 8) w.data()[i] = i;  // touch every page
    return w;
  }();
  const std::uint64_t* m = memory.data();
  std::uint64_t next = 0;
  std::uint64_t sum = 0;
  for (auto _ : state) {
    for (std::size_t j = 0; j < chunk; ++j, ++next) {
      sum += m[(key_at(next) % lines) * 8];
    }
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * chunk));
}

}  // namespace

int main(int argc, char** argv) {
  register_impl<distkit_impl<distkit::split_block_layout>>("split_block");
  register_impl<distkit_impl<distkit::blocked_layout>>("blocked");
  register_impl<distkit_impl<distkit::classic_layout>>("classic");
#if DISTKIT_BENCH_LIBBLOOM
  register_impl<libbloom_impl>("libbloom");
#endif
  benchmark::RegisterBenchmark("memory_floor/128MiB/random_read", bm_memory_floor);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
