// SPDX-License-Identifier: MIT
// distkit/task_group.hpp: a set of tasks run on a worker pool and waited for together, and the
// exception that reports a task cancelled by the pool's shutdown. Included by worker_pool.hpp.
#pragma once

#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace distkit::inline v0 {

/// Thrown through the future of a submitted task (and from `task_group::wait`) when
/// `shutdown(shutdown_mode::cancel)` discarded the task before it ran. Cancellation is not a task
/// failure: it has its own type so callers can tell the two apart.
class task_cancelled : public std::runtime_error {
 public:
  task_cancelled() : std::runtime_error("distkit::worker_pool: the task was cancelled by shutdown before it ran") {}
};

/// @brief A set of tasks run on a pool and waited for together; `wait()` called on one of the
/// pool's workers runs other tasks meanwhile, so nested fork-join never deadlocks, even on a pool
/// of one thread (like oneTBB's `task_group::wait` or Taskflow's `corun`).
///
/// @tparam Pool a `worker_pool` instantiation (deduced: `distkit::task_group g{pool};`). The group
/// drives the pool through private members; the pool names it a friend.
///
/// The first exception thrown by a task of the group is rethrown by `wait()`; if
/// `shutdown(cancel)` discarded a task of the group, `wait()` throws `task_cancelled`.
/// The destructor waits for the group's tasks (an exception nobody collected goes to the pool's
/// error handler).
///
/// **Thread safety:** `run` may be called from any thread, including from the group's own tasks;
/// `wait` from one thread at a time.
///
/// @code
/// #include <distkit/worker_pool.hpp>  // the pool (which includes this header)
///
/// auto fib(distkit::worker_pool<>& pool, int n) -> long {
///   if (n < 2) return n;
///   long a = 0;
///   distkit::task_group g{pool};
///   g.run([&] { a = fib(pool, n - 1); });
///   long b = fib(pool, n - 2);
///   g.wait();  // runs other tasks while a is computed elsewhere
///   return a + b;
/// }
/// @endcode
template <class Pool>
class task_group {
 public:
  explicit task_group(Pool& pool) noexcept : pool_(&pool) {}
  task_group(const task_group&) = delete;
  auto operator=(const task_group&) -> task_group& = delete;

  ~task_group() {
    if (pending_.load(std::memory_order_acquire) != 0) {
      pool_->wait_until([this] { return pending_.load(std::memory_order_acquire) == 0; });
    }
    if (error_) pool_->report_error(error_);
  }

  /// Runs `f()` on the pool as part of this group. Never refused: when a bounded pool under the
  /// reject policy is full, the caller runs `f` itself.
  /// @throws std::logic_error if the pool is shut down (as `post`).
  template <class F>
  void run(F&& f) {
    pending_.fetch_add(1, std::memory_order_relaxed);
    try {
      pool_->post_group_task(member_task<std::decay_t<F>>{this, pool_, std::forward<F>(f)});
    } catch (...) {
      pending_.fetch_sub(1, std::memory_order_acq_rel);
      throw;
    }
  }

  /// Waits until every task run so far finished, running other pool tasks meanwhile when called
  /// on a worker of the pool. Rethrows the first task exception (once), or `task_cancelled`.
  void wait() {
    pool_->wait_until([this] { return pending_.load(std::memory_order_acquire) == 0; });
    std::exception_ptr error;
    bool cancelled = false;
    {
      std::lock_guard lock(mutex_);
      error = std::exchange(error_, nullptr);
      cancelled = std::exchange(cancelled_, false);
    }
    if (error) std::rethrow_exception(error);
    if (cancelled) throw task_cancelled{};
  }

  /// True once every task run so far has finished.
  [[nodiscard]] auto done() const noexcept -> bool { return pending_.load(std::memory_order_acquire) == 0; }

 private:
  template <class F>
  struct member_task {
    task_group* group;
    Pool* pool;
    F fn;
    void operator()() {
      try {
        fn();
      } catch (...) {
        group->record_error(std::current_exception());
      }
      finish(group, pool);
    }
    void cancel() noexcept {
      {
        std::lock_guard lock(group->mutex_);
        group->cancelled_ = true;
      }
      finish(group, pool);
    }
  };

  // After the last decrement the group may be destroyed at once by its waiter: touch only `pool`.
  static void finish(task_group* group, Pool* pool) noexcept {
    if (group->pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pool->notify_waiters();
  }

  void record_error(std::exception_ptr error) noexcept {
    std::lock_guard lock(mutex_);
    if (!error_) error_ = std::move(error);
  }

  Pool* pool_;
  std::atomic<std::size_t> pending_{0};
  std::mutex mutex_;
  std::exception_ptr error_;
  bool cancelled_ = false;
};

}  // namespace distkit::inline v0
