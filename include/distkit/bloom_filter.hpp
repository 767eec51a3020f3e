// SPDX-License-Identifier: MIT
// distkit/bloom_filter.hpp: a Bloom filter sized from (expected items, false-positive rate), with
// classic, cache-blocked and Parquet split-block layouts, concurrent inserts, union, cardinality
// estimate and a portable checksummed byte format.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "distkit/detail/bloom_storage.hpp"
#include "distkit/detail/crc32c.hpp"
#include "distkit/detail/endian.hpp"
#include "distkit/detail/error.hpp"
#include "distkit/detail/prefetch.hpp"
#include "distkit/detail/simd_dispatch.hpp"
#include "distkit/errors.hpp"
#include "distkit/hash.hpp"

namespace distkit::inline v0 {

/// @brief Thrown by `bloom_filter::from_bytes` and `from_parquet_bitset` when the input is
/// truncated, tampered with (checksum), of an unknown version, or was written by a filter of a
/// different layout or hash. No filter is ever built from such input.
class bloom_filter_format_error : public corrupt_data_error {
 public:
  using corrupt_data_error::corrupt_data_error;
};

// ---------------------------------------------------------------------------------------------
// Concurrency policies
// ---------------------------------------------------------------------------------------------

/// @brief Concurrency policy: one writer at a time, plain loads and stores (the default).
///
/// Concurrent `contains` calls are safe while nobody inserts; an `insert` concurrent with any
/// other call is a data race.
struct single_writer_concurrency {
  static constexpr bool is_concurrent = false;
  template <class W>
  static void set_bits(W& word, W mask) noexcept {
    word |= mask;
  }
  template <class W>
  [[nodiscard]] static auto load(const W& word) noexcept -> W {
    return word;
  }
  template <class W>
  static void store(W& word, W value) noexcept {
    word = value;
  }
};

/// @brief Concurrency policy: any number of threads insert and query at once, lock-free.
///
/// Inserts set bits with relaxed `std::atomic_ref::fetch_or`, queries read with relaxed atomic
/// loads. Bits are only ever set, so a key is reported present by every `contains` that
/// happens-after its `insert` (joined thread, released flag, queue hand-off...). `clear`,
/// assignment and `from_bytes` still need exclusive access.
struct lock_free_concurrency {
  static constexpr bool is_concurrent = true;
  template <class W>
  static void set_bits(W& word, W mask) noexcept {
    std::atomic_ref<W>(word).fetch_or(mask, std::memory_order_relaxed);
  }
  template <class W>
  [[nodiscard]] static auto load(const W& word) noexcept -> W {
    // atomic_ref needs a non-const referent; the load never writes.
    return std::atomic_ref<W>(const_cast<W&>(word)).load(std::memory_order_relaxed);
  }
  template <class W>
  static void store(W& word, W value) noexcept {
    std::atomic_ref<W>(word).store(value, std::memory_order_relaxed);
  }
};

/// The former spellings of the concurrency policies (one naming scheme: `<name>_<role>`).
using bloom_single_writer [[deprecated("use distkit::single_writer_concurrency")]] = single_writer_concurrency;
using bloom_concurrent [[deprecated("use distkit::lock_free_concurrency")]] = lock_free_concurrency;

/// @brief How a Bloom filter reads and sets its words.
///
/// Requires `C::set_bits(w, mask)`, `C::load(w)` and `C::store(w, v)` over `std::uint32_t` and
/// `std::uint64_t` words, all `noexcept`.
template <class C>
concept bloom_concurrency = requires(std::uint32_t& w32, std::uint64_t& w64, const std::uint64_t& cw64) {
  { C::set_bits(w32, std::uint32_t{1}) } noexcept;
  { C::set_bits(w64, std::uint64_t{1}) } noexcept;
  { C::load(cw64) } noexcept -> std::same_as<std::uint64_t>;
  { C::store(w64, std::uint64_t{0}) } noexcept;
  { C::is_concurrent } -> std::convertible_to<bool>;
};

static_assert(bloom_concurrency<single_writer_concurrency>);
static_assert(bloom_concurrency<lock_free_concurrency>);

// ---------------------------------------------------------------------------------------------
// Layout policies
// ---------------------------------------------------------------------------------------------

namespace detail {

/// ORs eight per-word masks into a block of eight words.
template <class C, class W>
inline void bloom_block_set(W* block, const std::array<W, 8>& masks) noexcept {
  if constexpr (C::is_concurrent) {
    for (std::size_t j = 0; j < 8; ++j) {
      if (masks[j] != 0) C::set_bits(block[j], masks[j]);
    }
  } else {
    for (std::size_t j = 0; j < 8; ++j) block[j] |= masks[j];
  }
}

/// True when every bit of the eight masks is set in the block (branch-free).
template <class C, class W>
[[nodiscard]] inline auto bloom_block_test(const W* block, const std::array<W, 8>& masks) noexcept -> bool {
  W missing = 0;
  for (std::size_t j = 0; j < 8; ++j) missing |= masks[j] & ~C::load(block[j]);
  return missing == 0;
}

/// sum over block loads j ~ Poisson(mean) of `per_load(j)`.
template <class F>
[[nodiscard]] inline auto bloom_poisson_average(const poisson_weights& w, F per_load) -> double {
  double sum = 0;
  for (std::size_t i = 0; i < w.pmf.size(); ++i) sum += w.pmf[i] * per_load(static_cast<double>(w.first + i));
  return sum;
}

}  // namespace detail

/// @brief Layout policy: the classic Bloom filter, `k` bits anywhere in an array of `m` bits.
///
/// Probe `i` is bit `reduce(h1 + i*h2, m)` (Kirsch–Mitzenmacher double hashing), with `h1` the
/// key's 64-bit hash and `h2` an odd remix of it, reduced to [0, m) by a multiply-shift (no
/// division). Needs the fewest bits for a target rate — `1.44 log2(1/p)` per key, 9.59 at 1% —
/// but costs up to `k` cache misses per query. FPR model: `(1 - e^(-kn/m))^k`.
struct classic_layout {
  using word_type = std::uint64_t;
  static constexpr std::uint8_t id = 1;
  static constexpr std::string_view name = "classic";
  static constexpr std::size_t block_words = 1;  ///< a "block" is one word: bits go anywhere
  static constexpr std::uint32_t min_hash_count = 1;
  static constexpr std::uint32_t max_hash_count = 32;

  [[nodiscard]] static auto step(std::uint64_t hash) noexcept -> std::uint64_t {
    hash ^= hash >> 31;
    hash *= 0x9e3779b97f4a7c15ULL;
    hash ^= hash >> 29;
    return hash | 1U;
  }

  template <class C>
  static void insert(word_type* words, std::uint64_t num_blocks, std::uint64_t hash, std::uint32_t k) noexcept {
    const std::uint64_t m = num_blocks * 64;
    const std::uint64_t delta = step(hash);
    for (std::uint32_t i = 0; i < k; ++i, hash += delta) {
      const std::uint64_t bit = detail::bloom_reduce64(hash, m);
      C::set_bits(words[bit >> 6], word_type{1} << (bit & 63));
    }
  }

  template <class C>
  [[nodiscard]] static auto contains(const word_type* words, std::uint64_t num_blocks, std::uint64_t hash,
                                     std::uint32_t k) noexcept -> bool {
    const std::uint64_t m = num_blocks * 64;
    const std::uint64_t delta = step(hash);
    for (std::uint32_t i = 0; i < k; ++i, hash += delta) {
      const std::uint64_t bit = detail::bloom_reduce64(hash, m);
      // Early exit: a negative query usually stops at the first or second probe's cache miss.
      if (((C::load(words[bit >> 6]) >> (bit & 63)) & 1U) == 0) return false;
    }
    return true;
  }

  static void prefetch(const word_type* words, std::uint64_t num_blocks, std::uint64_t hash, std::uint32_t k,
                       bool for_write) noexcept {
    const std::uint64_t m = num_blocks * 64;
    const std::uint64_t delta = step(hash);
    for (std::uint32_t i = 0; i < k; ++i, hash += delta) {
      detail::prefetch(words + (detail::bloom_reduce64(hash, m) >> 6), for_write);
    }
  }

  /// The model false-positive rate of `items` keys in `num_blocks` 64-bit words with `k` probes.
  [[nodiscard]] static auto model_false_positive_rate(std::uint64_t num_blocks, double items, std::uint32_t k)
      -> double {
    const double m = static_cast<double>(num_blocks) * 64.0;
    return std::pow(-std::expm1(-static_cast<double>(k) * items / m), static_cast<double>(k));
  }

  /// The false-positive rate of the bits as they are: (fraction set)^k.
  template <class C>
  [[nodiscard]] static auto fill_false_positive_rate(const word_type* words, std::uint64_t num_blocks,
                                                     std::uint32_t k) noexcept -> double {
    std::uint64_t set = 0;
    for (std::uint64_t i = 0; i < num_blocks; ++i) set += static_cast<std::uint64_t>(std::popcount(C::load(words[i])));
    return std::pow(static_cast<double>(set) / (static_cast<double>(num_blocks) * 64.0), static_cast<double>(k));
  }

  /// Swamidass–Baldi: n = -(m/k) ln(1 - X/m) for X bits set of m.
  [[nodiscard]] static auto estimate_items(std::uint64_t bits_set, std::uint64_t num_blocks, std::uint32_t k) noexcept
      -> double {
    const double m = static_cast<double>(num_blocks) * 64.0;
    const double unset = 1.0 - static_cast<double>(bits_set) / m;
    if (unset <= 0) return std::numeric_limits<double>::infinity();
    return -(m / static_cast<double>(k)) * std::log(unset);
  }
};

/// @brief Layout policy: cache-blocked Bloom filter, all `k` bits of a key in one 512-bit
/// (64-byte, cache-line aligned) block, as RocksDB's FastLocalBloom does.
///
/// The hash's upper 32 bits pick the block by multiply-shift; the lower 32 bits, re-multiplied
/// by the 32-bit golden ratio before each probe, give the top 9 bits of each probe's position.
/// One cache miss per query whatever `k`. Because block loads vary (Poisson around `n/blocks`),
/// it needs more bits than `classic` for the same rate: FPR model
/// `sum_j Poisson(j; n/blocks) * (1 - (1 - 1/512)^(k j))^k`, which sizing solves exactly —
/// about 9.9 bits/key at 1% and 15.5 at 0.1% (classic: 9.59 and 14.38).
struct blocked_layout {
  using word_type = std::uint64_t;
  static constexpr std::uint8_t id = 2;
  static constexpr std::string_view name = "blocked";
  static constexpr std::size_t block_words = 8;
  static constexpr std::uint32_t min_hash_count = 1;
  static constexpr std::uint32_t max_hash_count = 32;
  static constexpr double block_bits = 512.0;

  /// c^1 .. c^32 for c = 0x9e3779b9 (mod 2^32): probe i multiplies the hash's low half by c^(i+1).
  static constexpr std::array<std::uint32_t, 32> probe_multipliers = [] {
    std::array<std::uint32_t, 32> powers{};
    std::uint32_t p = 1;
    for (auto& power : powers) power = p *= 0x9e3779b9U;
    return powers;
  }();

  [[nodiscard]] static auto masks(std::uint64_t hash, std::uint32_t k) noexcept -> std::array<word_type, 8> {
    std::array<word_type, 8> m{};
    auto x = static_cast<std::uint32_t>(hash);
    for (std::uint32_t i = 0; i < k; ++i) {
      x *= 0x9e3779b9U;
      const std::uint32_t bit = x >> 23;  // 9 bits: 0..511
      m[bit >> 6] |= word_type{1} << (bit & 63);
    }
    return m;
  }
  [[nodiscard]] static auto block(std::uint64_t hash, std::uint64_t num_blocks) noexcept -> std::uint64_t {
    return detail::bloom_reduce32(static_cast<std::uint32_t>(hash >> 32), num_blocks) * block_words;
  }

#if DISTKIT_X86_DISPATCH
  // The masks as two 256-bit vectors (words 0-3, 4-7). Probe bit b lands in lane j as
  // `1 << (b - 64 j)`: a variable shift by 64 or more (b outside the lane, or "negative" as
  // unsigned) yields 0, so each probe costs one broadcast, two subtracts, two shifts, two ORs.
  DISTKIT_TARGET_AVX2 static void masks_avx2(std::uint64_t hash, std::uint32_t k, __m256i& low,
                                             __m256i& high) noexcept {
    const __m256i ones = _mm256_set1_epi64x(1);
    const __m256i low_base = _mm256_setr_epi64x(0, 64, 128, 192);
    const __m256i high_base = _mm256_setr_epi64x(256, 320, 384, 448);
    low = _mm256_setzero_si256();
    high = _mm256_setzero_si256();
    const auto x = static_cast<std::uint32_t>(hash);
    for (std::uint32_t i = 0; i < k; ++i) {
      // x * c^(i+1), as the portable loop computes it, without its chain of dependent multiplies.
      const __m256i bit = _mm256_set1_epi64x(static_cast<long long>((x * probe_multipliers[i]) >> 23));
      low = _mm256_or_si256(low, _mm256_sllv_epi64(ones, _mm256_sub_epi64(bit, low_base)));
      high = _mm256_or_si256(high, _mm256_sllv_epi64(ones, _mm256_sub_epi64(bit, high_base)));
    }
  }
  DISTKIT_TARGET_AVX2 static void insert_avx2(word_type* block_words_at, std::uint64_t hash, std::uint32_t k) noexcept {
    auto* b = reinterpret_cast<__m256i*>(block_words_at);  // 64-byte aligned
    __m256i low;
    __m256i high;
    masks_avx2(hash, k, low, high);
    _mm256_store_si256(b, _mm256_or_si256(_mm256_load_si256(b), low));
    _mm256_store_si256(b + 1, _mm256_or_si256(_mm256_load_si256(b + 1), high));
  }
  [[nodiscard]] DISTKIT_TARGET_AVX2 static auto contains_avx2(const word_type* block_words_at, std::uint64_t hash,
                                                              std::uint32_t k) noexcept -> bool {
    const auto* b = reinterpret_cast<const __m256i*>(block_words_at);
    __m256i low;
    __m256i high;
    masks_avx2(hash, k, low, high);
    return (_mm256_testc_si256(_mm256_load_si256(b), low) & _mm256_testc_si256(_mm256_load_si256(b + 1), high)) != 0;
  }
#endif

  template <class C>
  static void insert(word_type* words, std::uint64_t num_blocks, std::uint64_t hash, std::uint32_t k) noexcept {
#if DISTKIT_X86_DISPATCH
    if constexpr (!C::is_concurrent) {
      if (detail::bloom_uses_avx2()) {
        insert_avx2(words + block(hash, num_blocks), hash, k);
        return;
      }
    }
#endif
    detail::bloom_block_set<C>(words + block(hash, num_blocks), masks(hash, k));
  }
  template <class C>
  [[nodiscard]] static auto contains(const word_type* words, std::uint64_t num_blocks, std::uint64_t hash,
                                     std::uint32_t k) noexcept -> bool {
#if DISTKIT_X86_DISPATCH
    if constexpr (!C::is_concurrent) {
      if (detail::bloom_uses_avx2()) return contains_avx2(words + block(hash, num_blocks), hash, k);
    }
#endif
    return detail::bloom_block_test<C>(words + block(hash, num_blocks), masks(hash, k));
  }
  static void prefetch(const word_type* words, std::uint64_t num_blocks, std::uint64_t hash, std::uint32_t /*k*/,
                       bool for_write) noexcept {
    detail::prefetch(words + block(hash, num_blocks), for_write);
  }

  [[nodiscard]] static auto model_false_positive_rate(std::uint64_t num_blocks, double items, std::uint32_t k)
      -> double {
    const auto weights = detail::make_poisson_weights(items / static_cast<double>(num_blocks));
    return model_false_positive_rate(weights, k);
  }
  [[nodiscard]] static auto model_false_positive_rate(const detail::poisson_weights& weights, std::uint32_t k)
      -> double {
    const double kk = static_cast<double>(k);
    const double log_miss = kk * std::log1p(-1.0 / block_bits);
    return detail::bloom_poisson_average(weights, [&](double j) { return std::pow(-std::expm1(log_miss * j), kk); });
  }

  /// The false-positive rate of the bits as they are: the mean over blocks of (fill)^k.
  template <class C>
  [[nodiscard]] static auto fill_false_positive_rate(const word_type* words, std::uint64_t num_blocks,
                                                     std::uint32_t k) noexcept -> double {
    double sum = 0;
    for (std::uint64_t b = 0; b < num_blocks; ++b) {
      int set = 0;
      for (std::size_t j = 0; j < block_words; ++j) set += std::popcount(C::load(words[b * block_words + j]));
      sum += std::pow(set / block_bits, static_cast<double>(k));
    }
    return sum / static_cast<double>(num_blocks);
  }

  /// Inverts E[unset fraction] = exp(-(n/blocks) (1 - (1 - 1/512)^k)).
  [[nodiscard]] static auto estimate_items(std::uint64_t bits_set, std::uint64_t num_blocks, std::uint32_t k) noexcept
      -> double {
    const double blocks = static_cast<double>(num_blocks);
    const double unset = 1.0 - static_cast<double>(bits_set) / (blocks * block_bits);
    if (unset <= 0) return std::numeric_limits<double>::infinity();
    const double per_key = -std::expm1(static_cast<double>(k) * std::log1p(-1.0 / block_bits));
    return -std::log(unset) / per_key * blocks;
  }
};

/// @brief Layout policy: the split-block Bloom filter of Apache Parquet (and Arrow, Impala,
/// Kudu), bit for bit.
///
/// 256-bit blocks of eight little-endian 32-bit words; the hash's upper 32 bits pick the block
/// as `((hash >> 32) * blocks) >> 32`; word `i` gets bit `(uint32(hash) * salt[i]) >> 27`. Always
/// `k = 8` (one bit per word), so a query is eight independent lanes of one half cache line: SIMD
/// friendly and the fastest of the three. FPR model
/// `sum_j Poisson(j; n/blocks) * (1 - (31/32)^j)^8`, which sizing solves exactly — about 10.5
/// bits/key at 1% and 16.9 at 0.1%. With `xxh64_hash` its bitset is a Parquet column's Bloom
/// filter (`to_parquet_bitset` / `from_parquet_bitset`).
struct split_block_layout {
  using word_type = std::uint32_t;
  static constexpr std::uint8_t id = 3;
  static constexpr std::string_view name = "split_block";
  static constexpr std::size_t block_words = 8;
  static constexpr std::uint32_t min_hash_count = 8;
  static constexpr std::uint32_t max_hash_count = 8;
  /// The eight odd multipliers of the Parquet specification (BloomFilter.md, "SALT").
  static constexpr std::array<std::uint32_t, 8> salt{0x47b6137bU, 0x44974d91U, 0x8824ad5bU, 0xa2b7289dU,
                                                     0x705495c7U, 0x2df1424bU, 0x9efc4947U, 0x5c6bfb31U};

  [[nodiscard]] static auto masks(std::uint64_t hash) noexcept -> std::array<word_type, 8> {
    std::array<word_type, 8> m{};
    const auto x = static_cast<std::uint32_t>(hash);
    for (std::size_t i = 0; i < 8; ++i) m[i] = word_type{1} << ((x * salt[i]) >> 27);
    return m;
  }
  [[nodiscard]] static auto block(std::uint64_t hash, std::uint64_t num_blocks) noexcept -> std::uint64_t {
    return detail::bloom_reduce32(static_cast<std::uint32_t>(hash >> 32), num_blocks) * block_words;
  }

#if DISTKIT_X86_DISPATCH
  // AVX2: the eight lanes in one 256-bit register: multiply, shift, variable shift, test.
  [[nodiscard]] DISTKIT_TARGET_AVX2 static auto masks_avx2(std::uint64_t hash) noexcept -> __m256i {
    const __m256i salts =
        _mm256_setr_epi32(0x47b6137b, 0x44974d91, static_cast<int>(0x8824ad5bU), static_cast<int>(0xa2b7289dU),
                          0x705495c7, 0x2df1424b, static_cast<int>(0x9efc4947U), 0x5c6bfb31);
    const __m256i x = _mm256_mullo_epi32(_mm256_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(hash))), salts);
    return _mm256_sllv_epi32(_mm256_set1_epi32(1), _mm256_srli_epi32(x, 27));
  }
  DISTKIT_TARGET_AVX2 static void insert_avx2(word_type* b, std::uint64_t hash) noexcept {
    auto* v = reinterpret_cast<__m256i*>(b);  // 32-byte aligned
    _mm256_store_si256(v, _mm256_or_si256(_mm256_load_si256(v), masks_avx2(hash)));
  }
  [[nodiscard]] DISTKIT_TARGET_AVX2 static auto contains_avx2(const word_type* b, std::uint64_t hash) noexcept -> bool {
    return _mm256_testc_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(b)), masks_avx2(hash)) != 0;
  }
  DISTKIT_TARGET_AVX2 static void insert_group_avx2(word_type* words, std::uint64_t num_blocks,
                                                    const std::uint64_t* hashes, std::size_t n) noexcept {
    for (std::size_t j = 0; j < n; ++j) insert_avx2(words + block(hashes[j], num_blocks), hashes[j]);
  }
  [[nodiscard]] DISTKIT_TARGET_AVX2 static auto contains_group_avx2(const word_type* words, std::uint64_t num_blocks,
                                                                    const std::uint64_t* hashes, std::size_t n) noexcept
      -> std::uint32_t {
    std::uint32_t hits = 0;
    for (std::size_t j = 0; j < n; ++j) {
      hits |= static_cast<std::uint32_t>(contains_avx2(words + block(hashes[j], num_blocks), hashes[j])) << j;
    }
    return hits;
  }

  // SSE2 (every x86-64 CPU): four lanes per register, two registers. SSE2 has no 32-bit
  // multiply-low and no per-lane shift, so the products come from two 32x32->64 multiplies per
  // register, and `1 << s` from the float whose exponent is s: converting 2^s back to an integer
  // gives 1 << s for s < 31, and for s = 31 the out-of-range answer 0x80000000, which is 1 << 31.
  [[nodiscard]] static auto mullo_sse2(__m128i x, __m128i even_salts, __m128i odd_salts) noexcept -> __m128i {
    const __m128i even = _mm_shuffle_epi32(_mm_mul_epu32(x, even_salts), _MM_SHUFFLE(3, 1, 2, 0));
    const __m128i odd = _mm_shuffle_epi32(_mm_mul_epu32(x, odd_salts), _MM_SHUFFLE(3, 1, 2, 0));
    return _mm_unpacklo_epi32(even, odd);
  }
  [[nodiscard]] static auto pow2_sse2(__m128i shift) noexcept -> __m128i {
    const __m128i exponent = _mm_slli_epi32(_mm_add_epi32(shift, _mm_set1_epi32(127)), 23);
    return _mm_cvttps_epi32(_mm_castsi128_ps(exponent));
  }
  static void masks_sse2(std::uint64_t hash, __m128i& low, __m128i& high) noexcept {
    const __m128i x = _mm_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(hash)));
    const auto s = [](std::size_t i) { return static_cast<int>(salt[i]); };
    low = pow2_sse2(
        _mm_srli_epi32(mullo_sse2(x, _mm_setr_epi32(s(0), 0, s(2), 0), _mm_setr_epi32(s(1), 0, s(3), 0)), 27));
    high = pow2_sse2(
        _mm_srli_epi32(mullo_sse2(x, _mm_setr_epi32(s(4), 0, s(6), 0), _mm_setr_epi32(s(5), 0, s(7), 0)), 27));
  }
  static void insert_sse2(word_type* b, std::uint64_t hash) noexcept {
    __m128i low;
    __m128i high;
    masks_sse2(hash, low, high);
    auto* v = reinterpret_cast<__m128i*>(b);
    _mm_store_si128(v, _mm_or_si128(_mm_load_si128(v), low));
    _mm_store_si128(v + 1, _mm_or_si128(_mm_load_si128(v + 1), high));
  }
  [[nodiscard]] static auto contains_sse2(const word_type* b, std::uint64_t hash) noexcept -> bool {
    __m128i low;
    __m128i high;
    masks_sse2(hash, low, high);
    const auto* v = reinterpret_cast<const __m128i*>(b);
    const __m128i missing =
        _mm_or_si128(_mm_andnot_si128(_mm_load_si128(v), low), _mm_andnot_si128(_mm_load_si128(v + 1), high));
    return _mm_movemask_epi8(_mm_cmpeq_epi32(missing, _mm_setzero_si128())) == 0xffff;
  }
#endif

  template <class C>
  static void insert(word_type* words, std::uint64_t num_blocks, std::uint64_t hash, std::uint32_t /*k*/) noexcept {
#if DISTKIT_X86_DISPATCH
    if constexpr (!C::is_concurrent) {
      word_type* b = words + block(hash, num_blocks);
      if (detail::bloom_uses_avx2()) {
        insert_avx2(b, hash);
      } else {
        insert_sse2(b, hash);
      }
      return;
    }
#endif
    detail::bloom_block_set<C>(words + block(hash, num_blocks), masks(hash));
  }
  template <class C>
  [[nodiscard]] static auto contains(const word_type* words, std::uint64_t num_blocks, std::uint64_t hash,
                                     std::uint32_t /*k*/) noexcept -> bool {
#if DISTKIT_X86_DISPATCH
    if constexpr (!C::is_concurrent) {
      const word_type* b = words + block(hash, num_blocks);
      return detail::bloom_uses_avx2() ? contains_avx2(b, hash) : contains_sse2(b, hash);
    }
#endif
    return detail::bloom_block_test<C>(words + block(hash, num_blocks), masks(hash));
  }
  /// Inserts `n` (at most 32) hashes: the batch path's unit, one kernel choice per group.
  template <class C>
  static void insert_group(word_type* words, std::uint64_t num_blocks, const std::uint64_t* hashes, std::size_t n,
                           std::uint32_t k) noexcept {
#if DISTKIT_X86_DISPATCH
    if constexpr (!C::is_concurrent) {
      if (detail::bloom_uses_avx2()) {
        insert_group_avx2(words, num_blocks, hashes, n);
        return;
      }
    }
#endif
    for (std::size_t j = 0; j < n; ++j) insert<C>(words, num_blocks, hashes[j], k);
  }
  /// Bit j of the answer is `contains(hashes[j])`, for `n` (at most 32) hashes.
  template <class C>
  [[nodiscard]] static auto contains_group(const word_type* words, std::uint64_t num_blocks,
                                           const std::uint64_t* hashes, std::size_t n, std::uint32_t k) noexcept
      -> std::uint32_t {
#if DISTKIT_X86_DISPATCH
    if constexpr (!C::is_concurrent) {
      if (detail::bloom_uses_avx2()) return contains_group_avx2(words, num_blocks, hashes, n);
    }
#endif
    std::uint32_t hits = 0;
    for (std::size_t j = 0; j < n; ++j) {
      hits |= static_cast<std::uint32_t>(contains<C>(words, num_blocks, hashes[j], k)) << j;
    }
    return hits;
  }
  static void prefetch(const word_type* words, std::uint64_t num_blocks, std::uint64_t hash, std::uint32_t /*k*/,
                       bool for_write) noexcept {
    detail::prefetch(words + block(hash, num_blocks), for_write);
  }

  [[nodiscard]] static auto model_false_positive_rate(std::uint64_t num_blocks, double items, std::uint32_t k)
      -> double {
    return model_false_positive_rate(detail::make_poisson_weights(items / static_cast<double>(num_blocks)), k);
  }
  [[nodiscard]] static auto model_false_positive_rate(const detail::poisson_weights& weights, std::uint32_t /*k*/)
      -> double {
    const double log_miss = std::log1p(-1.0 / 32.0);
    return detail::bloom_poisson_average(weights, [&](double j) { return std::pow(-std::expm1(log_miss * j), 8.0); });
  }

  /// The false-positive rate of the bits as they are: the mean over blocks of the product of
  /// each word's fill — exact for a uniformly random query hash.
  template <class C>
  [[nodiscard]] static auto fill_false_positive_rate(const word_type* words, std::uint64_t num_blocks,
                                                     std::uint32_t /*k*/) noexcept -> double {
    double sum = 0;
    for (std::uint64_t b = 0; b < num_blocks; ++b) {
      double p = 1;
      for (std::size_t j = 0; j < block_words; ++j) p *= std::popcount(C::load(words[b * block_words + j])) / 32.0;
      sum += p;
    }
    return sum / static_cast<double>(num_blocks);
  }

  /// Inverts E[unset fraction] = exp(-(n/blocks) / 32) (each key sets one bit per word).
  [[nodiscard]] static auto estimate_items(std::uint64_t bits_set, std::uint64_t num_blocks,
                                           std::uint32_t /*k*/) noexcept -> double {
    const double blocks = static_cast<double>(num_blocks);
    const double unset = 1.0 - static_cast<double>(bits_set) / (blocks * 256.0);
    if (unset <= 0) return std::numeric_limits<double>::infinity();
    return -std::log(unset) * 32.0 * blocks;
  }
};

/// @brief Where a Bloom filter puts a key's bits.
///
/// Requires: `L::word_type` (`std::uint32_t` or `std::uint64_t`); `L::id` (a `std::uint8_t`
/// written in the byte format), `L::name`; `L::block_words` (the array is a whole number of
/// blocks of that many words); `L::min_hash_count`, `L::max_hash_count`; and the static functions
/// `insert<C>(words, blocks, hash, k)`, `contains<C>(words, blocks, hash, k) -> bool`,
/// `prefetch(words, blocks, hash, k, for_write)`, `model_false_positive_rate(blocks, items, k)`,
/// `fill_false_positive_rate<C>(words, blocks, k)` and `estimate_items(bits_set, blocks, k)`.
template <class L>
concept bloom_layout = requires(typename L::word_type* words, const typename L::word_type* cwords, std::uint64_t blocks,
                                std::uint64_t hash, std::uint32_t k, double items) {
  requires std::same_as<typename L::word_type, std::uint32_t> || std::same_as<typename L::word_type, std::uint64_t>;
  { L::id } -> std::convertible_to<std::uint8_t>;
  { L::name } -> std::convertible_to<std::string_view>;
  { L::block_words } -> std::convertible_to<std::size_t>;
  { L::min_hash_count } -> std::convertible_to<std::uint32_t>;
  { L::max_hash_count } -> std::convertible_to<std::uint32_t>;
  { L::template insert<single_writer_concurrency>(words, blocks, hash, k) } noexcept;
  { L::template contains<single_writer_concurrency>(cwords, blocks, hash, k) } noexcept -> std::same_as<bool>;
  { L::prefetch(cwords, blocks, hash, k, true) } noexcept;
  { L::model_false_positive_rate(blocks, items, k) } -> std::same_as<double>;
  { L::template fill_false_positive_rate<single_writer_concurrency>(cwords, blocks, k) } -> std::same_as<double>;
  { L::estimate_items(blocks, blocks, k) } -> std::same_as<double>;
};

static_assert(bloom_layout<classic_layout>);
static_assert(bloom_layout<blocked_layout>);
static_assert(bloom_layout<split_block_layout>);

/// @brief An explicit filter size: `bits` (rounded up to the layout's block) and `hash_count`
/// (`k`; the split-block layout accepts only 8).
struct bloom_size {
  std::uint64_t bits = 0;
  std::uint32_t hash_count = 0;
};

// ---------------------------------------------------------------------------------------------
// The filter
// ---------------------------------------------------------------------------------------------

/// @brief A Bloom filter: a set that answers "definitely not present" or "probably present",
/// in a fixed number of bits per key, with no false negatives.
///
/// @tparam Key the key type; any type `Hash` hashes (`hasher<Hash, Key>`): strings, string views,
///   byte spans, integers and padding-free trivially copyable structs with the shipped hashes.
/// @tparam Hash a `hasher<Key>` policy, default `xxh3_hash`. Use `xxh64_hash` for Parquet.
/// @tparam Layout a `bloom_layout`, default `split_block_layout`, chosen by measurement (the
///   figures are in benchmarks/RESULTS.md, "Bloom filter"): the fastest of the three for queries
///   and inserts both in cache and out of it, because a key touches one half cache line, its
///   eight probes are eight SIMD lanes and there is no loop over k. It pays 0.94 extra bits/key
///   at 1% over `classic` (10.53 vs 9.59).
///   `blocked_layout` needs 0.30 extra bits/key and is as fast in batches; `classic_layout` is the
///   smallest and the slowest.
/// @tparam Concurrency `single_writer_concurrency` (default) or `lock_free_concurrency` (lock-free
///   concurrent inserts and queries).
///
/// Sizing from `(expected_items, false_positive_rate)` picks the smallest array, and for it the
/// `k`, whose model false-positive rate (see each layout) at `expected_items` keys is at most
/// the target. `size_for()` tells the result without allocating.
///
/// @throws std::invalid_argument from the constructors for 0 items, a rate outside (0, 1), a
///   size over `max_bits` (2^40 bits, 128 GiB) or a hash count the layout does not allow.
///
/// **Thread safety:** per the `Concurrency` policy; `const` members of a `single_writer_concurrency`
/// filter may run concurrently with each other.
///
/// **Complexity:** `insert`/`contains` O(k) with one cache miss (block layouts) or up to k
/// (classic); `clear`, `merge`, `bits_set`, `approximate_count`, `estimated_false_positive_rate`,
/// `to_bytes`, `from_bytes` O(m).
///
/// @code
/// distkit::bloom_filter<std::string> seen{1'000'000, 0.01};  // 1M keys, 1% false positives
/// seen.insert("https://example.com/");
/// assert(seen.contains("https://example.com/"));
/// auto bytes = seen.to_bytes();
/// auto again = distkit::bloom_filter<std::string>::from_bytes(bytes);
/// @endcode
template <class Key, class Hash = xxh3_hash, bloom_layout Layout = split_block_layout,
          bloom_concurrency Concurrency = single_writer_concurrency>
  requires hasher<Hash, Key>
class bloom_filter {
 public:
  using key_type = Key;
  using hasher_type = Hash;
  using layout_type = Layout;
  using concurrency_type = Concurrency;
  using word_type = typename Layout::word_type;

  /// The largest filter, in bits (128 GiB).
  static constexpr std::uint64_t max_bits = std::uint64_t{1} << 40;
  /// Bytes of the serialized header (before the bitset) and trailer (CRC-32C) of `to_bytes()`.
  static constexpr std::size_t header_bytes = 32;
  static constexpr std::size_t trailer_bytes = 4;
  static constexpr std::uint32_t format_magic = 0x46424B44U;  // "DKBF" little-endian
  static constexpr std::uint16_t format_version = 1;

  /// Sized for `expected_items` keys at `false_positive_rate`.
  /// @throws std::invalid_argument naming `expected_items` or `false_positive_rate`.
  bloom_filter(std::uint64_t expected_items, double false_positive_rate, Hash hash = Hash{})
      : bloom_filter(size_for(expected_items, false_positive_rate), std::move(hash)) {}

  /// With an explicit size: `size.bits` rounded up to whole blocks, `size.hash_count` probes.
  /// @throws std::invalid_argument naming `bits` or `hash_count`.
  explicit bloom_filter(bloom_size size, Hash hash = Hash{})
      : bloom_filter(raw_shape{}, checked_blocks(size), size.hash_count, std::move(hash)) {}

  /// The size (bits and k) the constructor picks for `expected_items` at `false_positive_rate`.
  [[nodiscard]] static auto size_for(std::uint64_t expected_items, double false_positive_rate) -> bloom_size {
    if (expected_items == 0) detail::throw_invalid_argument(component, "expected_items", "must be at least 1", 0);
    if (!(false_positive_rate > 0.0 && false_positive_rate < 1.0)) {
      detail::throw_invalid_argument(component, "false_positive_rate", "must be in (0, 1)", false_positive_rate);
    }
    const double n = static_cast<double>(expected_items);
    constexpr double block_bits = static_cast<double>(Layout::block_words * sizeof(word_type) * 8);
    const std::uint64_t max_blocks = max_bits / static_cast<std::uint64_t>(block_bits);
    std::uint32_t best_k = 0;
    auto feasible = [&](std::uint64_t blocks) {
      double best = 2.0;
      if constexpr (requires(const detail::poisson_weights& w) { Layout::model_false_positive_rate(w, 1U); }) {
        const auto weights = detail::make_poisson_weights(n / static_cast<double>(blocks));
        for (std::uint32_t k = Layout::min_hash_count; k <= Layout::max_hash_count; ++k) {
          const double p = Layout::model_false_positive_rate(weights, k);
          if (p > best) break;  // the model is unimodal in k: past the minimum
          best = p, best_k = k;
        }
      } else {
        for (std::uint32_t k = Layout::min_hash_count; k <= Layout::max_hash_count; ++k) {
          const double p = Layout::model_false_positive_rate(blocks, n, k);
          if (p > best) break;  // the model is unimodal in k: past the minimum
          best = p, best_k = k;
        }
      }
      return best <= false_positive_rate;
    };
    // Start from the classic optimum and grow until the layout's model meets the target.
    const double classic_bits = n * -std::log(false_positive_rate) / (std::log(2.0) * std::log(2.0));
    if (!(classic_bits / block_bits < static_cast<double>(max_blocks))) too_big(expected_items);
    std::uint64_t hi = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(classic_bits / block_bits));
    std::uint64_t lo = 0;  // infeasible (or zero) below
    while (!feasible(hi)) {
      lo = hi;
      if (hi >= max_blocks) too_big(expected_items);
      hi = std::min(max_blocks, hi + hi / 4 + 1);
    }
    while (hi - lo > 1) {
      const std::uint64_t mid = lo + (hi - lo) / 2;
      if (feasible(mid)) {
        hi = mid;
      } else {
        lo = mid;
      }
    }
    (void)feasible(hi);  // leaves best_k for the chosen size
    return {hi * static_cast<std::uint64_t>(block_bits), best_k};
  }

  // --- single keys ---------------------------------------------------------------------------

  /// Adds `key`. **Complexity:** one hash, O(k) bit sets.
  void insert(const Key& key) noexcept { insert_hash(hash_(key)); }
  /// False when `key` was certainly never inserted; true when it probably was.
  [[nodiscard]] auto contains(const Key& key) const noexcept -> bool { return contains_hash(hash_(key)); }

  /// Adds a key by its 64-bit hash (as `Hash` would compute it, or any well-mixed 64 bits).
  void insert_hash(std::uint64_t hash) noexcept {
    Layout::template insert<Concurrency>(words_.data(), num_blocks_, hash, k_);
  }
  [[nodiscard]] auto contains_hash(std::uint64_t hash) const noexcept -> bool {
    return Layout::template contains<Concurrency>(words_.data(), num_blocks_, hash, k_);
  }

  // --- batches: hashes computed and blocks prefetched ahead, so a filter larger than the cache
  // is bound by memory parallelism rather than by one miss after another -----------------------

  /// Adds every key of `keys`.
  void insert_many(std::span<const Key> keys) noexcept {
    pipeline(
        keys.size(), [&](std::size_t i) { return hash_(keys[i]); }, true,
        [&](std::size_t, const std::uint64_t* hashes, std::size_t n) { insert_group(hashes, n); });
  }
  /// Adds every hash of `hashes`.
  void insert_hashes(std::span<const std::uint64_t> hashes) noexcept {
    pipeline(
        hashes.size(), [&](std::size_t i) { return hashes[i]; }, true,
        [&](std::size_t, const std::uint64_t* group, std::size_t n) { insert_group(group, n); });
  }
  /// `results[i] = contains(keys[i])`; returns how many are true.
  /// @throws std::invalid_argument naming `results` when the spans' sizes differ.
  auto contains_many(std::span<const Key> keys, std::span<bool> results) const -> std::size_t {
    check_results(keys.size(), results.size());
    return query(
        keys.size(), [&](std::size_t i) { return hash_(keys[i]); }, [&](std::size_t i, bool hit) { results[i] = hit; });
  }
  /// `contains_many` into a new vector: element i is `contains(keys[i])`.
  [[nodiscard]] auto contains_many(std::span<const Key> keys) const -> std::vector<bool> {
    std::vector<bool> results(keys.size());
    query(
        keys.size(), [&](std::size_t i) { return hash_(keys[i]); }, [&](std::size_t i, bool hit) { results[i] = hit; });
    return results;
  }
  /// `results[i] = contains_hash(hashes[i])`; returns how many are true.
  auto contains_hashes(std::span<const std::uint64_t> hashes, std::span<bool> results) const -> std::size_t {
    check_results(hashes.size(), results.size());
    return query(
        hashes.size(), [&](std::size_t i) { return hashes[i]; }, [&](std::size_t i, bool hit) { results[i] = hit; });
  }

  // --- whole filter ----------------------------------------------------------------------------

  /// Removes every key (all bits to zero).
  void clear() noexcept {
    word_type* w = words_.data();
    if constexpr (Concurrency::is_concurrent) {
      for (std::size_t i = 0; i < words_.size(); ++i) Concurrency::store(w[i], word_type{0});
    } else {
      std::fill_n(w, words_.size(), word_type{0});
    }
  }

  /// Union: afterwards this filter contains every key of either. `other` may be inserted into
  /// concurrently when the policy is `lock_free_concurrency`.
  /// @throws std::invalid_argument naming `other` when the sizes or hash counts differ.
  void merge(const bloom_filter& other) {
    if (other.num_blocks_ != num_blocks_ || other.k_ != k_) {
      detail::throw_invalid_argument(component, "other",
                                     "must have the same shape (bits " + std::to_string(bit_count()) + ", hash_count " +
                                         std::to_string(k_) + ") to be merged; it has bits " +
                                         std::to_string(other.bit_count()) + ", hash_count " +
                                         std::to_string(other.k_));
    }
    word_type* w = words_.data();
    const word_type* o = other.words_.data();
    if constexpr (Concurrency::is_concurrent) {
      for (std::size_t i = 0; i < words_.size(); ++i) {
        const word_type bits = Concurrency::load(o[i]);
        if (bits != 0) Concurrency::set_bits(w[i], bits);
      }
    } else {
      for (std::size_t i = 0; i < words_.size(); ++i) w[i] |= o[i];
    }
  }

  /// The false-positive rate of the filter as it is now, from its bits (for the split-block
  /// layout, exact for a random query). O(m).
  [[nodiscard]] auto estimated_false_positive_rate() const noexcept -> double {
    return Layout::template fill_false_positive_rate<Concurrency>(words_.data(), num_blocks_, k_);
  }
  /// The layout's model false-positive rate for this size after `items` distinct inserts.
  [[nodiscard]] auto model_false_positive_rate(std::uint64_t items) const -> double {
    return Layout::model_false_positive_rate(num_blocks_, static_cast<double>(items), k_);
  }
  /// An estimate of the number of distinct keys inserted, from the bits set (Swamidass–Baldi,
  /// adapted per layout); infinity when every bit is set. O(m).
  [[nodiscard]] auto approximate_count() const noexcept -> double {
    return Layout::estimate_items(bits_set(), num_blocks_, k_);
  }
  /// How many bits are set. O(m).
  [[nodiscard]] auto bits_set() const noexcept -> std::uint64_t {
    std::uint64_t set = 0;
    const word_type* w = words_.data();
    for (std::size_t i = 0; i < words_.size(); ++i)
      set += static_cast<std::uint64_t>(std::popcount(Concurrency::load(w[i])));
    return set;
  }
  /// The size of the filter in bits (m).
  [[nodiscard]] auto bit_count() const noexcept -> std::uint64_t { return words_.size() * sizeof(word_type) * 8; }
  /// Bits set (probes) per key (k).
  [[nodiscard]] auto hash_count() const noexcept -> std::uint32_t { return k_; }
  /// Bytes of the bit array.
  [[nodiscard]] auto memory_bytes() const noexcept -> std::size_t { return words_.size() * sizeof(word_type); }
  [[nodiscard]] auto hash_function() const -> const Hash& { return hash_; }

  /// Same size, same k, same bits.
  [[nodiscard]] friend auto operator==(const bloom_filter& a, const bloom_filter& b) noexcept -> bool {
    if (a.num_blocks_ != b.num_blocks_ || a.k_ != b.k_) return false;
    for (std::size_t i = 0; i < a.words_.size(); ++i) {
      if (Concurrency::load(a.words_.data()[i]) != Concurrency::load(b.words_.data()[i])) return false;
    }
    return true;
  }

  // --- bytes -----------------------------------------------------------------------------------

  /// The portable byte form: a 32-byte little-endian header (magic "DKBF", format version,
  /// layout id, hash id, k, reserved, block count, bitset length), the bitset as little-endian
  /// words, then a CRC-32C of everything before it.
  [[nodiscard]] auto to_bytes() const -> std::vector<std::byte> {
    const std::size_t payload = memory_bytes();
    std::vector<std::byte> out(header_bytes + payload + trailer_bytes);
    std::byte* p = out.data();
    detail::store_le<std::uint32_t>(p, format_magic);
    detail::store_le<std::uint16_t>(p + 4, format_version);
    detail::store_le<std::uint8_t>(p + 6, static_cast<std::uint8_t>(Layout::id));
    detail::store_le<std::uint8_t>(p + 7, hasher_id<Hash>);
    detail::store_le<std::uint32_t>(p + 8, k_);
    detail::store_le<std::uint32_t>(p + 12, 0);
    detail::store_le<std::uint64_t>(p + 16, num_blocks_);
    detail::store_le<std::uint64_t>(p + 24, payload);
    write_words(p + header_bytes);
    const std::uint32_t crc = detail::crc32c(p, header_bytes + payload);
    detail::store_le<std::uint32_t>(p + header_bytes + payload, crc);
    return out;
  }

  /// Rebuilds a filter from `to_bytes()` output.
  /// @throws bloom_filter_format_error when `bytes` is truncated, has trailing bytes, fails its
  ///   checksum, has an unknown magic or version, or was written with another layout or hash.
  [[nodiscard]] static auto from_bytes(std::span<const std::byte> bytes, Hash hash = Hash{}) -> bloom_filter {
    const std::size_t size = bytes.size();
    if (size < header_bytes + trailer_bytes) {
      corrupt("truncated: " + std::to_string(size) + " bytes, shorter than the " +
              std::to_string(header_bytes + trailer_bytes) + "-byte header and checksum");
    }
    const std::byte* p = bytes.data();
    if (detail::load_le<std::uint32_t>(p) != format_magic) corrupt("bad magic: not a serialized distkit Bloom filter");
    const auto version = detail::load_le<std::uint16_t>(p + 4);
    if (version != format_version) corrupt("unsupported format version " + std::to_string(version));
    const auto payload = detail::load_le<std::uint64_t>(p + 24);
    if (payload != size - header_bytes - trailer_bytes) {
      corrupt("length mismatch: header announces a " + std::to_string(payload) + "-byte bitset, the input holds " +
              std::to_string(size - header_bytes - trailer_bytes) + " (truncated or trailing bytes)");
    }
    const auto stored_crc = detail::load_le<std::uint32_t>(p + header_bytes + payload);
    if (detail::crc32c(p, header_bytes + payload) != stored_crc) corrupt("checksum mismatch: the bytes were altered");
    const auto layout = detail::load_le<std::uint8_t>(p + 6);
    if (layout != Layout::id) {
      corrupt("layout mismatch: written by layout id " + std::to_string(layout) + ", this filter's layout '" +
              std::string(Layout::name) + "' has id " + std::to_string(Layout::id));
    }
    const auto hash_id = detail::load_le<std::uint8_t>(p + 7);
    if (hash_id != hasher_id<Hash>) {
      corrupt("hash mismatch: written with hash id " + std::to_string(hash_id) + ", this filter's hash has id " +
              std::to_string(hasher_id<Hash>));
    }
    const auto k = detail::load_le<std::uint32_t>(p + 8);
    if (k < Layout::min_hash_count || k > Layout::max_hash_count)
      corrupt("hash count out of range: " + std::to_string(k));
#if !defined(DISTKIT_BLOOM_MUTATION_ACCEPT_RESERVED)  // test-only mutation: the fuzz harness must catch it
    if (detail::load_le<std::uint32_t>(p + 12) != 0) corrupt("reserved header field is not zero");
#endif
    const auto blocks = detail::load_le<std::uint64_t>(p + 16);
    constexpr std::uint64_t block_bytes = Layout::block_words * sizeof(word_type);
    if (blocks == 0 || blocks > max_bits / (block_bytes * 8) || blocks * block_bytes != payload) {
      corrupt("block count " + std::to_string(blocks) + " does not match the bitset length");
    }
    bloom_filter f(raw_shape{}, blocks, k, std::move(hash));
    f.read_words(p + header_bytes);
    return f;
  }

  /// The raw bitset as Apache Parquet stores it after its BloomFilterHeader: blocks of eight
  /// little-endian 32-bit words. Only for the split-block layout.
  [[nodiscard]] auto to_parquet_bitset() const -> std::vector<std::byte>
    requires std::same_as<Layout, split_block_layout>
  {
    std::vector<std::byte> out(memory_bytes());
    write_words(out.data());
    return out;
  }

  /// A split-block filter over a raw Parquet bitset (the bytes after the BloomFilterHeader).
  /// Parquet hashes with XXH64 seed 0: use `Hash = xxh64_hash` to query Parquet's filters.
  /// @throws bloom_filter_format_error when the length is zero, not a multiple of 32 bytes or
  ///   over `max_bits`.
  [[nodiscard]] static auto from_parquet_bitset(std::span<const std::byte> bitset, Hash hash = Hash{}) -> bloom_filter
    requires std::same_as<Layout, split_block_layout>
  {
    if (bitset.empty() || bitset.size() % 32 != 0 || bitset.size() > max_bits / 8) {
      corrupt("a Parquet split-block bitset is a positive multiple of 32 bytes, got " + std::to_string(bitset.size()));
    }
    bloom_filter f(raw_shape{}, bitset.size() / 32, 8, std::move(hash));
    f.read_words(bitset.data());
    return f;
  }

 private:
  static constexpr std::string_view component = "bloom_filter";

  struct raw_shape {};
  bloom_filter(raw_shape /*tag*/, std::uint64_t blocks, std::uint32_t k, Hash hash)
      : words_(static_cast<std::size_t>(blocks * Layout::block_words)),
        num_blocks_(blocks),
        k_(k),
        hash_(std::move(hash)) {}

  [[nodiscard]] static auto checked_blocks(const bloom_size& size) -> std::uint64_t {
    constexpr std::uint64_t block_bits = Layout::block_words * sizeof(word_type) * 8;
    if (size.bits == 0 || size.bits > max_bits) {
      detail::throw_invalid_argument(component, "bits", "must be in [1, 2^40]", size.bits);
    }
    if (size.hash_count < Layout::min_hash_count || size.hash_count > Layout::max_hash_count) {
      detail::throw_invalid_argument(component, "hash_count",
                                     "must be in [" + std::to_string(Layout::min_hash_count) + ", " +
                                         std::to_string(Layout::max_hash_count) + "] for the " +
                                         std::string(Layout::name) + " layout",
                                     size.hash_count);
    }
    return (size.bits + block_bits - 1) / block_bits;
  }

  [[noreturn]] DISTKIT_COLD static void too_big(std::uint64_t items) {
    detail::throw_invalid_argument(component, "expected_items",
                                   "with this false_positive_rate needs more than 2^40 bits (128 GiB)", items);
  }
  [[noreturn]] DISTKIT_COLD static void corrupt(const std::string& what) {
    throw bloom_filter_format_error("distkit::bloom_filter: " + what);
  }
  static void check_results(std::size_t keys, std::size_t results) {
    if (keys != results) {
      detail::throw_invalid_argument(component, "results",
                                     "must have one element per key (" + std::to_string(keys) + ")", results);
    }
  }

  /// Keys per batch group: 16 (4 for `classic`, which touches k lines per key).
  static constexpr std::size_t batch_group = Layout::block_words == 1 ? 4 : 16;

  /// Runs `apply(first, hashes, n)` over groups of the hashes of [0, count): the hashes of the
  /// next group are computed and their cache lines prefetched before the current group is
  /// applied, so about two groups of misses are in flight at once.
  template <class HashAt, class Apply>
  void pipeline(std::size_t count, HashAt hash_at, bool for_write, Apply apply) const noexcept {
#if DISTKIT_X86_DISPATCH
    // With the AVX2 kernels, the whole batch loop (hashing included) is compiled for AVX2 too.
    if constexpr (!Concurrency::is_concurrent &&
                  requires { Layout::template contains_group<Concurrency>(nullptr, 0, nullptr, 0, 0); }) {
      if (detail::bloom_uses_avx2()) {
        pipeline_avx2(count, hash_at, for_write, apply);
        return;
      }
    }
#endif
    pipeline_loop(count, hash_at, for_write, apply);
  }
#if DISTKIT_X86_DISPATCH
  template <class HashAt, class Apply>
  DISTKIT_TARGET_AVX2 void pipeline_avx2(std::size_t count, HashAt& hash_at, bool for_write,
                                         Apply& apply) const noexcept {
    pipeline_loop(count, hash_at, for_write, apply);
  }
#endif
  template <class HashAt, class Apply>
  [[gnu::always_inline]] inline void pipeline_loop(std::size_t count, HashAt& hash_at, bool for_write,
                                                   Apply& apply) const noexcept {
    std::array<std::array<std::uint64_t, batch_group>, 2> hashes{};
    if (count == 0) return;
    stage(0, count, hash_at, for_write, hashes[0]);
    for (std::size_t first = 0, g = 0; first < count; first += batch_group, g ^= 1U) {
      if (first + batch_group < count) stage(first + batch_group, count, hash_at, for_write, hashes[g ^ 1U]);
      apply(first, hashes[g].data(), std::min(batch_group, count - first));
    }
  }
  template <class HashAt>
  [[gnu::always_inline]] inline void stage(std::size_t first, std::size_t count, HashAt& hash_at, bool for_write,
                                           std::array<std::uint64_t, batch_group>& out) const noexcept {
    const std::size_t n = std::min(batch_group, count - first);
    for (std::size_t j = 0; j < n; ++j) out[j] = hash_at(first + j);
    for (std::size_t j = 0; j < n; ++j) Layout::prefetch(words_.data(), num_blocks_, out[j], k_, for_write);
  }

  /// The batch queries: `put(i, contains(i))` for i in [0, count); returns how many are true.
  template <class HashAt, class Put>
  auto query(std::size_t count, HashAt hash_at, Put put) const noexcept -> std::size_t {
    std::size_t found = 0;
    pipeline(count, hash_at, false, [&](std::size_t first, const std::uint64_t* hashes, std::size_t n) {
      const std::uint32_t hits = contains_group(hashes, n);
      for (std::size_t j = 0; j < n; ++j) {
        const std::uint32_t hit = (hits >> j) & 1U;  // counted here: std::popcount is a libgcc call at baseline
        put(first + j, hit != 0);
        found += hit;
      }
    });
    return found;
  }

  /// A layout with group kernels chooses its kernel once per group; others go key by key.
  void insert_group(const std::uint64_t* hashes, std::size_t n) noexcept {
    if constexpr (requires { Layout::template insert_group<Concurrency>(nullptr, 0, hashes, n, 0); }) {
      Layout::template insert_group<Concurrency>(words_.data(), num_blocks_, hashes, n, k_);
    } else {
      for (std::size_t j = 0; j < n; ++j) insert_hash(hashes[j]);
    }
  }
  [[nodiscard]] auto contains_group(const std::uint64_t* hashes, std::size_t n) const noexcept -> std::uint32_t {
    if constexpr (requires { Layout::template contains_group<Concurrency>(nullptr, 0, hashes, n, 0); }) {
      return Layout::template contains_group<Concurrency>(words_.data(), num_blocks_, hashes, n, k_);
    } else {
      std::uint32_t hits = 0;
      for (std::size_t j = 0; j < n; ++j) hits |= static_cast<std::uint32_t>(contains_hash(hashes[j])) << j;
      return hits;
    }
  }

  void write_words(std::byte* out) const noexcept {
    const word_type* w = words_.data();
    if constexpr (std::endian::native == std::endian::little && !Concurrency::is_concurrent) {
      if (!words_.size()) return;
      std::memcpy(out, w, words_.size() * sizeof(word_type));
    } else {
      for (std::size_t i = 0; i < words_.size(); ++i) {
        detail::store_le<word_type>(out + i * sizeof(word_type), Concurrency::load(w[i]));
      }
    }
  }
  void read_words(const std::byte* in) noexcept {
    word_type* w = words_.data();
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(w, in, words_.size() * sizeof(word_type));
    } else {
      for (std::size_t i = 0; i < words_.size(); ++i) w[i] = detail::load_le<word_type>(in + i * sizeof(word_type));
    }
  }

  detail::bloom_words<word_type> words_;
  std::uint64_t num_blocks_ = 0;
  std::uint32_t k_ = 0;
  [[no_unique_address]] Hash hash_;
};

/// A filter that reads and writes Apache Parquet's column Bloom filters: XXH64, split blocks.
template <class Key, bloom_concurrency Concurrency = single_writer_concurrency>
using parquet_bloom_filter = bloom_filter<Key, xxh64_hash, split_block_layout, Concurrency>;

}  // namespace distkit::inline v0
