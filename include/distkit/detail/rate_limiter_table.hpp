// SPDX-License-Identifier: MIT
// distkit/detail/rate_limiter_table.hpp: the per-shard open-addressing table behind `local_store`.
//
// One table per shard, guarded by the shard's spin lock. Keys are 128-bit fingerprints of the
// key bytes (one-to-one for keys of up to 8 bytes; the XXH3-128 of longer keys, where a
// collision between two of n keys has probability ~n^2 / 2^129: for 10^9 keys, below 10^-20),
// stored inline next to the algorithm's state, so a lookup touches one cache line
// and the table never allocates per key. Linear probing with backward-shift deletion keeps no
// tombstones, so evicting a key really frees its slot.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#include "distkit/detail/error.hpp"
#include "distkit/detail/mix.hpp"
#include "distkit/detail/prefetch.hpp"
#include "distkit/detail/spin.hpp"
#include "distkit/hash.hpp"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace distkit::inline v0::detail {

/// A 128-bit key fingerprint; `lo` always has its low bit set, so {0, 0} marks an empty slot.
struct fingerprint {
  std::uint64_t lo = 0;
  std::uint64_t hi = 0;
  [[nodiscard]] auto empty() const noexcept -> bool { return lo == 0; }
  friend auto operator==(const fingerprint&, const fingerprint&) -> bool = default;
};

/// The fingerprint of a key's bytes. Keys of up to 8 bytes (integers, IPv4 addresses, short
/// names) are mapped one-to-one: `hi` is a bijective mix of the bytes and `lo` records the
/// length, so two such keys never share a fingerprint, and it costs a few instructions. Longer
/// keys take the 128-bit XXH3 of their bytes.
[[nodiscard]] inline auto make_fingerprint(const void* data, std::size_t size) noexcept -> fingerprint {
  if (size <= 8) {
    const auto* p = static_cast<const unsigned char*>(data);
    std::uint64_t v = 0;
    if (size == 8) {
      std::memcpy(&v, p, 8);
    } else if (size >= 4) {
      std::uint32_t first = 0;
      std::uint32_t last = 0;
      std::memcpy(&first, p, 4);
      std::memcpy(&last, p + size - 4, 4);
      v = first | (std::uint64_t{last} << (8 * (size - 4)));  // the overlap ORs equal bytes
    } else {
      for (std::size_t i = 0; i < size; ++i) v |= std::uint64_t{p[i]} << (8 * i);
    }
    const std::uint64_t hi = mix64(v);
    return {(hi * 0x9E3779B97F4A7C15ULL) << 5 | std::uint64_t{size} << 1 | 1U, hi};
  }
  const XXH128_hash_t h = XXH3_128bits(data, size);
  return {h.low64 | 1U, h.high64};
}

inline constexpr std::size_t huge_page_bytes = std::size_t{2} << 20;

/// Allocates `bytes` aligned to `alignment`; when the alignment is a huge page, offers the
/// range to transparent huge pages (advice only: failure is harmless).
[[nodiscard]] inline auto allocate_lines(std::size_t bytes, std::size_t alignment) -> void* {
  void* mem = ::operator new(bytes, std::align_val_t{alignment});
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (alignment == huge_page_bytes) ::madvise(mem, bytes, MADV_HUGEPAGE);
#endif
  return mem;
}

/// Process-wide memory for mid-sized tables (64 KiB up to 2 MiB): 2 MiB chunks offered to
/// transparent huge pages, each cut into equal blocks of one size. A store keeps a table per
/// shard, so a million keys over 256 shards are 256 tables of ~200 KiB; from their own small
/// allocations they would cost a TLB entry per 4 KiB page, and measured slower per decision
/// than from huge pages (benchmarks/RESULTS.md, "Rate limiter"). A chunk goes back to the
/// system when its last block is freed.
class table_arena {
 public:
  static constexpr std::size_t min_block = std::size_t{64} << 10;

  /// The arena, never destroyed (a store living in another static may free into it last).
  [[nodiscard]] static auto instance() -> table_arena& {
    static table_arena* arena = new table_arena;
    return *arena;
  }

  /// `bytes` in [min_block, huge_page_bytes): a block of a chunk of blocks of that size.
  [[nodiscard]] auto allocate(std::size_t bytes) -> void* {
    DISTKIT_ASSERT(bytes >= min_block && bytes < huge_page_bytes);
    std::lock_guard<std::mutex> guard(mutex_);
    for (chunk& c : chunks_) {
      if (c.block != bytes || c.used == c.full()) continue;
      const auto i = static_cast<std::size_t>(std::countr_one(c.used));
      c.used |= std::uint32_t{1} << i;
      return c.base + i * bytes;
    }
    chunk c{static_cast<std::byte*>(allocate_lines(huge_page_bytes, huge_page_bytes)), bytes, 1U};
    chunks_.push_back(c);
    return c.base;
  }

  void deallocate(void* p, std::size_t bytes) noexcept {
    std::lock_guard<std::mutex> guard(mutex_);
    const auto* at = static_cast<std::byte*>(p);
    for (std::size_t k = 0; k < chunks_.size(); ++k) {
      chunk& c = chunks_[k];
      if (c.block != bytes || at < c.base || at >= c.base + huge_page_bytes) continue;
      c.used &= ~(std::uint32_t{1} << static_cast<std::size_t>(at - c.base) / bytes);
      if (c.used == 0) {
        ::operator delete(static_cast<void*>(c.base), std::align_val_t{huge_page_bytes});
        chunks_[k] = chunks_.back();
        chunks_.pop_back();
      }
      return;
    }
    DISTKIT_ASSERT(false && "table_arena: block not from this arena");
  }

  /// Chunks held (for tests).
  [[nodiscard]] auto chunks() -> std::size_t {
    std::lock_guard<std::mutex> guard(mutex_);
    return chunks_.size();
  }

 private:
  struct chunk {
    std::byte* base;
    std::size_t block;
    std::uint32_t used;  // bit i: block i handed out (at most 32 blocks of 64 KiB)
    [[nodiscard]] auto full() const noexcept -> std::uint32_t {
      const std::size_t n = huge_page_bytes / block;
      return n >= 32 ? ~std::uint32_t{0} : (std::uint32_t{1} << n) - 1;
    }
  };

  std::mutex mutex_;
  std::vector<chunk> chunks_;
};

/// An array of `n` value-initialised `T`, cache-line aligned, backed by huge pages where they
/// pay: arrays of 2 MiB or more are aligned to 2 MiB and advised; arrays from 64 KiB share
/// 2 MiB chunks of the `table_arena`; smaller ones (a few hundred keys, cache-resident anyway)
/// come from the heap.
template <class T>
class slot_array {
 public:
  explicit slot_array(std::size_t n) : n_(n) {
    const std::size_t b = bytes();
    void* mem = from_arena() ? table_arena::instance().allocate(b) : allocate_lines(b, alignment());
    data_ = static_cast<T*>(mem);
    std::uninitialized_value_construct_n(data_, n_);
  }
  slot_array(slot_array&& other) noexcept : data_(std::exchange(other.data_, nullptr)), n_(other.n_) {}
  auto operator=(slot_array&& other) noexcept -> slot_array& {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      n_ = other.n_;
    }
    return *this;
  }
  slot_array(const slot_array&) = delete;
  auto operator=(const slot_array&) -> slot_array& = delete;
  ~slot_array() { release(); }

  auto operator[](std::size_t i) noexcept -> T& { return data_[i]; }
  auto operator[](std::size_t i) const noexcept -> const T& { return data_[i]; }

 private:
  // Derived from the size rather than stored, so a table's header fits its shard's lock line.
  [[nodiscard]] auto alignment() const noexcept -> std::size_t {
    return n_ * sizeof(T) >= huge_page_bytes ? huge_page_bytes : std::size_t{64};
  }
  [[nodiscard]] auto bytes() const noexcept -> std::size_t {
    return (n_ * sizeof(T) + alignment() - 1) / alignment() * alignment();
  }
  [[nodiscard]] auto from_arena() const noexcept -> bool {
    return bytes() >= table_arena::min_block && bytes() < huge_page_bytes;
  }

  void release() noexcept {
    if (data_ == nullptr) return;
    std::destroy_n(data_, n_);
    if (from_arena()) {
      table_arena::instance().deallocate(data_, bytes());
    } else {
      ::operator delete(static_cast<void*>(data_), std::align_val_t{alignment()});
    }
    data_ = nullptr;
  }

  T* data_ = nullptr;
  std::size_t n_ = 0;
};

/// Where a table's slots are, for prefetches made without its lock: written under the lock at
/// each rehash, read by any thread. Kept on a line of its own (see `local_store::shard`): a line
/// the lock's owner writes on every decision would miss in every other core that reads it.
struct table_address {
  std::atomic<const void*> slots{nullptr};
  std::atomic<std::size_t> mask{0};
};

/// Open-addressing table of `{fingerprint, State}` slots. `Idle(state)` says a state is
/// equivalent to a fresh one, so its key may be dropped. Not thread-safe: the shard locks it.
template <class State>
class probe_table {
 public:
  struct slot {
    fingerprint key;
    State state;
  };

  static constexpr std::size_t min_capacity = 16;
  static constexpr std::size_t slots_per_line = sizeof(slot) >= 64 ? 1 : 64 / sizeof(slot);

  explicit probe_table(table_address& published)
      : slots_(min_capacity), mask_(min_capacity - 1), published_(&published) {
    publish();
  }

  /// Prefetches the cache line holding the home slot of `key` and the line after it (wrapping
  /// at the end of the table) for a later locked lookup: at half load, ~96% of lookups end
  /// within those two lines (~87% at the 3/4 a table grows at). Safe without the lock: it reads the table's `published`
  /// address, and a prefetch of a stale address only wastes a request.
  static void prefetch(const table_address& published, const fingerprint& key) noexcept {
    const auto* base = static_cast<const slot*>(published.slots.load(std::memory_order_relaxed));
    const std::size_t mask = published.mask.load(std::memory_order_relaxed);
    const auto* home = reinterpret_cast<const char*>(base + (key.hi & mask));
    const char* line = home - (reinterpret_cast<std::uintptr_t>(home) & 63);  // its cache line
    const char* next =
        line + 64 < reinterpret_cast<const char*>(base + mask + 1) ? line + 64 : reinterpret_cast<const char*>(base);
    detail::prefetch(line, true);
    detail::prefetch(next, true);
  }

  [[nodiscard]] auto size() const noexcept -> std::size_t { return size_; }
  [[nodiscard]] auto capacity() const noexcept -> std::size_t { return mask_ + 1; }

  /// Finds the slot of `key`, inserting a fresh state if absent. Before the table grows it drops
  /// every idle key (`idle`), so the table is sized by active keys, not by every key ever seen;
  /// each insert also sweeps two slots, dropping keys that have been idle a while (`stale`).
  template <class Idle, class Stale>
  DISTKIT_ALWAYS_INLINE auto find_or_insert(const fingerprint& key, Idle&& idle, Stale&& stale) -> State& {
    // The probe is inlined into every caller; the insert, rare on a busy table, is not.
    std::size_t i = key.hi & mask_;
    for (;;) {
      slot& s = slots_[i];
      if (s.key == key) return s.state;
      if (s.key.empty()) return insert(key, idle, stale);
      i = (i + 1) & mask_;
    }
  }

  /// Examines `steps` slots at the sweep cursor, dropping idle keys; at the end of each lap,
  /// shrinks the table when live keys fill less than 1/16 of it. Returns the keys dropped.
  template <class Idle>
  auto sweep_some(std::size_t steps, Idle&& idle) -> std::size_t {
    std::size_t dropped = 0;
    // The slots the next sweep will read: requested now, in cache by then.
    for (std::size_t ahead = steps; ahead < 2 * steps; ahead += slots_per_line) {
      detail::prefetch(&slots_[(cursor_ + ahead) & mask_], true);
    }
    for (std::size_t n = 0; n < steps; ++n) {
      if (cursor_ > mask_) {
        cursor_ = 0;
        maybe_shrink();
      }
      slot& s = slots_[cursor_];
      if (!s.key.empty() && idle(s.state)) {
        erase_at(cursor_);  // a later key may shift into this slot: look at it again next step
        ++dropped;
      } else {
        ++cursor_;
      }
    }
    return dropped;
  }

  /// Drops every idle key, then shrinks the table if it is mostly empty. O(capacity).
  template <class Idle>
  auto sweep_all(Idle&& idle) -> std::size_t {
    std::size_t dropped = 0;
    // Backward shifts move keys towards lower indexes, and a wrap-around cluster can move a key
    // from slot 0 to the end; a second pass over the start would catch it, but a key missed
    // here is only kept until the next sweep, so one pass is enough.
    for (std::size_t i = 0; i <= mask_;) {
      if (!slots_[i].key.empty() && idle(slots_[i].state)) {
        erase_at(i);
        ++dropped;
      } else {
        ++i;
      }
    }
    cursor_ = 0;
    maybe_shrink();
    return dropped;
  }

  /// Visits every live state (for statistics).
  template <class F>
  void for_each(F&& f) const {
    for (std::size_t i = 0; i <= mask_; ++i) {
      if (!slots_[i].key.empty()) f(slots_[i].state);
    }
  }

 private:
  // Inserts `key`, known absent, with a fresh state: keeps the load factor at most 3/4 (a full
  // sweep first; grows only if the live keys still fill more than half, so the next sweep is
  // at least capacity/4 inserts away), and otherwise retires a little idle state.
  template <class Idle, class Stale>
  [[gnu::noinline]] auto insert(const fingerprint& key, Idle&& idle, Stale&& stale) -> State& {
    if ((size_ + 1) * 4 > capacity() * 3) {
      sweep_all(idle);
      if ((size_ + 1) * 2 > capacity()) rehash(capacity() * 2);
    } else {
      sweep_some(2, stale);  // incremental: every insert also retires a little idle state
    }
    std::size_t i = key.hi & mask_;
    while (!slots_[i].key.empty()) i = (i + 1) & mask_;
    slots_[i].key = key;
    slots_[i].state = State{};
    ++size_;
    return slots_[i].state;
  }

  void erase_at(std::size_t hole) {
    // Backward-shift deletion: pull later members of the probe run into the hole, so lookups
    // never need tombstones.
    std::size_t j = hole;
    for (;;) {
      j = (j + 1) & mask_;
      slot& s = slots_[j];
      if (s.key.empty()) break;
      const std::size_t home = s.key.hi & mask_;
      // Move s into the hole unless its home lies cyclically in (hole, j].
      const bool home_after_hole = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
      if (!home_after_hole) {
        slots_[hole] = std::move(s);
        hole = j;
      }
    }
    slots_[hole].key = fingerprint{};
    slots_[hole].state = State{};
    --size_;
  }

  void maybe_shrink() {
    if (capacity() > min_capacity && size_ * 16 < capacity()) {
      rehash(std::max(min_capacity, std::bit_ceil(size_ * 4 + 1)));
    }
  }

  void rehash(std::size_t new_capacity) {
    DISTKIT_ASSERT(std::has_single_bit(new_capacity) && new_capacity > size_);
    slot_array<slot> fresh(new_capacity);
    const std::size_t new_mask = new_capacity - 1;
    for (std::size_t i = 0; i <= mask_; ++i) {
      slot& s = slots_[i];
      if (s.key.empty()) continue;
      std::size_t j = s.key.hi & new_mask;
      while (!fresh[j].key.empty()) j = (j + 1) & new_mask;
      fresh[j] = std::move(s);
    }
    slots_ = std::move(fresh);
    mask_ = new_mask;
    cursor_ = 0;
    publish();
  }

  void publish() noexcept {
    published_->slots.store(&slots_[0], std::memory_order_relaxed);
    published_->mask.store(mask_, std::memory_order_relaxed);
  }

  slot_array<slot> slots_;
  std::size_t mask_;
  std::size_t size_ = 0;
  std::size_t cursor_ = 0;
  table_address* published_;  // the address for unlocked prefetches, rewritten at each rehash
};

}  // namespace distkit::inline v0::detail
