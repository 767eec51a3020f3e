// SPDX-License-Identifier: MIT
// The block layouts' AVX2 paths (this file is compiled with -mavx2 when the build host has
// AVX2) against their portable paths, which the concurrent policy always takes, and against the
// Apache Parquet vector.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string_view>
#include <vector>

#include "distkit/bloom_filter.hpp"
#include "support/seed.hpp"

TEMPLATE_TEST_CASE("bloom_filter SIMD paths agree with the portable paths bit for bit", "[bloom_filter][simd]",
                   distkit::blocked_layout, distkit::split_block_layout) {
  STATIC_REQUIRE(DISTKIT_BLOOM_AVX2 == 1);
  using simd = distkit::bloom_filter<std::uint64_t, distkit::xxh3_hash, TestType>;
  using portable = distkit::bloom_filter<std::uint64_t, distkit::xxh3_hash, TestType, distkit::bloom_concurrent>;
  std::mt19937_64 rng(distkit_test::test_seed("bloom_filter SIMD paths"));
  for (const std::uint64_t n : {1U, 100U, 10000U}) {
    simd a(n, 0.01);
    portable b(n, 0.01);
    std::vector<std::uint64_t> keys(n);
    for (auto& k : keys) k = rng();
    for (std::size_t i = 0; i < keys.size(); ++i) {
      a.insert(keys[i]);
      b.insert(keys[i]);
    }
    REQUIRE((a.to_bytes() == b.to_bytes()));
    for (int i = 0; i < 20000; ++i) {
      const std::uint64_t h = rng();
      REQUIRE(a.contains_hash(h) == b.contains_hash(h));
    }
  }
}

TEST_CASE("bloom_filter split_block SIMD path reproduces the Parquet vector", "[bloom_filter][simd][parquet]") {
  std::ifstream in(DISTKIT_TESTDATA_DIR "/parquet/bloom_filter.xxhash.bin", std::ios::binary);
  REQUIRE(in.good());
  const std::vector<char> file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(file.size() == 1040);
  const std::span<const std::byte> bitset(reinterpret_cast<const std::byte*>(file.data()) + 16, 1024);
  const auto read = distkit::parquet_bloom_filter<std::string_view>::from_parquet_bitset(bitset);
  distkit::parquet_bloom_filter<std::string_view> built(distkit::bloom_size{8192, 8});
  for (const std::string_view s : {"hello", "parquet", "bloom", "filter"}) {
    CHECK(read.contains(s));
    built.insert(s);
  }
  const auto ours = built.to_parquet_bitset();
  CHECK(std::memcmp(ours.data(), bitset.data(), bitset.size()) == 0);
}
