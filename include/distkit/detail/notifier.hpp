// SPDX-License-Identifier: MIT
// distkit/detail/notifier.hpp: the worker pool's park/wake protocol in one class.
//
// Who may sleep
//   - A worker of the pool, in its scheduler loop (`waiter::worker`) or inside a wait that helps
//     (`waiter::helper`), through prepare_wait / cancel_wait / commit_wait.
//   - A thread outside the pool waiting for a predicate (an idle pool, a task's result), through
//     block_until.
//
// What wakes them
//   - A sleeping worker wakes when notify_one grants a permit (new work; one worker, and only
//     when no wake-up is already in flight), or when the epoch moves on: notify_waiters (a wait's
//     predicate may have become true; every helper) and wake_all (shutdown). A helper also wakes after at most a
//     millisecond, because a predicate may become true without a notification.
//   - An outside thread wakes on notify_waiters, notify_outside (a worker is about to sleep, so
//     the pool may be idle) and wake_all, and re-checks its predicate every millisecond.
//
// Why no wake-up is lost while any queue holds work
//   A waiter registers (prepare_wait: counted in `sleepers_`, then a seq_cst fence) before it
//   looks at the queues; a producer makes its task visible, then notify_one issues a seq_cst
//   fence before it reads `sleepers_`. The two fences are ordered in the seq_cst total order, so
//   either the producer sees the waiter and grants a wake-up permit (which commit_wait takes
//   however late it arrives), or the waiter sees the task and cancels. A producer that sees a
//   wake-up in flight (`waking_`) skips its own; to make up for that, every waiter that leaves
//   (by cancel or commit) clears `waking_`, fences, and counts the tasks any worker could take:
//   if there are more than it will take itself, it issues notify_one. A task made visible before
//   the clear is counted; one made visible after it finds `waking_` clear and wakes a worker
//   itself. So while any queue holds a task, some worker is awake or being woken.
//
// Why a permit and not an epoch for notify_one
//   The condition variable's notify_one wakes some waiter, not a chosen one. Were a wake-up only
//   a move of the epoch, a waiter that registered after the move (so its ticket holds the new
//   epoch) could be the one the signal wakes: it would find its predicate false and sleep on,
//   while a waiter with an older ticket, whose predicate is now true, was never signalled, and
//   `waking_` stayed set, so no later producer woke anyone: every worker asleep with tasks
//   queued. A permit is one wake-up that any waiter takes: whichever waiter the signal reaches,
//   or one that arrives before it sleeps, leaves with the permit, so each notify_one ends with
//   one waiter awake, and that waiter clears `waking_`. Permits never outnumber sleepers.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>

namespace distkit::inline v0::detail {

/// The park/wake protocol of `worker_pool` (see the invariant at the top of this file).
///
/// A worker about to sleep calls `prepare_wait`, then checks for work (and its own reasons not
/// to sleep); if it finds any it calls `cancel_wait`, otherwise `commit_wait`. Both take a
/// `queued()` callable returning the number of tasks any worker could take, used to pass on a
/// skipped wake-up.
///
/// `CondVar` is the condition variable the workers sleep on (`std::condition_variable`; tests
/// use one whose `notify_one` wakes the newest waiter, which the standard allows, to check that
/// the protocol does not depend on which waiter a signal reaches).
template <class CondVar = std::condition_variable>
class basic_notifier {
 public:
  /// Why a worker waits: for new work in its scheduler loop, or inside a wait that helps (woken
  /// also by `notify_waiters`, and never asleep longer than `helper_timeout`).
  enum class waiter { worker, helper };

  /// What `prepare_wait` hands to `cancel_wait` or `commit_wait`.
  struct ticket {
    std::uint64_t epoch;
    waiter kind;
  };

  /// The longest a helper, or an outside thread in `block_until`, sleeps without a notification.
  static constexpr std::chrono::milliseconds helper_timeout{1};

  // ---- worker side ----

  /// Registers the calling worker as about to sleep. After this, any notification that could
  /// concern it is seen by `commit_wait`.
  [[nodiscard]] auto prepare_wait(waiter kind) noexcept -> ticket {
    ticket t{0, kind};
    {
      std::lock_guard lock(mutex_);
      t.epoch = epoch_;
      sleepers_.fetch_add(1, std::memory_order_relaxed);
      if (kind == waiter::helper) helpers_.fetch_add(1, std::memory_order_relaxed);
    }
    std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with notify_one / notify_waiters
    return t;
  }

  /// Leaves without sleeping (the caller found a reason to stay awake).
  template <class Queued>
  void cancel_wait(const ticket& t, Queued&& queued) noexcept {
    {
      // Under the mutex, as in commit_wait: notify_one's second look at `sleepers_` is then exact.
      std::lock_guard lock(mutex_);
      unregister(t);
    }
    pass_on(t, queued);
  }

  /// Sleeps until a wake-up permit is out or the epoch moves past the ticket's (for a helper, at
  /// most `helper_timeout`), then leaves (taking a permit if one is out).
  template <class Queued>
  void commit_wait(const ticket& t, Queued&& queued) noexcept {
    {
      std::unique_lock lock(mutex_);
      const auto woken = [&] { return permits_ != 0 || epoch_ != t.epoch; };
      if (t.kind == waiter::helper) {
        cv_.wait_for(lock, helper_timeout, woken);
      } else {
        cv_.wait(lock, woken);
      }
      // Whatever woke it, a waiter that leaves while a permit is out takes it: the signal that
      // came with the permit may have reached this thread, and it is awake to look for work.
      if (permits_ != 0) --permits_;
      unregister(t);
    }
    pass_on(t, queued);
  }

  // ---- notifying side ----

  /// Call after making work visible: wakes one sleeping worker if any sleeps and no wake-up is in
  /// flight already.
  void notify_one() noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with prepare_wait
    if (sleepers_.load(std::memory_order_relaxed) == 0) return;
    if (waking_.load(std::memory_order_relaxed) || waking_.exchange(true, std::memory_order_acq_rel)) return;
    {
      std::lock_guard lock(mutex_);
      const std::size_t sleepers = sleepers_.load(std::memory_order_relaxed);
      if (sleepers == 0) {
        waking_.store(false, std::memory_order_relaxed);
        return;
      }
#ifdef DISTKIT_NOTIFIER_MUTATION_EPOCH_WAKE
      ++epoch_;  // test-only: the former wake-up, a move of the epoch (see the top of this file)
#else
      if (permits_ < sleepers) ++permits_;
#endif
    }
#ifdef DISTKIT_NOTIFIER_TEST_HOOK
    DISTKIT_NOTIFIER_TEST_HOOK();  // test-only: runs between granting a wake-up and signalling it
#endif
    cv_.notify_one();
  }

  /// Call after something a wait's predicate reads may have changed: wakes every sleeping helper
  /// and every outside thread in `block_until` (cheap when there is none).
  void notify_waiters() noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with prepare_wait / block_until
    if (helpers_.load(std::memory_order_relaxed) != 0) {
      {
        std::lock_guard lock(mutex_);
        ++epoch_;
      }
      cv_.notify_all();
    }
    if (outside_waiters_.load(std::memory_order_relaxed) != 0) wake_outside();
  }

  /// Called by a worker about to sleep: wakes the outside threads in `block_until`, if any, so
  /// that one waiting for the pool to go idle re-checks.
  void notify_outside() noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with block_until
    if (outside_waiters_.load(std::memory_order_relaxed) != 0) wake_outside();
  }

  /// Wakes every sleeping worker and every outside thread, unconditionally (shutdown).
  void wake_all() noexcept {
    {
      std::lock_guard lock(mutex_);
      ++epoch_;
    }
    cv_.notify_all();
    wake_outside();
  }

  // ---- outside threads ----

  /// Blocks a thread that is not a worker until `ready()`, re-checking it whenever woken and at
  /// least every `helper_timeout`.
  template <class Pred>
  void block_until(Pred&& ready) {
    std::unique_lock lock(outside_mutex_);
    outside_waiters_.fetch_add(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with notify_waiters / notify_outside
    while (!ready()) outside_cv_.wait_for(lock, helper_timeout);
    outside_waiters_.fetch_sub(1, std::memory_order_relaxed);
  }

 private:
  // Under mutex_. Keeps the permits no more than the sleepers left.
  void unregister(const ticket& t) noexcept {
    if (t.kind == waiter::helper) helpers_.fetch_sub(1, std::memory_order_relaxed);
    const std::size_t left = sleepers_.fetch_sub(1, std::memory_order_relaxed) - 1;
    if (permits_ > left) permits_ = left;
  }

  // Passes on a wake-up a producer may have skipped because one was in flight (see the invariant
  // above). A scheduler-loop worker takes one task itself; a helper may take none.
  template <class Queued>
  void pass_on(const ticket& t, Queued& queued) noexcept {
    waking_.store(false, std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (queued() > (t.kind == waiter::helper ? 0U : 1U)) notify_one();
  }

  void wake_outside() noexcept {
    { std::lock_guard lock(outside_mutex_); }
    outside_cv_.notify_all();
  }

  alignas(64) std::atomic<std::size_t> sleepers_{0};  // workers between prepare_wait and leaving
  std::atomic<bool> waking_{false};                   // a notify_one wake-up is in flight
  alignas(64) std::atomic<std::size_t> helpers_{0};   // the sleepers that are helpers
  std::atomic<std::size_t> outside_waiters_{0};       // threads in block_until

  std::mutex mutex_;
  CondVar cv_;
  std::uint64_t epoch_ = 0;  // guarded by mutex_; moved on to wake every sleeper (helpers, shutdown)
  std::size_t permits_ = 0;  // guarded by mutex_; wake-ups notify_one granted and no waiter took yet

  std::mutex outside_mutex_;
  std::condition_variable outside_cv_;
};

using notifier = basic_notifier<>;

}  // namespace distkit::inline v0::detail
