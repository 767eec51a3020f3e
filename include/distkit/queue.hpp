// SPDX-License-Identifier: MIT
// distkit/queue.hpp: bounded in-process queues: MPMC with one total FIFO order, and SPSC.
#pragma once

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "distkit/detail/error.hpp"
#include "distkit/detail/wait_slot.hpp"
#include "distkit/overflow.hpp"

namespace distkit::inline v0 {

/// A queue's overflow policy (distkit/overflow.hpp): what a blocking `push` does when the
/// queue is full. `blocking_overflow` waits for room (or for the deadline, the stop token or
/// `close()`), `rejecting_overflow` returns `push_result::rejected` at once, and
/// `drop_oldest_overflow` discards the oldest queued item to make room and returns
/// `push_result::dropped_oldest`. `caller_runs_overflow` is the worker pool's alone.
template <class O>
concept queue_overflow_policy = overflow_policy<O> && (O::action != overflow_action::caller_runs);

static_assert(queue_overflow_policy<blocking_overflow>);
static_assert(queue_overflow_policy<rejecting_overflow>);
static_assert(queue_overflow_policy<drop_oldest_overflow>);

/// How a blocking `push` ended.
enum class push_result {
  pushed,          ///< the item is in the queue
  dropped_oldest,  ///< the item is in the queue; the oldest queued item was discarded for it
  rejected,        ///< the queue was full (policy `reject`); the item was not taken
  closed,          ///< the queue is closed; the item was not taken
  timed_out,       ///< the deadline passed while the queue stayed full
  stopped,         ///< stop was requested while the queue stayed full
};

/// An element type the queues hold: destructible and nothrow move-constructible (a slot, once
/// claimed, must be filled, so filling it cannot throw).
template <class T>
concept queue_element = std::is_nothrow_move_constructible_v<T> && std::is_nothrow_destructible_v<T>;

namespace detail {

inline constexpr std::size_t cache_line = 64;

inline auto queue_ring_size(std::string_view component, std::size_t capacity) -> std::size_t {
  constexpr std::size_t max_capacity = std::size_t{1} << 40;
  if (capacity == 0 || capacity > max_capacity) {
    throw_invalid_argument(component, "capacity", "must be in [1, 2^40]", capacity);
  }
  // At least two slots: with one, Vyukov's sequence numbers cannot tell "filled" from "free again".
  std::size_t size = 2;
  while (size < capacity) size <<= 1;
  return size;
}

// One slot of the MPMC ring: a sequence number and room for a T, padded to whole cache lines so
// a producer filling one slot never shares a line with a consumer emptying its neighbour.
template <class T>
struct alignas(cache_line) mpmc_cell {
  std::atomic<std::uint64_t> seq;
  alignas(T) unsigned char storage[sizeof(T)];
  auto value() noexcept -> T* { return std::launder(reinterpret_cast<T*>(storage)); }
};

template <class T>
struct cell_array_deleter {
  std::size_t size;
  void operator()(mpmc_cell<T>* cells) const noexcept {
    std::destroy_n(cells, size);
    ::operator delete[](cells, std::align_val_t{alignof(mpmc_cell<T>)});
  }
};

}  // namespace detail

/// @brief A bounded multi-producer multi-consumer queue with one FIFO order over all producers.
///
/// Every accepted item gets a ticket from one counter; consumers take tickets from another, so
/// items leave in exactly the order they were accepted, across producers (when one push returns
/// before another starts, the first item leaves first). The ring is Vyukov's: each slot carries a
/// sequence number telling producers and consumers whose turn it is; slots and both counters sit
/// on cache lines of their own.
///
/// @tparam T         the element type; models `queue_element` (nothrow move, nothrow destroy).
/// @tparam Overflow  what `push` does when full; models `queue_overflow_policy` (default:
///                   `blocking_overflow`; also `rejecting_overflow`, `drop_oldest_overflow`). `try_push` never waits
///                   and never discards.
///
/// @throws std::invalid_argument if `capacity` is 0 or above 2^40. The capacity is rounded up to a
///         power of two, at least 2 (`capacity()` reports it).
///
/// **Close:** `close()` makes every later push fail with `closed` and wakes every waiter. Items
/// accepted before it stay in the queue and are still popped; `pop` returns `std::nullopt` for
/// `closed` only once all of them are gone.
///
/// **Thread safety:** every member may be called from any thread concurrently.
/// **Progress:** `try_*` never wait for the queue to change, but a consumer whose turn has come
/// waits for the producer that holds that ticket to finish copying its item (a few ns), as in
/// every ring with a total order. Blocking calls spin briefly, then park on a futex.
///
/// @code
/// distkit::mpmc_queue<int> q(1024);
/// (void)q.try_push(1);
/// q.push(2);
/// auto a = q.try_pop();  // 1
/// auto b = q.pop();      // 2
/// @endcode
template <queue_element T, queue_overflow_policy Overflow = blocking_overflow>
class mpmc_queue {
 public:
  using value_type = T;
  using overflow_policy_type = Overflow;

  explicit mpmc_queue(std::size_t capacity)
      : size_(detail::queue_ring_size("mpmc_queue", capacity)),
        mask_(size_ - 1),
        cells_(allocate_cells(size_), detail::cell_array_deleter<T>{size_}) {}

  mpmc_queue(const mpmc_queue&) = delete;
  auto operator=(const mpmc_queue&) -> mpmc_queue& = delete;

  ~mpmc_queue() {
    // Whatever is still queued is destroyed with the queue.
    while (try_pop()) {
    }
  }

  /// Most items the queue holds (the requested capacity rounded up to a power of two).
  [[nodiscard]] auto capacity() const noexcept -> std::size_t { return size_; }

  /// Items queued now: exact when no other thread is pushing or popping, a snapshot otherwise.
  [[nodiscard]] auto size() const noexcept -> std::size_t {
    const std::uint64_t head = head_.load(std::memory_order_acquire);
    const std::uint64_t tail = tail_.load(std::memory_order_acquire) & ~closed_bit;
    return tail > head ? static_cast<std::size_t>(tail - head) : 0;
  }

  [[nodiscard]] auto empty() const noexcept -> bool { return size() == 0; }

  /// Items `push` discarded under `drop_oldest_overflow`.
  [[nodiscard]] auto dropped() const noexcept -> std::uint64_t { return dropped_.load(std::memory_order_relaxed); }

  /// Adds `value` if there is room and the queue is open; never waits, never discards.
  /// On refusal `value` is left untouched.
  [[nodiscard]] auto try_push(T&& value) noexcept -> bool { return push_one(value) == attempt::ok; }
  [[nodiscard]] auto try_push(const T& value) -> bool {
    T copy(value);
    return try_push(std::move(copy));
  }

  /// Adds `value`, applying the overflow policy when full; waits at most until `stop` is requested.
  auto push(T value, std::stop_token stop = {}) -> push_result {
    return push_impl(value, std::optional<std::chrono::steady_clock::time_point>{}, stop);
  }
  /// `push` that waits (policy `block`) at most `timeout`.
  template <class Rep, class Period>
  auto push_for(T value, std::chrono::duration<Rep, Period> timeout, std::stop_token stop = {}) -> push_result {
    return push_impl(value, std::optional{std::chrono::steady_clock::now() + timeout}, stop);
  }
  /// `push` that waits (policy `block`) at most until `deadline`.
  template <class Clock, class Duration>
  auto push_until(T value, std::chrono::time_point<Clock, Duration> deadline, std::stop_token stop = {})
      -> push_result {
    return push_impl(value, std::optional{deadline}, stop);
  }

  /// Takes the oldest item, or `std::nullopt` if the queue is empty right now.
  [[nodiscard]] auto try_pop() noexcept -> std::optional<T> {
    std::optional<T> out;
    (void)pop_one(out);
    return out;
  }

  /// Takes the oldest item, waiting for one. `std::nullopt` means the queue is closed and drained,
  /// or `stop` was requested (see `is_closed()`).
  [[nodiscard]] auto pop(std::stop_token stop = {}) -> std::optional<T> {
    return pop_impl(std::optional<std::chrono::steady_clock::time_point>{}, stop);
  }
  /// `pop` that gives up after `timeout`.
  template <class Rep, class Period>
  [[nodiscard]] auto pop_for(std::chrono::duration<Rep, Period> timeout, std::stop_token stop = {})
      -> std::optional<T> {
    return pop_impl(std::optional{std::chrono::steady_clock::now() + timeout}, stop);
  }
  /// `pop` that gives up at `deadline`.
  template <class Clock, class Duration>
  [[nodiscard]] auto pop_until(std::chrono::time_point<Clock, Duration> deadline, std::stop_token stop = {})
      -> std::optional<T> {
    return pop_impl(std::optional{deadline}, stop);
  }

  /// Moves up to `last - first` items in, as one contiguous run of the FIFO order (no other
  /// producer's item lands between them). Returns how many were taken (a prefix of the range);
  /// never waits.
  template <std::random_access_iterator It>
    requires std::same_as<std::iter_value_t<It>, T>
  [[nodiscard]] auto try_push_bulk(It first, It last) noexcept -> std::size_t {
    const auto wanted = static_cast<std::uint64_t>(last - first);
    if (wanted == 0) return 0;
    std::uint64_t pos = tail_.load(std::memory_order_relaxed);
    std::uint64_t n = 0;
    for (;;) {
      if (pos & closed_bit) return 0;
      // Slots pos .. pos+n-1 are free when each one's sequence equals its ticket. None of them can
      // be taken by someone else unless tail_ moves, which the CAS below would then see.
      n = 0;
      while (n < wanted && n < size_ && cells_[(pos + n) & mask_].seq.load(std::memory_order_acquire) == pos + n) ++n;
      if (n == 0) {
        const std::uint64_t seq = cells_[pos & mask_].seq.load(std::memory_order_acquire);
        if (static_cast<std::int64_t>(seq - pos) < 0) return 0;  // full
        pos = tail_.load(std::memory_order_relaxed);
        continue;
      }
      if (tail_.compare_exchange_weak(pos, pos + n, std::memory_order_relaxed)) break;
    }
    for (std::uint64_t i = 0; i < n; ++i) {
      auto& cell = cells_[(pos + i) & mask_];
      ::new (static_cast<void*>(cell.storage)) T(std::move(first[static_cast<std::iter_difference_t<It>>(i)]));
      cell.seq.store(pos + i + 1, std::memory_order_seq_cst);
    }
    not_empty_.notify();
    return static_cast<std::size_t>(n);
  }

  /// Takes up to `max` of the oldest items (one contiguous run of the FIFO order), writing them
  /// to `out`; returns how many. Never waits.
  template <std::output_iterator<T> Out>
  [[nodiscard]] auto try_pop_bulk(Out out, std::size_t max) noexcept -> std::size_t {
    if (max == 0) return 0;
    std::uint64_t pos = head_.load(std::memory_order_relaxed);
    std::uint64_t n = 0;
    for (;;) {
      n = 0;
      while (n < max && n < size_ && cells_[(pos + n) & mask_].seq.load(std::memory_order_acquire) == pos + n + 1) {
        ++n;
      }
      if (n == 0) {
        const std::uint64_t seq = cells_[pos & mask_].seq.load(std::memory_order_acquire);
        if (static_cast<std::int64_t>(seq - (pos + 1)) < 0) return 0;  // empty
        pos = head_.load(std::memory_order_relaxed);
        continue;
      }
      if (head_.compare_exchange_weak(pos, pos + n, std::memory_order_relaxed)) break;
    }
    for (std::uint64_t i = 0; i < n; ++i) {
      auto& cell = cells_[(pos + i) & mask_];
      *out = std::move(*cell.value());
      ++out;
      std::destroy_at(cell.value());
      cell.seq.store(pos + i + size_, std::memory_order_seq_cst);
    }
    not_full_.notify();
    return static_cast<std::size_t>(n);
  }

  /// Refuses every later push and wakes every waiter. Items already accepted stay poppable.
  /// Idempotent.
  void close() noexcept {
    tail_.fetch_or(closed_bit, std::memory_order_seq_cst);
    not_empty_.wake_all();
    not_full_.wake_all();
  }

  [[nodiscard]] auto is_closed() const noexcept -> bool {
    return (tail_.load(std::memory_order_acquire) & closed_bit) != 0;
  }

  /// True once the queue is closed and every item it accepted has been taken by a consumer.
  [[nodiscard]] auto drained() const noexcept -> bool { return drained_at(head_.load(std::memory_order_acquire)); }

 private:
  // The tail's top bit marks the queue closed, so closing and claiming a ticket are ordered by the
  // one counter: no push can slip in after a consumer has seen "closed and drained".
  static constexpr std::uint64_t closed_bit = std::uint64_t{1} << 63;

  enum class attempt { ok, full, empty, closed };

  static auto allocate_cells(std::size_t n) -> detail::mpmc_cell<T>* {
    auto* raw = static_cast<detail::mpmc_cell<T>*>(
        ::operator new[](n * sizeof(detail::mpmc_cell<T>), std::align_val_t{alignof(detail::mpmc_cell<T>)}));
    for (std::size_t i = 0; i < n; ++i) {
      auto* cell = ::new (static_cast<void*>(raw + i)) detail::mpmc_cell<T>;
      cell->seq.store(i, std::memory_order_relaxed);
    }
    return raw;
  }

  // Moves from `value` only when it succeeds.
  auto push_one(T& value) noexcept -> attempt {
    std::uint64_t pos = tail_.load(std::memory_order_relaxed);
    detail::mpmc_cell<T>* cell = nullptr;
    for (;;) {
      if (pos & closed_bit) return attempt::closed;
      cell = &cells_[pos & mask_];
      const std::uint64_t seq = cell->seq.load(std::memory_order_acquire);
      const auto diff = static_cast<std::int64_t>(seq - pos);
      if (diff == 0) {
        if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
      } else if (diff < 0) {
        return attempt::full;
      } else {
        pos = tail_.load(std::memory_order_relaxed);
      }
    }
    ::new (static_cast<void*>(cell->storage)) T(std::move(value));
    cell->seq.store(pos + 1, std::memory_order_seq_cst);  // seq_cst: ordered before notify's read
    not_empty_.notify();
    return attempt::ok;
  }

  // Closed, and no ticket before the final tail is still to be taken.
  auto drained_at(std::uint64_t pos) const noexcept -> bool {
    const std::uint64_t tail = tail_.load(std::memory_order_acquire);
    return (tail & closed_bit) != 0 && (tail & ~closed_bit) <= pos;
  }

  auto pop_one(std::optional<T>& out) noexcept -> attempt {
    std::uint64_t pos = head_.load(std::memory_order_relaxed);
    detail::mpmc_cell<T>* cell = nullptr;
    for (;;) {
      cell = &cells_[pos & mask_];
      const std::uint64_t seq = cell->seq.load(std::memory_order_acquire);
      const auto diff = static_cast<std::int64_t>(seq - (pos + 1));
      if (diff == 0) {
        if (head_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
      } else if (diff < 0) {
        // Empty at this ticket. Closed and drained only if no ticket before the final tail is
        // still unfilled (a producer that claimed one will fill it).
        return drained_at(pos) ? attempt::closed : attempt::empty;
      } else {
        pos = head_.load(std::memory_order_relaxed);
      }
    }
    out.emplace(std::move(*cell->value()));
    std::destroy_at(cell->value());
    cell->seq.store(pos + size_, std::memory_order_seq_cst);
    not_full_.notify();
    return attempt::ok;
  }

  template <class Deadline>
  auto push_impl(T& value, const std::optional<Deadline>& deadline, const std::stop_token& stop) -> push_result {
    bool dropped = false;
    if constexpr (Overflow::action == overflow_action::block) {
      const auto r = not_full_.wait(
          [&]() -> std::optional<detail::wait_outcome> {
            switch (push_one(value)) {
              case attempt::ok:
                return detail::wait_outcome::done;
              case attempt::closed:
                return detail::wait_outcome::closed;
              default:
                return std::nullopt;
            }
          },
          deadline, stop);
      switch (r) {
        case detail::wait_outcome::done:
          return push_result::pushed;
        case detail::wait_outcome::closed:
          return push_result::closed;
        case detail::wait_outcome::timed_out:
          return push_result::timed_out;
        case detail::wait_outcome::stopped:
          return push_result::stopped;
      }
      return push_result::stopped;
    } else {
      for (;;) {
        switch (push_one(value)) {
          case attempt::ok:
            return dropped ? push_result::dropped_oldest : push_result::pushed;
          case attempt::closed:
            return push_result::closed;
          default:
            break;
        }
        if constexpr (Overflow::action == overflow_action::reject) {
          return push_result::rejected;
        } else {
          std::optional<T> victim;
          if (pop_one(victim) == attempt::ok) {
            dropped = true;
            dropped_.fetch_add(1, std::memory_order_relaxed);
          }
        }
      }
    }
  }

  template <class Deadline>
  auto pop_impl(const std::optional<Deadline>& deadline, const std::stop_token& stop) -> std::optional<T> {
    std::optional<T> out;
    (void)not_empty_.wait(
        [&]() -> std::optional<detail::wait_outcome> {
          switch (pop_one(out)) {
            case attempt::ok:
              return detail::wait_outcome::done;
            case attempt::closed:
              return detail::wait_outcome::closed;
            default:
              return std::nullopt;
          }
        },
        deadline, stop);
    return out;
  }

  // Read-mostly line: ring geometry.
  alignas(detail::cache_line) std::size_t size_;
  std::size_t mask_;
  std::unique_ptr<detail::mpmc_cell<T>[], detail::cell_array_deleter<T>> cells_;
  std::atomic<std::uint64_t> dropped_{0};
  alignas(detail::cache_line) std::atomic<std::uint64_t> tail_{0};
  alignas(detail::cache_line) std::atomic<std::uint64_t> head_{0};
  detail::wait_slot not_empty_;  // each wait_slot aligns itself to a line of its own
  detail::wait_slot not_full_;
};

/// @brief A bounded single-producer single-consumer queue (a Lamport ring with cached indices).
///
/// One thread pushes and one thread pops at a time (two different threads, or the same one);
/// `close()`, `size()` and `is_closed()` may be called from anywhere.
///
/// @tparam T         models `queue_element`.
/// @tparam Overflow  `blocking_overflow` (default) or `rejecting_overflow`. `drop_oldest`
///                   is refused at compile time: discarding needs the producer to pop, and the
///                   consumer may be popping at that moment.
///
/// @throws std::invalid_argument if `capacity` is 0 or above 2^40 (rounded up to a power of two, at
///         least 2).
///
/// **Close:** as `mpmc_queue`: later pushes fail, waiters wake, accepted items are still popped.
/// **Thread safety:** one producer thread and one consumer thread at a time.
///
/// @code
/// distkit::spsc_queue<int> q(256);
/// std::jthread producer([&] { for (int i = 0; i < 1000; ++i) q.push(i); q.close(); });
/// while (auto v = q.pop()) { /* 0, 1, 2, ... */ }
/// @endcode
template <queue_element T, queue_overflow_policy Overflow = blocking_overflow>
class spsc_queue {
  static_assert(Overflow::action != overflow_action::drop_oldest,
                "distkit::spsc_queue: drop_oldest needs the producer to pop; use mpmc_queue for it");

 public:
  using value_type = T;
  using overflow_policy_type = Overflow;

  explicit spsc_queue(std::size_t capacity)
      : size_(detail::queue_ring_size("spsc_queue", capacity)),
        mask_(size_ - 1),
        slots_(static_cast<slot*>(::operator new[](size_ * sizeof(slot), std::align_val_t{alignof(slot)}))) {}

  spsc_queue(const spsc_queue&) = delete;
  auto operator=(const spsc_queue&) -> spsc_queue& = delete;

  ~spsc_queue() {
    while (try_pop()) {
    }
    ::operator delete[](slots_, std::align_val_t{alignof(slot)});
  }

  [[nodiscard]] auto capacity() const noexcept -> std::size_t { return size_; }
  [[nodiscard]] auto size() const noexcept -> std::size_t {
    const std::uint64_t head = head_.load(std::memory_order_acquire);
    const std::uint64_t tail = tail_.load(std::memory_order_acquire) & ~closed_bit;
    return tail > head ? static_cast<std::size_t>(tail - head) : 0;
  }
  [[nodiscard]] auto empty() const noexcept -> bool { return size() == 0; }

  [[nodiscard]] auto try_push(T&& value) noexcept -> bool { return push_one(value) == attempt::ok; }
  [[nodiscard]] auto try_push(const T& value) -> bool {
    T copy(value);
    return try_push(std::move(copy));
  }

  auto push(T value, std::stop_token stop = {}) -> push_result {
    return push_impl(value, std::optional<std::chrono::steady_clock::time_point>{}, stop);
  }
  template <class Rep, class Period>
  auto push_for(T value, std::chrono::duration<Rep, Period> timeout, std::stop_token stop = {}) -> push_result {
    return push_impl(value, std::optional{std::chrono::steady_clock::now() + timeout}, stop);
  }
  template <class Clock, class Duration>
  auto push_until(T value, std::chrono::time_point<Clock, Duration> deadline, std::stop_token stop = {})
      -> push_result {
    return push_impl(value, std::optional{deadline}, stop);
  }

  [[nodiscard]] auto try_pop() noexcept -> std::optional<T> {
    std::optional<T> out;
    (void)pop_one(out);
    return out;
  }
  [[nodiscard]] auto pop(std::stop_token stop = {}) -> std::optional<T> {
    return pop_impl(std::optional<std::chrono::steady_clock::time_point>{}, stop);
  }
  template <class Rep, class Period>
  [[nodiscard]] auto pop_for(std::chrono::duration<Rep, Period> timeout, std::stop_token stop = {})
      -> std::optional<T> {
    return pop_impl(std::optional{std::chrono::steady_clock::now() + timeout}, stop);
  }
  template <class Clock, class Duration>
  [[nodiscard]] auto pop_until(std::chrono::time_point<Clock, Duration> deadline, std::stop_token stop = {})
      -> std::optional<T> {
    return pop_impl(std::optional{deadline}, stop);
  }

  /// Moves in as many of `[first, last)` as fit (a prefix); returns how many. Never waits.
  template <std::random_access_iterator It>
    requires std::same_as<std::iter_value_t<It>, T>
  [[nodiscard]] auto try_push_bulk(It first, It last) noexcept -> std::size_t {
    const std::uint64_t tail = tail_.load(std::memory_order_relaxed);
    if (tail & closed_bit) return 0;
    std::uint64_t room = size_ - (tail - head_cache_);
    if (room < static_cast<std::uint64_t>(last - first)) {
      head_cache_ = head_.load(std::memory_order_acquire);
      room = size_ - (tail - head_cache_);
    }
    const std::uint64_t n = std::min<std::uint64_t>(room, static_cast<std::uint64_t>(last - first));
    if (n == 0) return 0;
    for (std::uint64_t i = 0; i < n; ++i) {
      ::new (static_cast<void*>(slots_[(tail + i) & mask_].storage))
          T(std::move(first[static_cast<std::iter_difference_t<It>>(i)]));
    }
    if (!publish(tail, n)) {
      // close() won the race: take the items back out, in order.
      for (std::uint64_t i = 0; i < n; ++i) {
        T* v = slots_[(tail + i) & mask_].value();
        first[static_cast<std::iter_difference_t<It>>(i)] = std::move(*v);
        std::destroy_at(v);
      }
      return 0;
    }
    return static_cast<std::size_t>(n);
  }

  /// Takes up to `max` of the oldest items into `out`; returns how many. Never waits.
  template <std::output_iterator<T> Out>
  [[nodiscard]] auto try_pop_bulk(Out out, std::size_t max) noexcept -> std::size_t {
    const std::uint64_t head = head_.load(std::memory_order_relaxed);
    std::uint64_t avail = tail_cache_ - head;
    if (avail < max) {
      tail_cache_ = tail_.load(std::memory_order_acquire) & ~closed_bit;
      avail = tail_cache_ - head;
    }
    const std::uint64_t n = std::min<std::uint64_t>(avail, max);
    for (std::uint64_t i = 0; i < n; ++i) {
      T* v = slots_[(head + i) & mask_].value();
      *out = std::move(*v);
      ++out;
      std::destroy_at(v);
    }
    if (n != 0) {
      head_.store(head + n, std::memory_order_seq_cst);
      not_full_.notify();
    }
    return static_cast<std::size_t>(n);
  }

  void close() noexcept {
    tail_.fetch_or(closed_bit, std::memory_order_seq_cst);
    not_empty_.wake_all();
    not_full_.wake_all();
  }
  [[nodiscard]] auto is_closed() const noexcept -> bool {
    return (tail_.load(std::memory_order_acquire) & closed_bit) != 0;
  }

  /// True once the queue is closed and every item it accepted has been popped.
  [[nodiscard]] auto drained() const noexcept -> bool {
    const std::uint64_t tail = tail_.load(std::memory_order_acquire);
    return (tail & closed_bit) != 0 && (tail & ~closed_bit) == head_.load(std::memory_order_acquire);
  }

 private:
  static constexpr std::uint64_t closed_bit = std::uint64_t{1} << 63;
  enum class attempt { ok, full, empty, closed };

  struct slot {
    alignas(T) unsigned char storage[sizeof(T)];
    auto value() noexcept -> T* { return std::launder(reinterpret_cast<T*>(storage)); }
  };

  // The tail moves by CAS rather than a plain store, so a close() between filling a slot and
  // publishing it makes the push fail instead of slipping in after "closed and drained".
  auto publish(std::uint64_t tail, std::uint64_t n) noexcept -> bool {
    std::uint64_t expected = tail;
    if (!tail_.compare_exchange_strong(expected, tail + n, std::memory_order_seq_cst)) return false;
    not_empty_.notify();
    return true;
  }

  auto push_one(T& value) noexcept -> attempt {
    const std::uint64_t tail = tail_.load(std::memory_order_relaxed);
    if (tail & closed_bit) return attempt::closed;
    if (tail - head_cache_ >= size_) {
      head_cache_ = head_.load(std::memory_order_acquire);
      if (tail - head_cache_ >= size_) return attempt::full;
    }
    T* v = ::new (static_cast<void*>(slots_[tail & mask_].storage)) T(std::move(value));
    if (!publish(tail, 1)) {
      value = std::move(*v);
      std::destroy_at(v);
      return attempt::closed;
    }
    return attempt::ok;
  }

  auto pop_one(std::optional<T>& out) noexcept -> attempt {
    const std::uint64_t head = head_.load(std::memory_order_relaxed);
    if (head == tail_cache_) {
      const std::uint64_t tail = tail_.load(std::memory_order_acquire);
      tail_cache_ = tail & ~closed_bit;
      if (head == tail_cache_) return (tail & closed_bit) ? attempt::closed : attempt::empty;
    }
    T* v = slots_[head & mask_].value();
    out.emplace(std::move(*v));
    std::destroy_at(v);
    head_.store(head + 1, std::memory_order_seq_cst);
    not_full_.notify();
    return attempt::ok;
  }

  template <class Deadline>
  auto push_impl(T& value, const std::optional<Deadline>& deadline, const std::stop_token& stop) -> push_result {
    if constexpr (Overflow::action == overflow_action::reject) {
      switch (push_one(value)) {
        case attempt::ok:
          return push_result::pushed;
        case attempt::closed:
          return push_result::closed;
        default:
          return push_result::rejected;
      }
    } else {
      const auto r = not_full_.wait(
          [&]() -> std::optional<detail::wait_outcome> {
            switch (push_one(value)) {
              case attempt::ok:
                return detail::wait_outcome::done;
              case attempt::closed:
                return detail::wait_outcome::closed;
              default:
                return std::nullopt;
            }
          },
          deadline, stop);
      switch (r) {
        case detail::wait_outcome::done:
          return push_result::pushed;
        case detail::wait_outcome::closed:
          return push_result::closed;
        case detail::wait_outcome::timed_out:
          return push_result::timed_out;
        case detail::wait_outcome::stopped:
          return push_result::stopped;
      }
      return push_result::stopped;
    }
  }

  template <class Deadline>
  auto pop_impl(const std::optional<Deadline>& deadline, const std::stop_token& stop) -> std::optional<T> {
    std::optional<T> out;
    (void)not_empty_.wait(
        [&]() -> std::optional<detail::wait_outcome> {
          switch (pop_one(out)) {
            case attempt::ok:
              return detail::wait_outcome::done;
            case attempt::closed:
              return detail::wait_outcome::closed;
            default:
              return std::nullopt;
          }
        },
        deadline, stop);
    return out;
  }

  alignas(detail::cache_line) std::size_t size_;
  std::size_t mask_;
  slot* slots_;
  // Producer line: the tail and the producer's last view of the head.
  alignas(detail::cache_line) std::atomic<std::uint64_t> tail_{0};
  std::uint64_t head_cache_ = 0;
  // Consumer line: the head and the consumer's last view of the tail.
  alignas(detail::cache_line) std::atomic<std::uint64_t> head_{0};
  std::uint64_t tail_cache_ = 0;
  detail::wait_slot not_empty_;
  detail::wait_slot not_full_;
};

}  // namespace distkit::inline v0
