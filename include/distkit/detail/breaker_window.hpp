// SPDX-License-Identifier: MIT
// distkit/detail/breaker_window.hpp: the call outcome and window snapshot types shared by the
// circuit breaker and its window policies, plus the packed-counter helpers they use.
#pragma once

#include <atomic>
#include <cstdint>

namespace distkit::inline v0 {

/// @brief The counts a circuit-breaker window holds at one moment.
struct window_snapshot {
  std::uint64_t calls = 0;   ///< buffered calls (every recorded outcome still in the window)
  std::uint64_t failed = 0;  ///< of which failed
  std::uint64_t slow = 0;    ///< of which slower than `slow_call_duration_threshold`
};

/// @brief One recorded call: failed or not, slow or not. Encoded in one byte so a count-based
/// window can keep a ring of them.
struct call_outcome {
  bool failed = false;
  bool slow = false;

  /// Bit 0: a call is present; bit 1: failed; bit 2: slow. A zero byte is an empty slot.
  [[nodiscard]] constexpr auto code() const noexcept -> std::uint8_t {
    return static_cast<std::uint8_t>(1U | (failed ? 2U : 0U) | (slow ? 4U : 0U));
  }
};

}  // namespace distkit::inline v0

namespace distkit::inline v0::detail {

// The count window keeps its three aggregates (calls, failed, slow) in ONE 64-bit word so that a
// record updates them with a single fetch_add. Each field is 21 bits wide and stored with a bias
// of 2^20: a field may dip below its true value for a moment when two recorders race on the same
// slot one lap apart (each applies "new minus old"), and the bias keeps such a dip from borrowing
// out of the neighbouring field. Window sizes are capped well below 2^20 so no field can leave
// its range.
inline constexpr unsigned packed_field_bits = 21;
inline constexpr std::uint64_t packed_field_mask = (std::uint64_t{1} << packed_field_bits) - 1;
inline constexpr std::uint64_t packed_bias = std::uint64_t{1} << (packed_field_bits - 1);
inline constexpr std::uint64_t packed_biased_zero =
    packed_bias | (packed_bias << packed_field_bits) | (packed_bias << (2 * packed_field_bits));

/// The packed (calls, failed, slow) contribution of one slot code (0 for an empty slot).
[[nodiscard]] constexpr auto packed_of_code(std::uint8_t code) noexcept -> std::uint64_t {
  return static_cast<std::uint64_t>(code & 1U) | (static_cast<std::uint64_t>((code >> 1) & 1U) << packed_field_bits) |
         (static_cast<std::uint64_t>((code >> 2) & 1U) << (2 * packed_field_bits));
}

[[nodiscard]] constexpr auto unpack_counts(std::uint64_t packed) noexcept -> window_snapshot {
  auto field = [packed](unsigned i) {
    const std::uint64_t biased = (packed >> (i * packed_field_bits)) & packed_field_mask;
    // A transient dip below zero reads as zero; it is corrected by the racing recorder's add.
    return biased > packed_bias ? biased - packed_bias : std::uint64_t{0};
  };
  return {field(0), field(1), field(2)};
}

}  // namespace distkit::inline v0::detail
