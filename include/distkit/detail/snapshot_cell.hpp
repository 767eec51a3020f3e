// SPDX-License-Identifier: MIT
// distkit/detail/snapshot_cell.hpp: an immutable value published by pointer, read without locks,
// reclaimed once no reader can still hold it (two-parity reader counters, one line per thread).
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

#include "distkit/detail/error.hpp"

namespace distkit::inline v0::detail {

// Reader slots. A thread owns one of 64 slot numbers while it lives: it claims a free one from a
// bitmap on its first read and gives it back when it exits. Beyond 64 live threads, a thread
// shares a slot's second pair of counters with others. A thread's id is 1 + the number of the
// slot it owns, or `snapshot_shared_id + k` for shared slot k; 0 until its first read.
inline constexpr unsigned snapshot_slot_count = 64;
inline constexpr unsigned snapshot_shared_id = 1U << 16;

inline auto snapshot_owned_slots() noexcept -> std::atomic<std::uint64_t>& {
  static std::atomic<std::uint64_t> bits{0};
  return bits;
}

// The thread's id (constant-initialised: reading it costs no guard).
inline auto snapshot_reader_id() noexcept -> unsigned& {
  static thread_local unsigned id = 0;
  return id;
}

// Gives the thread's slot back when it exits; a read after that (from another thread-local's
// destructor) uses the shared counters of the same slot.
struct snapshot_slot_claim {
  unsigned slot = snapshot_slot_count;
  snapshot_slot_claim() = default;
  snapshot_slot_claim(const snapshot_slot_claim&) = delete;
  auto operator=(const snapshot_slot_claim&) -> snapshot_slot_claim& = delete;
  ~snapshot_slot_claim() {
    if (slot < snapshot_slot_count) {
      snapshot_reader_id() = snapshot_shared_id + slot;
      snapshot_owned_slots().fetch_and(~(std::uint64_t{1} << slot), std::memory_order_release);
    }
  }
};

DISTKIT_COLD inline auto snapshot_claim_slot() noexcept -> unsigned {
  static std::atomic<unsigned> next_shared{0};
  static thread_local snapshot_slot_claim claim;
  std::atomic<std::uint64_t>& bits = snapshot_owned_slots();
  std::uint64_t cur = bits.load(std::memory_order_relaxed);
  while (cur != ~std::uint64_t{0}) {
    const auto i = static_cast<unsigned>(std::countr_one(cur));
    if (bits.compare_exchange_weak(cur, cur | (std::uint64_t{1} << i), std::memory_order_acquire)) {
      claim.slot = i;
      return snapshot_reader_id() = 1 + i;
    }
  }
  return snapshot_reader_id() =
             snapshot_shared_id + next_shared.fetch_add(1, std::memory_order_relaxed) % snapshot_slot_count;
}

// Readers announce themselves in a counter of the current epoch's parity, in their own slot; a
// writer publishes the new value, flips the epoch and waits until the old parity's counters
// drain, then frees the old value.
//
// Why it is safe: a reader increments its counter and then re-reads the epoch (both seq_cst).
// Either the increment comes before the writer's scan in the single total order (the writer
// waits for it), or the re-read comes after the flip (the reader sees a new epoch and retries,
// and a reader that passes the check after the flip loads the new pointer, stored before it).
// A reader leaves with a release store of its counter's previous value when it owns the slot
// (only its own thread writes that counter: no locked instruction), with a locked subtract on
// a shared slot's counter.
//
// Readers never wait (a retry happens only when a flip lands between two of its loads); writers
// serialise on a mutex and wait only for reads already in progress, which take nanoseconds.
// Each slot also carries a random-number state for the readers that use it.
template <class T>
class snapshot_cell {
 public:
  static constexpr std::size_t slot_count = snapshot_slot_count;

  struct alignas(64) slot {
    std::atomic<std::int64_t> owned[2] = {0, 0};   // written by the slot's owner only
    std::atomic<std::int64_t> shared[2] = {0, 0};  // threads beyond the 64 owners
    std::atomic<std::uint64_t> random{0};
  };

  class guard {
   public:
    guard(const guard&) = delete;
    auto operator=(const guard&) -> guard& = delete;
    ~guard() {
      if (DISTKIT_LIKELY(owned_)) {
        counter_->store(counter_->load(std::memory_order_relaxed) - 1, std::memory_order_release);
      } else {
        counter_->fetch_sub(1, std::memory_order_release);
      }
    }
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
    guard(slot* s, std::atomic<std::int64_t>* counter, bool owned, const T* value) noexcept
        : slot_(s), counter_(counter), owned_(owned), value_(value) {}
    slot* slot_;
    std::atomic<std::int64_t>* counter_;
    bool owned_;
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
    unsigned id = snapshot_reader_id();
    if (DISTKIT_UNLIKELY(id == 0)) id = snapshot_claim_slot();
    const bool owned = id < snapshot_shared_id;
    slot& s = slots_[owned ? id - 1 : id - snapshot_shared_id];
    std::atomic<std::int64_t>* counters = owned ? s.owned : s.shared;
    for (;;) {
      const std::uint64_t epoch = epoch_.load(std::memory_order_seq_cst);
      std::atomic<std::int64_t>* counter = &counters[epoch & 1U];
      counter->fetch_add(1, std::memory_order_seq_cst);
      if (DISTKIT_LIKELY(epoch_.load(std::memory_order_seq_cst) == epoch)) {
        return guard(&s, counter, owned, current_.load(std::memory_order_acquire));
      }
      counter->fetch_sub(1, std::memory_order_release);
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
      for (const slot& s : slots_) {
        readers += s.owned[parity].load(std::memory_order_acquire) + s.shared[parity].load(std::memory_order_acquire);
      }
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

  // Readers counted now, over both parities (for tests: 0 once every read has ended).
  [[nodiscard]] auto readers() const noexcept -> std::int64_t {
    std::int64_t n = 0;
    for (const slot& s : slots_) {
      for (unsigned p = 0; p < 2; ++p) {
        n += s.owned[p].load(std::memory_order_acquire) + s.shared[p].load(std::memory_order_acquire);
      }
    }
    return n;
  }

 private:
  std::atomic<const T*> current_;
  alignas(64) std::atomic<std::uint64_t> epoch_{0};
  mutable std::array<slot, slot_count> slots_{};
  std::mutex write_mutex_;
};

}  // namespace distkit::inline v0::detail
