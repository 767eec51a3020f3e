// SPDX-License-Identifier: MIT
// The block layouts' kernels (portable, AVX2), each forced in turn, against each other and
// against the scalar path the concurrent policy always takes, bit for bit, single keys and
// batches, and against the Apache Parquet vector. This file is built twice: at the baseline
// instruction set (the kernels are chosen at run time) and, on an AVX2 host, with -mavx2.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "distkit/bloom_filter.hpp"
#include "support/seed.hpp"

namespace {

/// The kernels this CPU runs.
auto kernels() -> std::vector<distkit::bloom_kernel> {
  std::vector<distkit::bloom_kernel> out{distkit::bloom_kernel::portable};
  if (distkit::bloom_kernel_supported(distkit::bloom_kernel::avx2)) out.push_back(distkit::bloom_kernel::avx2);
  return out;
}

auto kernel_name(distkit::bloom_kernel k) -> std::string {
  return k == distkit::bloom_kernel::avx2 ? "avx2" : "portable";
}

/// Forces a kernel for the scope of a test section, then restores the previous one.
class forced_kernel {
 public:
  explicit forced_kernel(distkit::bloom_kernel k) : before_(distkit::bloom_force_kernel(k)) {}
  ~forced_kernel() { distkit::bloom_force_kernel(before_); }
  forced_kernel(const forced_kernel&) = delete;
  auto operator=(const forced_kernel&) -> forced_kernel& = delete;

 private:
  distkit::bloom_kernel before_;
};

}  // namespace

TEST_CASE("bloom_filter kernels: the forced kernel is the active one, an unsupported one is refused",
          "[bloom_filter][simd]") {
  for (const auto k : kernels()) {
    const forced_kernel scope(k);
    CHECK(distkit::bloom_active_kernel() == k);
  }
  if (!distkit::bloom_kernel_supported(distkit::bloom_kernel::avx2)) {
    CHECK_THROWS_WITH(distkit::bloom_force_kernel(distkit::bloom_kernel::avx2),
                      Catch::Contains("distkit::bloom_filter: kernel"));
  }
  CHECK_THROWS_WITH(distkit::bloom_force_kernel(static_cast<distkit::bloom_kernel>(9)),
                    Catch::Contains("distkit::bloom_filter: kernel"));
}

TEMPLATE_TEST_CASE("bloom_filter kernels agree with the scalar path bit for bit, one key and batches",
                   "[bloom_filter][simd]", distkit::blocked_layout, distkit::split_block_layout) {
  using fast = distkit::bloom_filter<std::uint64_t, distkit::xxh3_hash, TestType>;
  using scalar = distkit::bloom_filter<std::uint64_t, distkit::xxh3_hash, TestType, distkit::lock_free_concurrency>;
  const std::uint64_t seed = distkit_test::test_seed("bloom_filter kernels");
  for (const auto k : kernels()) {
    INFO("kernel " << kernel_name(k));
    const forced_kernel scope(k);
    std::mt19937_64 rng(seed);
    for (const std::uint64_t n : {1U, 100U, 10000U}) {
      fast one(n, 0.01);
      fast batch(n, 0.01);
      scalar reference(n, 0.01);
      std::vector<std::uint64_t> keys(n);
      for (auto& key : keys) key = rng();
      for (const auto key : keys) {
        one.insert(key);
        reference.insert(key);
      }
      batch.insert_many(keys);
      REQUIRE((one.to_bytes() == reference.to_bytes()));
      REQUIRE((batch.to_bytes() == reference.to_bytes()));
      std::vector<std::uint64_t> queries(20000);
      for (std::size_t i = 0; i < queries.size(); ++i) queries[i] = (i % 3 == 0) ? keys[i % keys.size()] : rng();
      std::vector<bool> expected(queries.size());
      std::size_t expected_hits = 0;
      for (std::size_t i = 0; i < queries.size(); ++i) {
        expected[i] = reference.contains(queries[i]);
        expected_hits += expected[i] ? 1U : 0U;
        REQUIRE(one.contains(queries[i]) == expected[i]);
        REQUIRE(one.contains_hash(queries[i]) == reference.contains_hash(queries[i]));
      }
      REQUIRE(one.contains_many(queries) == expected);
      std::unique_ptr<bool[]> flags(new bool[queries.size()]);
      REQUIRE(one.contains_many(queries, std::span<bool>(flags.get(), queries.size())) == expected_hits);
      for (std::size_t i = 0; i < queries.size(); ++i) REQUIRE(flags[i] == expected[i]);
    }
  }
}

TEST_CASE("bloom_filter kernels: every kernel reads and writes the Parquet vector", "[bloom_filter][simd][parquet]") {
  std::ifstream in(DISTKIT_TESTDATA_DIR "/parquet/bloom_filter.xxhash.bin", std::ios::binary);
  REQUIRE(in.good());
  const std::vector<char> file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(file.size() == 1040);
  const std::span<const std::byte> bitset(reinterpret_cast<const std::byte*>(file.data()) + 16, 1024);
  const std::vector<std::string_view> inserted{"hello", "parquet", "bloom", "filter"};
  for (const auto k : kernels()) {
    INFO("kernel " << kernel_name(k));
    const forced_kernel scope(k);
    const auto read = distkit::parquet_bloom_filter<std::string_view>::from_parquet_bitset(bitset);
    distkit::parquet_bloom_filter<std::string_view> one(distkit::bloom_size{8192, 8});
    distkit::parquet_bloom_filter<std::string_view> batch(distkit::bloom_size{8192, 8});
    for (const std::string_view s : inserted) {
      CHECK(read.contains(s));
      one.insert(s);
    }
    batch.insert_many(inserted);
    CHECK(read.contains_many(inserted) == std::vector<bool>(inserted.size(), true));
    const auto ours = one.to_parquet_bitset();
    CHECK(std::memcmp(ours.data(), bitset.data(), bitset.size()) == 0);
    const auto ours_batch = batch.to_parquet_bitset();
    CHECK(std::memcmp(ours_batch.data(), bitset.data(), bitset.size()) == 0);
  }
}
