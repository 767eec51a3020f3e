// SPDX-License-Identifier: MIT
// distkit/detail/snapshot_cell.hpp: an immutable value published by pointer, read without locks,
// reclaimed once no reader can still hold it (two-parity reader counters, one line per thread).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

#include "distkit/detail/error.hpp"

namespace distkit::inline v0::detail {

// A small per-thread number choosing the thread's reader slot (constant-initialised TLS).
inline auto snapshot_thread_index() noexcept -> unsigned {
  static std::atomic<unsigned> next{0};
  static thread_local unsigned index = 0;
  if (DISTKIT_UNLIKELY(index == 0)) index = next.fetch_add(1, std::memory_order_relaxed) + 1;
  return index;
}

// Readers announce themselves in a counter of the current epoch's parity, in a slot that is
// usually theirs alone (threads map to 64 slots); a writer publishes the new value, flips the
// epoch and waits until the old parity's counters drain, then frees the old value.
//
// Why it is safe: a reader increments its counter and then re-reads the epoch (both seq_cst).
// Either the increment comes before the writer's scan in the single total order (the writer
// waits for it), or the re-read comes after the flip (the reader sees a new epoch and retries,
// and a reader that passes the check after the flip loads the new pointer, stored before it).
//
// Readers never wait (a retry happens only when a flip lands between two of its loads); writers
// serialise on a mutex and wait only for reads already in progress, which take nanoseconds.
// Each slot also carries a random-number state for the readers that use it.
template <class T>
class snapshot_cell {
 public:
  static constexpr std::size_t slot_count = 64;

  struct alignas(64) slot {
    std::atomic<std::int64_t> readers[2] = {0, 0};
    std::atomic<std::uint64_t> random{0};
  };

  class guard {
   public:
    guard(const guard&) = delete;
    auto operator=(const guard&) -> guard& = delete;
    ~guard() { slot_->readers[parity_].fetch_sub(1, std::memory_order_release); }
    [[nodiscard]] auto get() const noexcept -> const T* { return value_; }
    auto operator->() const noexcept -> const T* { return value_; }
    auto operator*() const noexcept -> const T& { return *value_; }
    // A 64-bit random number (splitmix64 over the slot's counter). The counter is advanced by a
    // plain load and store, not a locked add: two threads sharing a slot may draw the same number
    // now and then, which costs a random choice nothing, while a locked add per draw cost more
    // than the rest of a two-choice pick.
    [[nodiscard]] auto next_random() const noexcept -> std::uint64_t {
      std::uint64_t z = slot_->random.load(std::memory_order_relaxed) + 0x9E3779B97F4A7C15ULL;
      slot_->random.store(z, std::memory_order_relaxed);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
      return z ^ (z >> 31);
    }

   private:
    friend class snapshot_cell;
    guard(slot* s, unsigned parity, const T* value) noexcept : slot_(s), parity_(parity), value_(value) {}
    slot* slot_;
    unsigned parity_;
    const T* value_;
  };

  snapshot_cell(std::unique_ptr<const T> initial, std::uint64_t seed) : current_(initial.release()) {
    for (std::size_t i = 0; i < slot_count; ++i) {
      slots_[i].random.store(seed + i * 0xD1B54A32D192ED03ULL, std::memory_order_relaxed);
    }
  }
  snapshot_cell(const snapshot_cell&) = delete;
  auto operator=(const snapshot_cell&) -> snapshot_cell& = delete;
  ~snapshot_cell() { delete current_.load(std::memory_order_acquire); }

  // Lock-free: announces the reader, then loads the current value.
  [[nodiscard]] auto read() const noexcept -> guard {
    slot& s = slots_[snapshot_thread_index() % slot_count];
    for (;;) {
      const std::uint64_t epoch = epoch_.load(std::memory_order_seq_cst);
      const unsigned parity = static_cast<unsigned>(epoch & 1U);
      s.readers[parity].fetch_add(1, std::memory_order_seq_cst);
      if (DISTKIT_LIKELY(epoch_.load(std::memory_order_seq_cst) == epoch)) {
        return guard(&s, parity, current_.load(std::memory_order_acquire));
      }
      s.readers[parity].fetch_sub(1, std::memory_order_release);
    }
  }

  // Publishes `next` and frees the value it replaces once no reader holds it. Callers hold
  // `write_mutex()` when they derive `next` from the current value.
  void publish(std::unique_ptr<const T> next) {
    const T* previous = current_.exchange(next.release(), std::memory_order_seq_cst);
    const std::uint64_t epoch = epoch_.fetch_add(1, std::memory_order_seq_cst);
    const unsigned parity = static_cast<unsigned>(epoch & 1U);
    for (;;) {
      std::int64_t readers = 0;
      for (const slot& s : slots_) readers += s.readers[parity].load(std::memory_order_acquire);
      if (readers == 0) break;
      std::this_thread::yield();
    }
    delete previous;
  }

  // The current value, for a writer holding `write_mutex()` (no reader registration needed:
  // only writers free values, and they are serialised by the mutex).
  [[nodiscard]] auto current_for_writer() const noexcept -> const T* {
    return current_.load(std::memory_order_acquire);
  }
  [[nodiscard]] auto write_mutex() noexcept -> std::mutex& { return write_mutex_; }

 private:
  std::atomic<const T*> current_;
  alignas(64) std::atomic<std::uint64_t> epoch_{0};
  mutable std::array<slot, slot_count> slots_{};
  std::mutex write_mutex_;
};

}  // namespace distkit::inline v0::detail
