// SPDX-License-Identifier: MIT
// distkit/detail/endian.hpp: little-endian loads and stores for portable byte formats.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace distkit::inline v0::detail {

template <class T>
  requires std::is_integral_v<T>
[[nodiscard]] constexpr auto byteswap(T value) noexcept -> T {
  if constexpr (sizeof(T) == 1) {
    return value;
  } else if constexpr (sizeof(T) == 2) {
    return static_cast<T>(__builtin_bswap16(static_cast<std::uint16_t>(value)));
  } else if constexpr (sizeof(T) == 4) {
    return static_cast<T>(__builtin_bswap32(static_cast<std::uint32_t>(value)));
  } else {
    static_assert(sizeof(T) == 8);
    return static_cast<T>(__builtin_bswap64(static_cast<std::uint64_t>(value)));
  }
}

/// Reads a little-endian integer from possibly unaligned memory.
template <class T>
  requires std::is_integral_v<T>
[[nodiscard]] inline auto load_le(const void* src) noexcept -> T {
  T value;
  std::memcpy(&value, src, sizeof(T));
  if constexpr (std::endian::native == std::endian::big) value = byteswap(value);
  return value;
}

/// Writes a little-endian integer to possibly unaligned memory.
template <class T>
  requires std::is_integral_v<T>
inline void store_le(void* dst, T value) noexcept {
  if constexpr (std::endian::native == std::endian::big) value = byteswap(value);
  std::memcpy(dst, &value, sizeof(T));
}

}  // namespace distkit::inline v0::detail
