// SPDX-License-Identifier: MIT
// distkit/hash.hpp: the `hasher` concept and the shipped 64-bit hash policies.
//
// Every keyed primitive (Bloom filter, hash ring, rate limiter) takes a Hash policy: a function
// object returning a 64-bit hash. The shipped ones hash a key's bytes:
//   xxh3_hash   XXH3-64 (default: the fastest high-quality hash for short keys)
//   xxh64_hash  XXH64, seed 0 (what Apache Parquet's Bloom filters use)
//   fnv1a_hash  FNV-1a 64 (tiny, dependency-free, weak avalanche; for compatibility only)
//   md5_hash    MD5 via OpenSSL, in distkit/md5.hpp (ketama compatibility; needs distkit::openssl)
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#endif
#include <xxhash.h>

namespace distkit::inline v0 {

/// @brief A key whose hash is the hash of its bytes: anything convertible to
/// `std::string_view` (strings, literals), a `std::span<const std::byte>`, or a trivially
/// copyable type whose value has exactly one byte representation (integers, enums, pointers,
/// padding-free structs of those). Floating-point types are excluded: +0.0 and -0.0 compare
/// equal but differ in bytes; hash `std::bit_cast<std::uint64_t>(x)` if that is what you mean.
template <class Key>
concept byte_hashable =
    std::convertible_to<const Key&, std::string_view> || std::convertible_to<const Key&, std::span<const std::byte>> ||
    (std::is_trivially_copyable_v<Key> && std::has_unique_object_representations_v<Key>);

namespace detail {
/// The bytes a `byte_hashable` key is hashed as.
template <byte_hashable Key>
[[nodiscard]] inline auto key_bytes(const Key& key) noexcept -> std::string_view {
  if constexpr (std::convertible_to<const Key&, std::string_view>) {
    return std::string_view(key);
  } else if constexpr (std::convertible_to<const Key&, std::span<const std::byte>>) {
    const std::span<const std::byte> bytes(key);
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
  } else {
    return {reinterpret_cast<const char*>(&key), sizeof(Key)};
  }
}
}  // namespace detail

/// @brief A hash policy for keys of type `Key`.
///
/// Requires `h(key)` to be `noexcept` and to return `std::uint64_t`, on a const `H`.
/// All 64 bits should be well mixed: primitives split the result into independent parts
/// (block index and bit positions; two halves for double hashing).
/// Optional: `static constexpr std::uint8_t id` names the algorithm in serialized formats.
template <class H, class Key>
concept hasher = std::copy_constructible<H> && requires(const H& h, const Key& key) {
  { h(key) } noexcept -> std::same_as<std::uint64_t>;
};

/// @brief XXH3-64 with seed 0 over the key's bytes (xxHash, header-only).
///
/// **Thread safety:** stateless. **Complexity:** O(key size), with no per-call setup, so short
/// keys cost a few instructions (timings: benchmarks/RESULTS.md, "Hash policies").
struct xxh3_hash {
  static constexpr std::uint8_t id = 1;
  static constexpr std::string_view name = "xxh3";

  [[nodiscard]] static auto bytes(const void* data, std::size_t size) noexcept -> std::uint64_t {
    return XXH3_64bits(data, size);
  }
  template <byte_hashable Key>
  [[nodiscard]] auto operator()(const Key& key) const noexcept -> std::uint64_t {
    const std::string_view b = detail::key_bytes(key);
    return bytes(b.data(), b.size());
  }
};

/// @brief XXH64 with seed 0 over the key's bytes: the hash Apache Parquet's Bloom filters use.
struct xxh64_hash {
  static constexpr std::uint8_t id = 2;
  static constexpr std::string_view name = "xxh64";

  [[nodiscard]] static auto bytes(const void* data, std::size_t size) noexcept -> std::uint64_t {
    return XXH64(data, size, 0);
  }
  template <byte_hashable Key>
  [[nodiscard]] auto operator()(const Key& key) const noexcept -> std::uint64_t {
    const std::string_view b = detail::key_bytes(key);
    return bytes(b.data(), b.size());
  }
};

/// @brief FNV-1a 64-bit over the key's bytes.
///
/// Its low bits mix poorly for short keys; prefer `xxh3_hash` unless you need FNV's values.
struct fnv1a_hash {
  static constexpr std::uint8_t id = 3;
  static constexpr std::string_view name = "fnv1a";
  static constexpr std::uint64_t offset_basis = 0xcbf29ce484222325ULL;
  static constexpr std::uint64_t prime = 0x100000001b3ULL;

  [[nodiscard]] static auto bytes(const void* data, std::size_t size) noexcept -> std::uint64_t {
    const auto* p = static_cast<const unsigned char*>(data);
    std::uint64_t h = offset_basis;
    for (std::size_t i = 0; i < size; ++i) {
      h ^= p[i];
      h *= prime;
    }
    return h;
  }
  template <byte_hashable Key>
  [[nodiscard]] auto operator()(const Key& key) const noexcept -> std::uint64_t {
    const std::string_view b = detail::key_bytes(key);
    return bytes(b.data(), b.size());
  }
};

static_assert(hasher<xxh3_hash, std::string>);
static_assert(hasher<xxh3_hash, std::string_view>);
static_assert(hasher<xxh3_hash, std::uint64_t>);
static_assert(hasher<xxh64_hash, std::string>);
static_assert(hasher<fnv1a_hash, std::string>);
static_assert(!hasher<xxh3_hash, double>);

/// Detected trait: the serialization id of a hash policy, or 0 when it declares none.
template <class H>
inline constexpr std::uint8_t hasher_id = [] {
  if constexpr (requires { H::id; }) {
    return static_cast<std::uint8_t>(H::id);
  } else {
    return static_cast<std::uint8_t>(0);
  }
}();

}  // namespace distkit::inline v0
