// SPDX-License-Identifier: MIT
// distkit/detail/saturating_time.hpp: time arithmetic that saturates instead of overflowing, for
// clocks and durations at the ends of their ranges.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <ratio>
#include <type_traits>

namespace distkit::inline v0::detail {

/// The times and durations the primitives compute with: [-2^62, 2^62] ns (about 146 years either
/// side of the clock's epoch). A value outside counts as the nearer end, so a time plus or minus
/// a window or wait of the same range never leaves int64.
inline constexpr std::int64_t time_bound = std::int64_t{1} << 62;

[[nodiscard]] constexpr auto clamp_time(std::int64_t t) noexcept -> std::int64_t {
  return t > time_bound ? time_bound : (t < -time_bound ? -time_bound : t);
}

/// `d` in nanoseconds, saturated to [-time_bound, time_bound]: `duration_cast` would overflow
/// (undefined behaviour) for a coarse clock's extreme time points or `hours::max()`.
template <class Rep, class Period>
[[nodiscard]] constexpr auto saturating_ns(std::chrono::duration<Rep, Period> d) noexcept -> std::int64_t {
  using to_ns = std::ratio_divide<Period, std::nano>;
  if constexpr (std::is_floating_point_v<Rep>) {
    const long double v = static_cast<long double>(d.count()) * to_ns::num / to_ns::den;
    if (v != v) return 0;  // NaN
    if (v >= static_cast<long double>(time_bound)) return time_bound;
    if (v <= static_cast<long double>(-time_bound)) return -time_bound;
    return static_cast<std::int64_t>(v);
  } else {
    static_assert(to_ns::num <= (std::intmax_t{1} << 62), "distkit: clock period too coarse");
    __extension__ using int128 = __int128;
    const int128 v = static_cast<int128>(d.count()) * to_ns::num / to_ns::den;
    if (v > time_bound) return time_bound;
    if (v < -time_bound) return -time_bound;
    return static_cast<std::int64_t>(v);
  }
}

/// `a + b`, saturated to the int64 range.
[[nodiscard]] constexpr auto add_saturating(std::int64_t a, std::int64_t b) noexcept -> std::int64_t {
  std::int64_t sum = 0;
  if (__builtin_add_overflow(a, b, &sum)) {
    return b > 0 ? std::numeric_limits<std::int64_t>::max() : std::numeric_limits<std::int64_t>::min();
  }
  return sum;
}

}  // namespace distkit::inline v0::detail
