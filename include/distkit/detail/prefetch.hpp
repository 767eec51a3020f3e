// SPDX-License-Identifier: MIT
// distkit/detail/prefetch.hpp: a cache-line prefetch hint shared by the batch paths.
#pragma once

namespace distkit::inline v0::detail {

/// Asks for the cache line holding `address`, to be read (or written, when `for_write`) soon.
/// A hint: it never faults, so a stale or unmapped address only wastes a memory request.
inline void prefetch(const void* address, bool for_write) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  if (for_write) {
    __builtin_prefetch(address, 1, 3);
  } else {
    __builtin_prefetch(address, 0, 3);
  }
#else
  (void)address;
  (void)for_write;
#endif
}

}  // namespace distkit::inline v0::detail
