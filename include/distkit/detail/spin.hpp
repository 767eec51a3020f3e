// SPDX-License-Identifier: MIT
// distkit/detail/spin.hpp: the spin-wait helpers every component shares: a CPU pause hint, a
// mutex that spins before it blocks, and a test-and-test-and-set lock.
#pragma once

#include <atomic>
#include <mutex>
#include <thread>

namespace distkit::inline v0::detail {

/// A spin-wait hint to the CPU (x86 `pause`, ARM `yield`); nothing elsewhere.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield" ::: "memory");
#endif
}

/// A mutex that spins briefly (try_lock with CPU pauses) before blocking. For locks held a few
/// dozen nanoseconds (the worker pool's queues): putting a thread to sleep on such a lock and
/// waking it again costs microseconds.
class adaptive_mutex {
 public:
  void lock() {
    for (int i = 0; i < spin_tries; ++i) {
      if (mutex_.try_lock()) return;
      cpu_relax();
    }
    mutex_.lock();
  }
  auto try_lock() -> bool { return mutex_.try_lock(); }
  void unlock() { mutex_.unlock(); }

 private:
  static constexpr int spin_tries = 64;
  std::mutex mutex_;
};

/// A test-and-test-and-set lock: one atomic exchange to take, one release store to give back.
/// Spins briefly, then yields, so an oversubscribed machine does not burn the holder's core.
/// Smaller than a mutex (one byte) and never sleeps in the kernel: for short sections guarded
/// per shard (the rate limiter's tables).
class spin_lock {
 public:
  void lock() noexcept {
    for (;;) {
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      unsigned spins = 0;
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins < spin_tries) {
          cpu_relax();
        } else {
          std::this_thread::yield();
        }
      }
    }
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  static constexpr unsigned spin_tries = 64;
  std::atomic<bool> locked_{false};
};

}  // namespace distkit::inline v0::detail
