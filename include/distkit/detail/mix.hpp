// SPDX-License-Identifier: MIT
// distkit/detail/mix.hpp: a 64-bit bijective mixer shared by the hash ring and the rate limiter.
#pragma once

#include <cstdint>

namespace distkit::inline v0::detail {

/// A 64-bit finalizer with full avalanche (every input bit flips each output bit with
/// probability close to 1/2). A bijection: each step (xor-shift, odd multiply) is invertible,
/// so two different inputs never give the same output.
[[nodiscard]] constexpr auto mix64(std::uint64_t x) noexcept -> std::uint64_t {
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ULL;
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ULL;
  x ^= x >> 32;
  return x;
}

}  // namespace distkit::inline v0::detail
