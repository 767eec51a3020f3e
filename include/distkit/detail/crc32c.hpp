// SPDX-License-Identifier: MIT
// distkit/detail/crc32c.hpp: CRC-32C (Castagnoli), the checksum of every distkit byte format.
//
// CRC-32C is what iSCSI, ext4, RocksDB and LevelDB use for records on disk: x86 computes it in
// hardware (SSE4.2 `crc32`), and a software slice-by-8 table covers every other host. The
// hardware path is chosen once at run time, so a binary built without -msse4.2 still uses it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "distkit/detail/endian.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define DISTKIT_CRC32C_HW 1
#else
#define DISTKIT_CRC32C_HW 0
#endif

namespace distkit::inline v0::detail {

inline constexpr std::uint32_t crc32c_polynomial = 0x82F63B78U;  // reflected Castagnoli

constexpr auto make_crc32c_tables() noexcept -> std::array<std::array<std::uint32_t, 256>, 8> {
  std::array<std::array<std::uint32_t, 256>, 8> tables{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1U) ? crc32c_polynomial : 0U);
    tables[0][i] = crc;
  }
  for (std::uint32_t i = 0; i < 256; ++i) {
    for (std::size_t t = 1; t < 8; ++t) tables[t][i] = (tables[t - 1][i] >> 8) ^ tables[0][tables[t - 1][i] & 0xFFU];
  }
  return tables;
}

inline constexpr auto crc32c_tables = make_crc32c_tables();

/// Software CRC-32C over `size` bytes, continuing from the raw (un-inverted) state `crc`.
[[nodiscard]] inline auto crc32c_update_sw(std::uint32_t crc, const unsigned char* p, std::size_t size) noexcept
    -> std::uint32_t {
  const auto& t = crc32c_tables;
  while (size >= 8) {
    const std::uint64_t word = load_le<std::uint64_t>(p) ^ crc;
    crc = t[7][word & 0xFF] ^ t[6][(word >> 8) & 0xFF] ^ t[5][(word >> 16) & 0xFF] ^ t[4][(word >> 24) & 0xFF] ^
          t[3][(word >> 32) & 0xFF] ^ t[2][(word >> 40) & 0xFF] ^ t[1][(word >> 48) & 0xFF] ^ t[0][word >> 56];
    p += 8;
    size -= 8;
  }
  while (size-- > 0) crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xFFU];
  return crc;
}

#if DISTKIT_CRC32C_HW
__attribute__((target("sse4.2"))) inline auto crc32c_update_hw(std::uint32_t crc, const unsigned char* p,
                                                               std::size_t size) noexcept -> std::uint32_t {
  std::uint64_t state = crc;
  while (size >= 8) {
    std::uint64_t word;
    std::memcpy(&word, p, 8);
    state = _mm_crc32_u64(state, word);
    p += 8;
    size -= 8;
  }
  auto c = static_cast<std::uint32_t>(state);
  while (size-- > 0) c = _mm_crc32_u8(c, *p++);
  return c;
}

inline auto crc32c_has_hw() noexcept -> bool {
  static const bool has = __builtin_cpu_supports("sse4.2");
  return has;
}
#endif

/// @brief CRC-32C of `size` bytes, optionally continuing a previous result `crc`.
///
/// `crc32c(b, crc32c(a))` equals `crc32c(a + b)`. Known answer: `crc32c("123456789") == 0xE3069283`.
[[nodiscard]] inline auto crc32c(const void* data, std::size_t size, std::uint32_t crc = 0) noexcept -> std::uint32_t {
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint32_t state = ~crc;
#if DISTKIT_CRC32C_HW
  if (crc32c_has_hw()) return ~crc32c_update_hw(state, p, size);
#endif
  return ~crc32c_update_sw(state, p, size);
}

[[nodiscard]] inline auto crc32c(std::span<const std::byte> bytes, std::uint32_t crc = 0) noexcept -> std::uint32_t {
  return crc32c(bytes.data(), bytes.size(), crc);
}

[[nodiscard]] inline auto crc32c(std::string_view bytes, std::uint32_t crc = 0) noexcept -> std::uint32_t {
  return crc32c(bytes.data(), bytes.size(), crc);
}

}  // namespace distkit::inline v0::detail
