// SPDX-License-Identifier: MIT
// distkit/breaker_window.hpp: the sliding windows of `circuit_breaker` (count- and time-based),
// the concept a window policy models, and the types a window records and reports. Included by
// circuit_breaker.hpp.
#pragma once

#include <algorithm>
#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>

#include "distkit/detail/error.hpp"

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

namespace distkit::inline v0 {

/// @brief A sliding-window policy of `circuit_breaker`.
///
/// Requires: `W(size)`; `w.record(outcome, n, second) -> window_snapshot` adds `n` identical
/// outcomes (at `second` for a time window) and returns the counts after it;
/// `w.snapshot(second) -> window_snapshot`; `w.reset()`; `W::is_time_based` (bool);
/// `W::max_size`. Every member but `reset` may be called concurrently and must be lock-free.
template <class W>
concept breaker_window = requires(W w, std::uint32_t size, call_outcome outcome, std::int64_t second) {
  { W::is_time_based } -> std::convertible_to<bool>;
  { W::max_size } -> std::convertible_to<std::uint32_t>;
  W(size);
  { w.record(outcome, size, second) } -> std::same_as<window_snapshot>;
  { w.snapshot(second) } -> std::same_as<window_snapshot>;
  w.reset();
};

/// @brief Count-based sliding window: the outcomes of the last `size` calls.
///
/// A ring of one-byte outcomes and one packed (calls, failed, slow) counter: a record claims a
/// slot with `fetch_add`, swaps its outcome in and applies the difference with one `fetch_add`
/// (none when the outcome replaced an equal one). A fast success recorded while the window is
/// full of fast successes changes nothing and writes nothing. O(1), no lock, no allocation.
class count_window {
 public:
  static constexpr bool is_time_based = false;
  static constexpr std::uint32_t max_size = 1U << 18;

  explicit count_window(std::uint32_t size)
      : size_(size),
        all_fast_successes_(detail::packed_biased_zero + size),
        slots_(std::make_unique<std::atomic<std::uint8_t>[]>(size)) {
    for (std::uint32_t i = 0; i < size_; ++i) slots_[i].store(0, std::memory_order_relaxed);
  }

  auto record(call_outcome outcome, std::uint32_t n, std::int64_t /*second*/) noexcept -> window_snapshot {
    const std::uint8_t code = outcome.code();
    // Every slot holds a fast success and so does this record: whichever slots it claimed, it
    // would replace fast successes with fast successes, and slots holding equal outcomes cannot
    // be told apart, so the window is the same without the claim. Skipping it keeps the
    // cursor's line unwritten: a healthy breaker's record is then two loads, not a locked add.
    // (A record racing with this one may have swapped its slot and not yet applied its
    // difference: this one then counts as having come first.)
    if (code == call_outcome{}.code()) {
      const std::uint64_t counts = counts_.load(std::memory_order_relaxed);
      if (counts == all_fast_successes_) return detail::unpack_counts(counts);
    }
    const std::uint64_t add = detail::packed_of_code(code);
    std::uint64_t index = cursor_.fetch_add(n, std::memory_order_relaxed) % size_;
    std::uint64_t delta = 0;  // modular: "new minus old" summed over the slots
    for (std::uint32_t i = 0; i < n; ++i) {
      // A slot that already holds this outcome is left alone (the common case: a success
      // replacing a success costs a load, not a locked swap). Every change is still a swap whose
      // difference is applied below, so the counters always match the slots.
      if (slots_[index].load(std::memory_order_relaxed) != code) {
        const std::uint8_t old = slots_[index].exchange(code, std::memory_order_relaxed);
        delta += add - detail::packed_of_code(old);
      }
      if (++index == size_) index = 0;
    }
    if (delta == 0) return detail::unpack_counts(counts_.load(std::memory_order_relaxed));
    return detail::unpack_counts(counts_.fetch_add(delta, std::memory_order_relaxed) + delta);
  }

  [[nodiscard]] auto snapshot(std::int64_t /*second*/) const noexcept -> window_snapshot {
    return detail::unpack_counts(counts_.load(std::memory_order_relaxed));
  }

  /// Empties the window. Each slot is swapped out and its contribution subtracted, so a record
  /// racing with the reset leaves the counters consistent with the slots.
  void reset() noexcept {
    cursor_.store(0, std::memory_order_relaxed);
    std::uint64_t delta = 0;
    for (std::uint32_t i = 0; i < size_; ++i) {
      delta -= detail::packed_of_code(slots_[i].exchange(0, std::memory_order_relaxed));
    }
    counts_.fetch_add(delta, std::memory_order_relaxed);
  }

 private:
  std::uint32_t size_;
  std::uint64_t all_fast_successes_;  // counts_ when every slot holds a fast success
  std::unique_ptr<std::atomic<std::uint8_t>[]> slots_;
  alignas(64) std::atomic<std::uint64_t> cursor_{0};
  alignas(64) std::atomic<std::uint64_t> counts_{detail::packed_biased_zero};
};

/// @brief Time-based sliding window: the outcomes of the last `size` seconds, in one bucket per
/// second (resilience4j's partial aggregations).
///
/// Each bucket field is one 64-bit word, [second (32 bits) | count (32 bits)]: a record for a
/// second the bucket does not hold yet swaps the old second's count out (subtracting it from the
/// running totals) in the same compare-and-swap that starts the new one, so no record is lost to
/// an expiry. Moving the newest second (`head`) also expires the buckets of the seconds it
/// skipped; any recorder helps finish that expiry, so the totals never include a second that
/// has left the window once a record returns. O(1) amortised, no lock, no allocation.
class time_window {
 public:
  static constexpr bool is_time_based = true;
  static constexpr std::uint32_t max_size = 86'400;

  explicit time_window(std::uint32_t size) : size_(size), buckets_(std::make_unique<bucket[]>(size)) {}

  auto record(call_outcome outcome, std::uint32_t n, std::int64_t second) noexcept -> window_snapshot {
    advance(second);
    if (second <= head_.load(std::memory_order_acquire) - static_cast<std::int64_t>(size_)) {
      return snapshot_now();  // a second that already left the window
    }
    bucket& b = buckets_[index_of(second)];
    if (!outcome.failed) expire(b.failed, failed_, second);  // the bucket now belongs to `second`
    if (!outcome.slow) expire(b.slow, slow_, second);
    add(b.calls, calls_, second, n);
    if (outcome.failed) add(b.failed, failed_, second, n);
    if (outcome.slow) add(b.slow, slow_, second, n);
    return snapshot_now();
  }

  [[nodiscard]] auto snapshot(std::int64_t second) noexcept -> window_snapshot {
    advance(second);
    return snapshot_now();
  }

  void reset() noexcept {
    head_.store(no_head, std::memory_order_relaxed);
    expired_.store(no_head, std::memory_order_relaxed);
    for (std::uint32_t i = 0; i < size_; ++i) {
      calls_.fetch_sub(count_of(buckets_[i].calls.exchange(0, std::memory_order_relaxed)), std::memory_order_relaxed);
      failed_.fetch_sub(count_of(buckets_[i].failed.exchange(0, std::memory_order_relaxed)), std::memory_order_relaxed);
      slow_.fetch_sub(count_of(buckets_[i].slow.exchange(0, std::memory_order_relaxed)), std::memory_order_relaxed);
    }
  }

 private:
  struct bucket {
    std::atomic<std::uint64_t> calls{0};
    std::atomic<std::uint64_t> failed{0};
    std::atomic<std::uint64_t> slow{0};
  };
  static constexpr std::int64_t no_head = std::numeric_limits<std::int64_t>::min() / 2;

  static auto stamp_of(std::int64_t second) noexcept -> std::uint64_t {
    return static_cast<std::uint64_t>(static_cast<std::uint32_t>(second)) << 32;
  }
  static auto count_of(std::uint64_t field) noexcept -> std::int64_t {
    return static_cast<std::int64_t>(field & 0xFFFFFFFFU);
  }
  // <0: the field holds an older second than `second`; 0: the same; >0: a newer one.
  static auto compare(std::uint64_t field, std::int64_t second) noexcept -> std::int32_t {
    return static_cast<std::int32_t>(static_cast<std::uint32_t>(field >> 32) - static_cast<std::uint32_t>(second));
  }

  [[nodiscard]] auto index_of(std::int64_t second) const noexcept -> std::size_t {
    return static_cast<std::size_t>(static_cast<std::uint64_t>(second) % size_);
  }
  static auto clamp(std::int64_t v) noexcept -> std::uint64_t { return v > 0 ? static_cast<std::uint64_t>(v) : 0; }

  auto snapshot_now() const noexcept -> window_snapshot {
    return {clamp(calls_.load(std::memory_order_relaxed)), clamp(failed_.load(std::memory_order_relaxed)),
            clamp(slow_.load(std::memory_order_relaxed))};
  }

  // Adds `n` for `second`, taking the field over from an older second if needed.
  static void add(std::atomic<std::uint64_t>& field, std::atomic<std::int64_t>& total, std::int64_t second,
                  std::uint32_t n) noexcept {
    std::uint64_t cur = field.load(std::memory_order_relaxed);
    for (;;) {
      const std::int32_t order = compare(cur, second);
      if (order > 0) return;  // the bucket already moved past `second`: it left the window
      const std::int64_t expired = order < 0 ? count_of(cur) : 0;
      const std::uint64_t next = order < 0 ? (stamp_of(second) | n) : cur + n;
      if (field.compare_exchange_weak(cur, next, std::memory_order_relaxed)) {
        total.fetch_add(static_cast<std::int64_t>(n) - expired, std::memory_order_relaxed);
        return;
      }
    }
  }

  // Makes the field belong to `second` (empty) if it still holds an older second.
  static void expire(std::atomic<std::uint64_t>& field, std::atomic<std::int64_t>& total,
                     std::int64_t second) noexcept {
    std::uint64_t cur = field.load(std::memory_order_relaxed);
    while (compare(cur, second) < 0) {
      if (field.compare_exchange_weak(cur, stamp_of(second), std::memory_order_relaxed)) {
        total.fetch_sub(count_of(cur), std::memory_order_relaxed);
        return;
      }
    }
  }

  void advance(std::int64_t second) noexcept {
    std::int64_t head = head_.load(std::memory_order_acquire);
    while (second > head &&
           !head_.compare_exchange_weak(head, second, std::memory_order_acq_rel, std::memory_order_acquire)) {
    }
    head = std::max(head, second);
    std::int64_t done = expired_.load(std::memory_order_acquire);
    if (DISTKIT_LIKELY(done >= head)) return;
    // Expire the buckets of the seconds (done, head]; idempotent, so every recorder may help.
    const std::int64_t first = std::max(done + 1, head - static_cast<std::int64_t>(size_) + 1);
    for (std::int64_t s = first; s <= head; ++s) {
      bucket& b = buckets_[index_of(s)];
      expire(b.calls, calls_, s);
      expire(b.failed, failed_, s);
      expire(b.slow, slow_, s);
    }
    while (done < head && !expired_.compare_exchange_weak(done, head, std::memory_order_acq_rel)) {
    }
  }

  std::uint32_t size_;
  std::unique_ptr<bucket[]> buckets_;
  alignas(64) std::atomic<std::int64_t> head_{no_head};
  std::atomic<std::int64_t> expired_{no_head};
  alignas(64) std::atomic<std::int64_t> calls_{0};
  std::atomic<std::int64_t> failed_{0};
  std::atomic<std::int64_t> slow_{0};
};

static_assert(breaker_window<count_window>);
static_assert(breaker_window<time_window>);

}  // namespace distkit::inline v0
