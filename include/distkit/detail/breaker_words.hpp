// SPDX-License-Identifier: MIT
// distkit/detail/breaker_words.hpp: the layouts of the 64-bit words the circuit breaker packs
// several fields into, so that each is read and updated with one atomic operation.
//
// Every word carries (some low bits of) the *generation* of the state it belongs to: the number
// of transitions so far, as the breaker's state word holds it. An update made for an older state
// then fails a generation check instead of leaking into the new one.
//
//   stripe word      63            40 39            16 15           0
//                    [ generation:24 | second:24      | pending:16   ]
//                    fast successes batched on one stripe, with the state and second they
//                    belong to (together, the 48-bit "tag")
//
//   probe results    63         48 47        32 31         16 15       0
//                    [ gen:16     | calls:16   | failed:16   | slow:16  ]
//                    the outcomes of the half-open probes recorded so far
//
//   probe permits    63                            20 19              0
//                    [ generation:44                 | left:20         ]
//                    the probe calls half-open may still grant
#pragma once

#include <cstdint>

#include "distkit/breaker_window.hpp"

namespace distkit::inline v0::detail {

/// The stripe word: [generation:24 | second:24 | pending:16].
struct stripe_word {
  static constexpr unsigned pending_bits = 16;
  static constexpr unsigned second_bits = 24;
  static constexpr unsigned generation_bits = 24;
  static constexpr std::uint64_t pending_mask = (std::uint64_t{1} << pending_bits) - 1;
  static constexpr std::uint64_t second_mask = (std::uint64_t{1} << second_bits) - 1;
  static constexpr std::uint64_t generation_mask = (std::uint64_t{1} << generation_bits) - 1;

  /// The tag (generation and second, 48 bits) of successes recorded at `second` in `generation`.
  [[nodiscard]] static constexpr auto tag(std::uint64_t generation, std::int64_t second) noexcept -> std::uint64_t {
    return ((generation & generation_mask) << second_bits) | (static_cast<std::uint64_t>(second) & second_mask);
  }
  [[nodiscard]] static constexpr auto make(std::uint64_t tag, std::uint64_t pending) noexcept -> std::uint64_t {
    return (tag << pending_bits) | pending;
  }
  [[nodiscard]] static constexpr auto tag_of(std::uint64_t word) noexcept -> std::uint64_t {
    return word >> pending_bits;
  }
  [[nodiscard]] static constexpr auto pending_of(std::uint64_t word) noexcept -> std::uint64_t {
    return word & pending_mask;
  }
  /// The word with its pending count taken out (zero), tag kept.
  [[nodiscard]] static constexpr auto without_pending(std::uint64_t word) noexcept -> std::uint64_t {
    return word & ~pending_mask;
  }
  /// True when `tag` was made in `generation` (compared on the bits the tag keeps).
  [[nodiscard]] static constexpr auto same_generation(std::uint64_t tag, std::uint64_t generation) noexcept -> bool {
    return (tag >> second_bits) == (generation & generation_mask);
  }
  /// The second `tag` was made at: the latest second not after `now_second` with the same low
  /// 24 bits (a pending batch is never 2^24 seconds, about 194 days, old).
  [[nodiscard]] static constexpr auto second_of(std::uint64_t tag, std::int64_t now_second) noexcept -> std::int64_t {
    return now_second -
           static_cast<std::int64_t>((static_cast<std::uint64_t>(now_second) - (tag & second_mask)) & second_mask);
  }
};

/// The probe results word: [generation:16 | calls:16 | failed:16 | slow:16]. The counts never
/// exceed `permitted_number_of_calls_in_half_open_state` (at most 65535), so none carries into
/// its neighbour.
struct probe_results_word {
  static constexpr unsigned count_bits = 16;
  static constexpr std::uint64_t count_mask = (std::uint64_t{1} << count_bits) - 1;
  static constexpr unsigned slow_shift = 0;
  static constexpr unsigned failed_shift = count_bits;
  static constexpr unsigned calls_shift = 2 * count_bits;
  static constexpr unsigned generation_shift = 3 * count_bits;

  /// The empty results of `generation`.
  [[nodiscard]] static constexpr auto empty(std::uint64_t generation) noexcept -> std::uint64_t {
    return (generation & count_mask) << generation_shift;
  }
  /// What one recorded probe adds to the word.
  [[nodiscard]] static constexpr auto increment(call_outcome outcome) noexcept -> std::uint64_t {
    return (std::uint64_t{1} << calls_shift) | (outcome.failed ? (std::uint64_t{1} << failed_shift) : 0U) |
           (outcome.slow ? (std::uint64_t{1} << slow_shift) : 0U);
  }
  /// True when `word` holds the results of `generation` (compared on its low 16 bits).
  [[nodiscard]] static constexpr auto same_generation(std::uint64_t word, std::uint64_t generation) noexcept -> bool {
    return (word >> generation_shift) == (generation & count_mask);
  }
  [[nodiscard]] static constexpr auto counts(std::uint64_t word) noexcept -> window_snapshot {
    return {(word >> calls_shift) & count_mask, (word >> failed_shift) & count_mask, (word >> slow_shift) & count_mask};
  }
};

/// The probe permits word: [generation:44 | left:20].
struct probe_permits_word {
  static constexpr unsigned left_bits = 20;
  static constexpr std::uint64_t left_mask = (std::uint64_t{1} << left_bits) - 1;

  [[nodiscard]] static constexpr auto make(std::uint64_t generation, std::uint64_t left) noexcept -> std::uint64_t {
    return (generation << left_bits) | left;
  }
  [[nodiscard]] static constexpr auto generation_of(std::uint64_t word) noexcept -> std::uint64_t {
    return word >> left_bits;
  }
  [[nodiscard]] static constexpr auto left_of(std::uint64_t word) noexcept -> std::uint64_t { return word & left_mask; }
  /// One permit granted (`left_of(word) > 0`) or given back: the count is the low field, so a
  /// plain subtraction or addition of one.
  static constexpr std::uint64_t one_permit = 1;
};

}  // namespace distkit::inline v0::detail
