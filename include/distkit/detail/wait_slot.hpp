// SPDX-License-Identifier: MIT
// distkit/detail/wait_slot.hpp: a futex-backed parking spot with deadlines and stop tokens.
//
// C++20's atomic::wait has neither a timeout nor a stop token, so the queues park on a 32-bit
// epoch through the futex system call directly (the call atomic::wait itself makes on Linux).
// Elsewhere a waiter polls with a short, growing sleep instead.
#pragma once

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <optional>
#include <stop_token>
#include <thread>

#include "distkit/detail/spin.hpp"

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#endif

namespace distkit::inline v0::detail {

/// How a wait for a queue operation ended.
enum class wait_outcome { done, closed, timed_out, stopped };

/// Threads waiting for one kind of event (an item arrived, a slot freed up). The side that makes
/// the event happen calls `notify()` after publishing it with a seq_cst store or RMW; a waiter
/// registers, re-checks, then parks on `epoch_`. Both sides order their write before their read
/// through the seq_cst total order, so a wake-up is never missed (Dekker's pattern).
class wait_slot {
 public:
  /// Wakes every parked waiter if there is any. Call after a seq_cst publication.
  void notify() noexcept {
    if (waiters_.load(std::memory_order_seq_cst) != 0) wake_all();
  }

  /// Wakes every waiter unconditionally (close, stop requests).
  void wake_all() noexcept {
    epoch_.fetch_add(1, std::memory_order_seq_cst);
#if defined(__linux__)
    ::syscall(SYS_futex, futex_word(), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
#else
    epoch_.notify_all();
#endif
  }

  /// Calls `attempt()` until it returns something other than `std::nullopt`, parking between
  /// tries. `attempt` returns `wait_outcome::done` or `wait_outcome::closed` to finish.
  template <class Attempt, class Deadline = std::chrono::steady_clock::time_point>
  auto wait(Attempt&& attempt, const std::optional<Deadline>& deadline, const std::stop_token& stop) -> wait_outcome {
    // A short spin first: a hand-off between running threads completes in well under a
    // microsecond, far less than a park and wake-up cost.
    for (int i = 0; i < spin_rounds; ++i) {
      if (auto r = attempt()) return *r;
      if (stop.stop_requested()) return wait_outcome::stopped;
      cpu_relax();
    }
    struct waker {
      wait_slot* slot;
      void operator()() const noexcept { slot->wake_all(); }
    };
    std::optional<std::stop_callback<waker>> on_stop;
    if (stop.stop_possible()) on_stop.emplace(stop, waker{this});
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    struct unregister {
      std::atomic<std::uint32_t>& waiters;
      ~unregister() { waiters.fetch_sub(1, std::memory_order_seq_cst); }
    } guard{waiters_};
    std::chrono::nanoseconds backoff{1000};
    for (;;) {
      const std::uint32_t seen = epoch_.load(std::memory_order_seq_cst);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (auto r = attempt()) return *r;
      if (stop.stop_requested()) return wait_outcome::stopped;
      std::optional<std::chrono::nanoseconds> left;
      if (deadline) {
        const auto now = Deadline::clock::now();
        if (now >= *deadline) return wait_outcome::timed_out;
        left = std::chrono::duration_cast<std::chrono::nanoseconds>(*deadline - now);
      }
      park(seen, left, backoff);
    }
  }

 private:
  static constexpr int spin_rounds = 128;

  auto futex_word() noexcept -> std::uint32_t* {
    static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
    return reinterpret_cast<std::uint32_t*>(&epoch_);  // what atomic::wait itself hands the kernel
  }

  void park(std::uint32_t seen, std::optional<std::chrono::nanoseconds> left,
            [[maybe_unused]] std::chrono::nanoseconds& backoff) noexcept {
#if defined(__linux__)
    if (left) {
      timespec ts{};
      ts.tv_sec = static_cast<time_t>(left->count() / 1'000'000'000);
      ts.tv_nsec = static_cast<long>(left->count() % 1'000'000'000);
      ::syscall(SYS_futex, futex_word(), FUTEX_WAIT_PRIVATE, seen, &ts, nullptr, 0);
    } else {
      ::syscall(SYS_futex, futex_word(), FUTEX_WAIT_PRIVATE, seen, nullptr, nullptr, 0);
    }
#else
    if (!left) {
      epoch_.wait(seen, std::memory_order_seq_cst);
    } else {
      std::this_thread::sleep_for(std::min(*left, backoff));
      backoff = std::min(backoff * 2, std::chrono::nanoseconds{1'000'000});
    }
#endif
  }

  alignas(64) std::atomic<std::uint32_t> epoch_{0};
  std::atomic<std::uint32_t> waiters_{0};
};

}  // namespace distkit::inline v0::detail
