// SPDX-License-Identifier: MIT
// distkit/worker_pool.hpp: a fixed-size worker pool with work stealing, futures, task groups that
// help while waiting, bounded admission and lossless shutdown.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "distkit/detail/error.hpp"
#include "distkit/detail/notifier.hpp"
#include "distkit/detail/spin.hpp"
#include "distkit/detail/task_ring.hpp"
#include "distkit/detail/unique_function.hpp"
#include "distkit/overflow.hpp"
#include "distkit/task_group.hpp"

namespace distkit::inline v0 {

/// A task as the pool stores it: a move-only `void()` callable, 64 bytes, with no heap
/// allocation for callables of up to 56 bytes. `shutdown(shutdown_mode::cancel)` hands the posted
/// tasks that never ran back as `pool_task`s.
using pool_task = detail::unique_function;

// Queue policies: where submitted tasks wait for a worker.

/// Per-worker deques (LIFO for the owner, stolen from FIFO by idle workers) plus one inbox for
/// threads outside the pool, from which workers take tasks in batches. The default.
struct work_stealing_queue {
  static constexpr bool per_worker_deques = true;
};
/// One shared FIFO queue for every task. Simpler and strictly FIFO; slower under nesting.
struct global_queue {
  static constexpr bool per_worker_deques = false;
};

// Overflow policies (distkit/overflow.hpp; only used when `worker_pool_options::capacity` is
// non-zero): `blocking_overflow` (the default), `rejecting_overflow`, `caller_runs_overflow`.

/// The former spellings of the queue policies (one naming scheme now: `<name>_<role>`, as
/// `split_block_layout` or `maglev_placement`).
namespace pool_queue {
using work_stealing [[deprecated("use distkit::work_stealing_queue")]] = work_stealing_queue;
using global_queue [[deprecated("use distkit::global_queue")]] = distkit::global_queue;
}  // namespace pool_queue

/// A queue policy: `Q::per_worker_deques` is a `bool` constant.
template <class Q>
concept task_queue_policy = requires {
  { Q::per_worker_deques } -> std::convertible_to<bool>;
};

static_assert(task_queue_policy<work_stealing_queue>);
static_assert(task_queue_policy<global_queue>);

/// The outcome of `post` under the reject policy and of `try_post`.
enum class [[nodiscard]] admission { accepted, rejected };

/// How `shutdown` treats tasks that were accepted but have not started.
enum class shutdown_mode {
  drain,  ///< run every accepted task (and the tasks they submit), then join the workers
  cancel  ///< run nothing more: fail futures with `task_cancelled`, hand posted tasks back
};

/// Construction parameters of a `worker_pool`.
struct worker_pool_options {
  /// Worker threads, in [1, 1024]. Default: `std::thread::hardware_concurrency()` (at least 1).
  std::size_t threads = std::max<std::size_t>(1, std::thread::hardware_concurrency());
  /// Most tasks the inbox for outside submitters holds before the overflow policy applies;
  /// 0 = unbounded (only valid with the `block` policy). Tasks submitted by the pool's own tasks
  /// are never bounded: blocking or refusing them could deadlock the pool.
  std::size_t capacity = 0;
  /// Named in error messages.
  std::string name = "worker_pool";
};

/// Cheap counters, read without stopping the pool (each figure is read separately, so a snapshot
/// taken while tasks run may be slightly inconsistent).
struct pool_stats {
  std::uint64_t submitted = 0;  ///< tasks accepted into the pool (posts, submits, group tasks)
  std::uint64_t completed = 0;  ///< accepted tasks that ran to the end (normally or by throwing)
  std::uint64_t failed = 0;     ///< posted tasks that threw (handed to the error handler), on a worker or in the caller
  std::uint64_t stolen = 0;     ///< tasks a worker took from another worker's deque
  std::uint64_t cancelled = 0;  ///< accepted tasks discarded by `shutdown(cancel)` (settled or returned)
  std::uint64_t rejected = 0;   ///< refused by a full inbox (reject policy, `try_post`, `try_submit`)
  std::uint64_t ran_in_caller = 0;  ///< run by the submitter under the caller_runs policy (never accepted)
  std::size_t queued = 0;           ///< tasks waiting in the inbox and the deques right now
  std::size_t threads = 0;          ///< worker threads
};

namespace detail {
struct pool_thread_slot {
  const void* pool = nullptr;
  std::size_t index = 0;
};
// Which pool (if any) the current thread works for, and its index there.
inline thread_local pool_thread_slot current_pool_thread{};
// How many waits-that-help are nested on this thread's stack right now.
inline thread_local std::size_t help_depth = 0;

// How `submit(f, args...)` calls `f`: like std::async, with the task's copies as rvalues; failing
// that (a parameter taking an lvalue reference), with them as lvalues.
template <class F, class... Args>
struct submit_call {
  static constexpr bool by_rvalue = std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>;
  using result = typename std::conditional_t<by_rvalue, std::invoke_result<std::decay_t<F>, std::decay_t<Args>...>,
                                             std::invoke_result<std::decay_t<F>&, std::decay_t<Args>&...>>::type;
};

// What a worker may run: its scheduler loop takes anything (oldest first from the global queue);
// a worker helping while it waits takes the newest tasks; one whose helping is nested too deep
// runs only its own deque (tasks it pushed itself, the children of the frames it waits in).
enum class take_mode { schedule, help, help_own_only };
}  // namespace detail

template <task_queue_policy Queue, overflow_policy Overflow>
class worker_pool;

/// @brief A fixed set of worker threads that runs posted and submitted tasks, with work stealing,
/// futures, fork-join that helps while waiting, bounded admission and a shutdown that never
/// silently drops an accepted task.
///
/// @tparam Queue    where tasks wait; models `task_queue_policy` (default: `work_stealing_queue`;
///                  also `global_queue`).
/// @tparam Overflow what outside submitters do when a bounded inbox is full; models
///                  `overflow_policy` (default: `blocking_overflow`; also `rejecting_overflow`,
///                  `caller_runs_overflow`).
///
/// @throws std::invalid_argument from the constructor if `threads` is outside [1, 1024], or if
///         `capacity` is 0 with the reject or caller_runs policy; the message names the parameter.
///
/// **Errors of posted tasks:** an exception escaping a `post`ed task goes to the error handler
/// (`set_error_handler`). The default handler keeps the first such exception (later ones are
/// counted in `stats().failed`) and `wait_idle()` rethrows it once; an exception still uncollected
/// when the pool is destroyed is written to stderr. Exceptions of `submit`ted tasks travel through
/// their futures instead; those of `task_group` tasks through `task_group::wait`.
///
/// **Waiting inside a task:** blocking in a task on a result another task computes can deadlock
/// any pool whose workers are all blocked. Wait through the pool instead: `get(future)`,
/// `wait(future)`, `task_group::wait()` or `wait_until(pred)` run other queued tasks while the
/// result is pending (on a worker thread; an outside thread just blocks).
///
/// **Shutdown:** `shutdown(shutdown_mode::drain)` (the destructor does this) stops accepting
/// outside submissions, runs every accepted task, including tasks those tasks submit, then joins.
/// `shutdown(shutdown_mode::cancel)` stops accepting any submission, fails the futures and task
/// groups of queued tasks with `task_cancelled`, returns the queued posted tasks to the caller,
/// waits for the running tasks and joins. Submitting after shutdown throws `std::logic_error`.
///
/// **Thread safety:** every member may be called concurrently from any thread, except that
/// `shutdown` and the destructor must not run on one of the pool's own workers.
///
/// **Complexity:** `post` is O(1) amortised with no allocation for callables of up to 56 bytes;
/// `submit` adds one allocation (the future's shared state).
///
/// @code
/// distkit::worker_pool pool{distkit::worker_pool_options{.threads = 4}};
/// auto answer = pool.submit([](int x) { return x * 2; }, 21);
/// pool.post([] { /* background work */ });
/// pool.parallel_for(0, 1000, [](std::size_t i) { /* ... */ (void)i; });
/// int value = answer.get();  // 42
/// pool.wait_idle();
/// @endcode
template <task_queue_policy Queue = work_stealing_queue, overflow_policy Overflow = blocking_overflow>
class worker_pool {
  static constexpr bool stealing = Queue::per_worker_deques;
  static constexpr overflow_action overflow_kind = Overflow::action;
  static constexpr bool rejects = overflow_kind == overflow_action::reject;
  static_assert(overflow_kind != overflow_action::drop_oldest,
                "distkit::worker_pool: drop_oldest_overflow would discard an accepted task; use "
                "rejecting_overflow or caller_runs_overflow");

 public:
  using queue_policy = Queue;
  using overflow_policy_type = Overflow;
  /// What `post` returns: `admission` under the reject policy, `void` otherwise.
  using post_result = std::conditional_t<rejects, admission, void>;
  /// What `submit` returns for a result type `R`: `std::future<R>`, or under the reject policy
  /// `std::optional<std::future<R>>` (empty when refused).
  template <class R>
  using submit_result = std::conditional_t<rejects, std::optional<std::future<R>>, std::future<R>>;

  /// Starts `threads` workers with an unbounded inbox.
  explicit worker_pool(std::size_t threads) : worker_pool(worker_pool_options{.threads = threads}) {}

  /// Starts the workers described by `options`.
  explicit worker_pool(worker_pool_options options = {}) : name_(std::move(options.name)), capacity_(options.capacity) {
    if (options.threads < 1 || options.threads > 1024) {
      detail::throw_invalid_argument("worker_pool", "threads", "must be in [1, 1024]", options.threads);
    }
    if (capacity_ == 0 && overflow_kind != overflow_action::block) {
      detail::throw_invalid_argument("worker_pool", "capacity",
                                     "must be at least 1 with the reject or caller_runs overflow policy", capacity_);
    }
    workers_ = std::make_unique<worker[]>(options.threads);
    thread_count_ = options.threads;
    for (std::size_t i = 0; i < thread_count_; ++i) workers_[i].rng = 0x9e3779b97f4a7c15ULL * (i + 1);
    std::size_t started = 0;
    try {
      for (; started < thread_count_; ++started) {
        workers_[started].thread = std::thread([this, started] { worker_main(started); });
      }
    } catch (...) {
      stop_.store(true, std::memory_order_seq_cst);
      notifier_.wake_all();
      for (std::size_t i = 0; i < started; ++i) workers_[i].thread.join();
      throw;
    }
  }

  worker_pool(const worker_pool&) = delete;
  auto operator=(const worker_pool&) -> worker_pool& = delete;

  /// Drains: runs every accepted task, then joins the workers (see `shutdown`).
  ~worker_pool() {
    if (!joined_) shutdown_impl(shutdown_mode::drain);
    std::lock_guard lock(error_mutex_);
    if (stored_error_) {
      try {
        std::rethrow_exception(stored_error_);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "distkit::worker_pool \"%s\": uncollected exception from a posted task: %s\n",
                     name_.c_str(), e.what());
      } catch (...) {
        std::fprintf(stderr, "distkit::worker_pool \"%s\": uncollected non-standard exception from a posted task\n",
                     name_.c_str());
      }
    }
  }

  /// Number of worker threads.
  [[nodiscard]] auto concurrency() const noexcept -> std::size_t { return thread_count_; }
  /// The name given in the options.
  [[nodiscard]] auto name() const noexcept -> const std::string& { return name_; }
  /// True when the calling thread is one of this pool's workers.
  [[nodiscard]] auto is_worker_thread() const noexcept -> bool { return detail::current_pool_thread.pool == this; }

  /// @brief Runs `f()` on the pool, fire and forget: no future, no allocation for small callables.
  /// An exception escaping `f` goes to the error handler. From outside the pool, a full bounded
  /// inbox applies the overflow policy (`block` waits; `reject` returns `admission::rejected`;
  /// `caller_runs` runs `f` on the calling thread).
  /// @throws std::logic_error after shutdown.
  template <class F>
    requires std::is_invocable_v<std::decay_t<F>&>
  auto post(F&& f) -> post_result {
    if constexpr (rejects) {
      return admit(pool_task(std::forward<F>(f)), overflow_kind);
    } else {
      (void)admit(pool_task(std::forward<F>(f)), overflow_kind);  // block and caller_runs never refuse
    }
  }

  /// @brief Like `post`, for a task that should yield to the work already waiting. Called from
  /// one of this pool's workers, `f` goes to the back of the shared queue rather than onto the
  /// worker's own deque (which runs newest first), so the tasks queued before it, there and in
  /// that deque, run first; like every submission from a task it is never bounded or refused
  /// (except after `shutdown(cancel)`). From any other thread it is `post`. A task that re-posts
  /// itself to continue a long job (as a pipeline's workers do) shares the pool this way instead
  /// of holding a worker until the job ends.
  /// @throws std::logic_error after shutdown.
  template <class F>
    requires std::is_invocable_v<std::decay_t<F>&>
  auto defer(F&& f) -> post_result {
    if (!is_worker_thread()) return post(std::forward<F>(f));
    if (DISTKIT_UNLIKELY(state_.load(std::memory_order_acquire) >= pool_state::cancelling)) throw_shut_down();
    pool_task task(std::forward<F>(f));
    bump(workers_[detail::current_pool_thread.index].submitted);
    push(inbox_.mutex, inbox_.ring, inbox_.size_hint, std::move(task));
    notify_work();
    if constexpr (rejects) return admission::accepted;
  }

  /// Like `post`, but never blocks and never runs `f` in the caller: returns
  /// `admission::rejected` when a bounded inbox is full.
  /// @throws std::logic_error after shutdown.
  template <class F>
    requires std::is_invocable_v<std::decay_t<F>&>
  [[nodiscard]] auto try_post(F&& f) -> admission {
    return admit(pool_task(std::forward<F>(f)), overflow_action::reject);
  }

  /// @brief Runs `f(args...)` on the pool; its result or exception arrives through the future.
  /// The arguments are copied or moved into the task and, as with `std::async`, passed on as
  /// rvalues (so a by-value parameter may be move-only); a callable that takes an lvalue
  /// reference gets the task's own copy. Under the reject policy the result is an
  /// optional, empty when a full inbox refused the task.
  /// @throws std::logic_error after shutdown.
  template <class F, class... Args, class R = typename detail::submit_call<F, Args...>::result>
  [[nodiscard]] auto submit(F&& f, Args&&... args) -> submit_result<R> {
    auto [task, future] = make_future_task<R>(std::forward<F>(f), std::forward<Args>(args)...);
    if constexpr (rejects) {
      if (admit(std::move(task), overflow_kind) == admission::rejected) return std::nullopt;
      return std::optional<std::future<R>>(std::move(future));
    } else {
      (void)admit(std::move(task), overflow_kind);
      return std::move(future);
    }
  }

  /// Like `submit`, but refuses (returns an empty optional) instead of blocking or running in the
  /// caller when a bounded inbox is full.
  /// @throws std::logic_error after shutdown.
  template <class F, class... Args, class R = typename detail::submit_call<F, Args...>::result>
  [[nodiscard]] auto try_submit(F&& f, Args&&... args) -> std::optional<std::future<R>> {
    auto [task, future] = make_future_task<R>(std::forward<F>(f), std::forward<Args>(args)...);
    if (admit(std::move(task), overflow_action::reject) == admission::rejected) return std::nullopt;
    return std::optional<std::future<R>>(std::move(future));
  }

  /// @brief Calls `f(i)` for every `i` in [first, last), or `f(begin, end)` for consecutive
  /// chunks if `f` takes two indices, spread over the workers and the calling thread. Chunks of
  /// `grain` indices (default: about 8 chunks per thread) are claimed from one shared counter, so
  /// there is no task per index. Returns when every index is done; the first exception is
  /// rethrown (remaining chunks are skipped).
  /// @throws std::logic_error after shutdown.
  template <class F>
    requires(std::is_invocable_v<F&, std::size_t> || std::is_invocable_v<F&, std::size_t, std::size_t>)
  void parallel_for(std::size_t first, std::size_t last, F&& f, std::size_t grain = 0) {
    if (first >= last) return;
    const std::size_t n = last - first;
    if (grain == 0) grain = std::max<std::size_t>(1, n / (thread_count_ * 8));
    grain = std::min(grain, n);
    const std::size_t chunks = n / grain + (n % grain != 0 ? 1 : 0);
    // Chunks are claimed by number, not by first index: `first + k * grain` stays below `last`
    // for every claimed chunk, so nothing wraps even when `last` is near SIZE_MAX (a counter of
    // indices would pass SIZE_MAX and wrap to small indices).
    std::atomic<std::size_t> next{0};
    std::atomic<bool> failed{false};
    auto body = [&] {
      for (;;) {
        const std::size_t chunk = next.fetch_add(1, std::memory_order_relaxed);
        if (chunk >= chunks || failed.load(std::memory_order_relaxed)) return;
        const std::size_t begin = first + chunk * grain;
        const std::size_t end = begin + std::min(grain, last - begin);
        if constexpr (std::is_invocable_v<F&, std::size_t, std::size_t>) {
          f(begin, end);
        } else {
          for (std::size_t i = begin; i < end; ++i) f(i);
        }
      }
    };
    task_group<worker_pool> group{*this};
    const std::size_t helpers = std::min(thread_count_, chunks - 1);
    for (std::size_t i = 0; i < helpers; ++i) {
      group.run([&] {
        try {
          body();
        } catch (...) {
          failed.store(true, std::memory_order_relaxed);
          throw;
        }
      });
    }
    std::exception_ptr caller_error;
    try {
      body();
    } catch (...) {
      failed.store(true, std::memory_order_relaxed);
      caller_error = std::current_exception();
    }
    try {
      group.wait();
    } catch (...) {
      if (!caller_error) caller_error = std::current_exception();
    }
    if (caller_error) std::rethrow_exception(caller_error);
  }

  /// @brief Waits until `ready()` is true. On a worker of this pool it runs other queued tasks
  /// meanwhile (help while waiting); elsewhere it blocks. `ready` is re-checked after every task
  /// the caller runs, whenever a submitted task or a group task finishes, and at least every
  /// millisecond otherwise (so a predicate made true by a posted
  /// task is seen within a millisecond without any notification). It must be cheap and must not
  /// call into the pool.
  template <class Pred>
  void wait_until(Pred&& ready) {
    if (ready()) return;
    if (is_worker_thread()) {
      help_until(ready);
    } else {
      notifier_.block_until(ready);
    }
  }

  /// Waits for `future` (through `wait_until`, so a task waiting on another task never
  /// deadlocks the pool), then returns `future.get()`.
  template <class R>
  auto get(std::future<R>& future) -> R {
    wait(future);
    return future.get();
  }
  template <class R>
  auto get(std::future<R>&& future) -> R {
    wait(future);
    return future.get();
  }

  /// Waits until `future` is ready, helping while it waits (see `wait_until`).
  template <class R>
  void wait(const std::future<R>& future) {
    if (!is_worker_thread()) {
      future.wait();
      return;
    }
    wait_until([&] { return future.wait_for(std::chrono::seconds(0)) == std::future_status::ready; });
  }

  /// @brief Blocks until every accepted task has finished, then rethrows (once) the exception the
  /// default error handler stored, if any.
  /// @throws std::logic_error when called on one of the pool's workers (it would wait for itself).
  void wait_idle() {
    if (is_worker_thread()) {
      detail::throw_logic_error("worker_pool", "wait_idle() called from a task of pool \"" + name_ +
                                                   "\" would wait for itself; use a task_group instead");
    }
    notifier_.block_until([this] { return idle(); });
    rethrow_stored_error();
  }

  /// Sets the handler that receives exceptions escaping posted tasks (called on the worker that
  /// ran the task; it must not throw). An empty function restores the default (store the first,
  /// rethrow from `wait_idle`).
  void set_error_handler(std::function<void(std::exception_ptr)> handler) {
    std::lock_guard lock(error_mutex_);
    error_handler_ = std::move(handler);
  }

  /// @brief Stops the pool; see the class comment for `drain` and `cancel`.
  /// @returns under `cancel`, the posted tasks that never ran (submitted tasks and group tasks
  ///          are settled with `task_cancelled` instead); empty under `drain`. Every accepted task
  ///          is accounted for: `stats().completed + stats().cancelled == stats().submitted`.
  /// @throws std::logic_error when called on one of the pool's workers. A second call does nothing.
  /// Under `drain`, rethrows a posted-task exception kept by the default handler, like `wait_idle`.
  auto shutdown(shutdown_mode mode = shutdown_mode::drain) -> std::vector<pool_task> {
    if (is_worker_thread()) {
      detail::throw_logic_error(
          "worker_pool", "shutdown() called from a task of pool \"" + name_ + "\" would join the thread it runs on");
    }
    auto unrun = shutdown_impl(mode);
    if (mode == shutdown_mode::drain) rethrow_stored_error();
    return unrun;
  }

  /// Reads the counters (each with a relaxed load).
  [[nodiscard]] auto stats() const noexcept -> pool_stats {
    pool_stats s;
    s.threads = thread_count_;
    s.submitted = submitted_external_.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < thread_count_; ++i) {
      const worker& w = workers_[i];
      s.submitted += w.submitted.load(std::memory_order_relaxed);
      s.completed += w.completed.load(std::memory_order_relaxed);
      s.failed += w.failed.load(std::memory_order_relaxed);
      s.stolen += w.stolen.load(std::memory_order_relaxed);
      s.queued += w.size_hint.load(std::memory_order_relaxed);
    }
    s.cancelled = cancelled_.load(std::memory_order_relaxed);
    s.rejected = rejected_.load(std::memory_order_relaxed);
    s.ran_in_caller = ran_in_caller_.load(std::memory_order_relaxed);
    s.failed += failed_in_caller_.load(std::memory_order_relaxed);
    s.queued += inbox_.size_hint.load(std::memory_order_relaxed);
    return s;
  }

 private:
  enum class pool_state : int { running, draining, cancelling, stopped };

  // ---- what task_group drives (a friend) ----

  template <class Pool>
  friend class task_group;

  // Posts a task that settles itself on cancellation; never refused (runs in the caller when a
  // reject-policy inbox is full).
  template <class Task>
  void post_group_task(Task&& task) {
    pool_task t(detail::cancellable, std::forward<Task>(task));
    // block and caller_runs never refuse, so the admission is always `accepted`.
    (void)admit(std::move(t), overflow_kind == overflow_action::reject ? overflow_action::caller_runs : overflow_kind);
  }

  // Wakes threads parked in `wait_until` (cheap when none is): a group's last task calls it.
  void notify_waiters() noexcept { notifier_.notify_waiters(); }

  // Hands an exception to the error handler (as if a posted task had thrown it).
  void report_error(std::exception_ptr error) noexcept {
    std::function<void(std::exception_ptr)> handler;
    {
      std::lock_guard lock(error_mutex_);
      if (!error_handler_) {
        if (!stored_error_) stored_error_ = std::move(error);
        return;
      }
      handler = error_handler_;
    }
    handler(std::move(error));
  }

  // Each worker's deque is guarded by a (spin-then-block) mutex rather than being a lock-free
  // Chase-Lev deque: tasks are stored by value, 64 bytes each, with no allocation per task, and a
  // lock-free deque cannot hand out multi-word values without racy reads. The owner's lock is
  // uncontended unless a thief is at the same deque.
  struct alignas(64) worker {
    detail::adaptive_mutex mutex;
    detail::task_ring deque;                // guarded by mutex; the owner uses the back
    std::atomic<std::size_t> size_hint{0};  // deque size, for lock-free emptiness checks
    // Written only by the owning thread (load + store, no read-modify-write).
    alignas(64) std::atomic<std::uint64_t> submitted{0};
    std::atomic<std::uint64_t> completed{0};
    std::atomic<std::uint64_t> failed{0};
    std::atomic<std::uint64_t> stolen{0};
    std::uint64_t rng = 0;
    std::thread thread;
  };

  struct inbox_queue {
    detail::adaptive_mutex mutex;
    detail::task_ring ring;                 // guarded by mutex
    std::atomic<std::size_t> size_hint{0};  // ring size, for lock-free emptiness checks
    std::condition_variable_any space_cv;   // block policy: waits for room
    std::size_t space_waiters = 0;          // guarded by mutex
  };

  static void bump(std::atomic<std::uint64_t>& counter) noexcept {
    counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }

  template <class R, class F, class... Args>
  auto make_future_task(F&& f, Args&&... args) -> std::pair<pool_task, std::future<R>> {
    struct future_task {
      std::decay_t<F> fn;
      std::tuple<std::decay_t<Args>...> args;
      std::promise<R> promise;
      worker_pool* pool;
      auto call() -> R {
        // The task runs once, so its callable and arguments can be handed over as rvalues.
        if constexpr (detail::submit_call<F, Args...>::by_rvalue) {
          return std::apply(std::move(fn), std::move(args));
        } else {
          return std::apply(fn, args);
        }
      }
      void operator()() {
        try {
          if constexpr (std::is_void_v<R>) {
            call();
            promise.set_value();
          } else {
            promise.set_value(call());
          }
        } catch (...) {
          promise.set_exception(std::current_exception());
        }
        pool->notify_waiters();
      }
      void cancel() noexcept {
        promise.set_exception(std::make_exception_ptr(task_cancelled{}));
        pool->notify_waiters();
      }
    };
    future_task t{std::forward<F>(f), std::tuple<std::decay_t<Args>...>(std::forward<Args>(args)...), {}, this};
    std::future<R> future = t.promise.get_future();
    return {pool_task(detail::cancellable, std::move(t)), std::move(future)};
  }

  // Accepts `task` into the pool, applying `action` when a bounded inbox is full. A task that
  // submits is never bounded (blocking or refusing it could deadlock the pool) and is refused
  // only while cancelling; an outside thread goes through the inbox and its bound.
  auto admit(pool_task&& task, overflow_action action) -> admission {
    if (!is_worker_thread()) return admit_from_outside(std::move(task), action);
    if (DISTKIT_UNLIKELY(state_.load(std::memory_order_acquire) >= pool_state::cancelling)) throw_shut_down();
    worker& w = workers_[detail::current_pool_thread.index];
    bump(w.submitted);
    // Work stealing: the worker's own deque, from which idle workers steal. Global queue: the
    // shared queue, except for a task submitted while its worker waits, which goes to that
    // worker's own deque (otherwise two waiting workers keep taking each other's subtrees from
    // the shared queue and nest without bound); only that worker runs it, so nobody is woken.
    const bool private_deque = !stealing && detail::help_depth > 0;
    if (stealing || private_deque) {
      push(w.mutex, w.deque, w.size_hint, std::move(task));
    } else {
      push(inbox_.mutex, inbox_.ring, inbox_.size_hint, std::move(task));
    }
    if (!private_deque) notify_work();
    return admission::accepted;
  }

  auto admit_from_outside(pool_task&& task, overflow_action action) -> admission {
    std::unique_lock lock(inbox_.mutex);
    if (DISTKIT_UNLIKELY(state_.load(std::memory_order_relaxed) != pool_state::running)) {
      lock.unlock();
      throw_shut_down();
    }
    if (capacity_ != 0 && inbox_.ring.size() >= capacity_) {
      if (action != overflow_action::block) {
        lock.unlock();
        return refuse_or_run_in_caller(task, action);
      }
      ++inbox_.space_waiters;
      inbox_.space_cv.wait(lock, [&] {
        return inbox_.ring.size() < capacity_ || state_.load(std::memory_order_relaxed) != pool_state::running;
      });
      --inbox_.space_waiters;
      if (state_.load(std::memory_order_relaxed) != pool_state::running) {
        lock.unlock();
        throw_shut_down();
      }
    }
    // Every outside submission counts under the inbox mutex: a plain load + store suffices.
    submitted_external_.store(submitted_external_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    inbox_.ring.push_back(std::move(task));
    inbox_.size_hint.store(inbox_.ring.size(), std::memory_order_relaxed);
    lock.unlock();
    notify_work();
    return admission::accepted;
  }

  // A full inbox under the reject or caller_runs action.
  auto refuse_or_run_in_caller(pool_task& task, overflow_action action) -> admission {
    if (action == overflow_action::reject) {
      rejected_.fetch_add(1, std::memory_order_relaxed);
      return admission::rejected;
    }
    ran_in_caller_.fetch_add(1, std::memory_order_relaxed);
    run_in_caller(task);
    return admission::accepted;
  }

  // Appends `task` to a queue under its lock and publishes the new size.
  template <class Mutex>
  static void push(Mutex& mutex, detail::task_ring& ring, std::atomic<std::size_t>& size_hint, pool_task&& task) {
    std::lock_guard lock(mutex);
    ring.push_back(std::move(task));
    size_hint.store(ring.size(), std::memory_order_relaxed);
  }

  void run_in_caller(pool_task& task) {
    // A future or group task settles its own exception; a posted one goes to the handler.
    try {
      task();
    } catch (...) {
      failed_in_caller_.fetch_add(1, std::memory_order_relaxed);
      report_error(std::current_exception());
    }
  }

  [[noreturn]] DISTKIT_COLD void throw_shut_down() const {
    detail::throw_logic_error("worker_pool", "pool \"" + name_ + "\" is shut down; no task can be submitted");
  }

  // ---- waking and parking (the protocol lives in detail/notifier.hpp) ----

  // After making work visible: wake a parked worker to take it.
  void notify_work() noexcept { notifier_.notify_one(); }

  // Work the calling worker could take: the inbox, its own deque, and (when stealing) any deque.
  [[nodiscard]] auto has_visible_work() const noexcept -> bool {
    if (inbox_.size_hint.load(std::memory_order_relaxed) != 0) return true;
    if constexpr (stealing) {
      for (std::size_t i = 0; i < thread_count_; ++i) {
        if (workers_[i].size_hint.load(std::memory_order_relaxed) != 0) return true;
      }
    } else if (detail::current_pool_thread.pool == this) {
      if (workers_[detail::current_pool_thread.index].size_hint.load(std::memory_order_relaxed) != 0) return true;
    }
    return false;
  }

  // Parks the calling worker until new work may be there (or, for a helper, `ready()` may hold).
  template <class Pred>
  void park(Pred&& ready, detail::notifier::waiter kind) {
    const auto ticket = notifier_.prepare_wait(kind);
    auto queued = [this] { return shared_tasks(); };
    if (has_visible_work() || ready() || stop_.load(std::memory_order_relaxed)) {
      notifier_.cancel_wait(ticket, queued);
    } else {
      notifier_.commit_wait(ticket, queued);
    }
  }

  // Tasks any worker could take: the inbox and (when stealing) every deque.
  [[nodiscard]] auto shared_tasks() const noexcept -> std::size_t {
    std::size_t n = inbox_.size_hint.load(std::memory_order_relaxed);
    if constexpr (stealing) {
      for (std::size_t i = 0; i < thread_count_; ++i) n += workers_[i].size_hint.load(std::memory_order_relaxed);
    }
    return n;
  }

  // Every task a waiting worker runs nests on its stack. Without a bound, workers that keep
  // stealing each other's subtrees while they wait nest until the stack overflows. Past this
  // depth a waiting worker only runs its own deque (the tasks it pushed: the children of the
  // frames it waits in, so its waits still finish) and otherwise parks until its result is ready.
  // Recursive fork-join nests about as deep as it recurses.
  static constexpr std::size_t max_help_depth = 256;

  template <class Pred>
  void help_until(Pred&& ready) {
    worker& w = workers_[detail::current_pool_thread.index];
    struct depth_guard {
      depth_guard() noexcept { ++detail::help_depth; }
      ~depth_guard() { --detail::help_depth; }
      depth_guard(const depth_guard&) = delete;
      auto operator=(const depth_guard&) -> depth_guard& = delete;
    } guard;
    const detail::take_mode mode =
        detail::help_depth <= max_help_depth ? detail::take_mode::help : detail::take_mode::help_own_only;
    while (!ready()) {
      if (run_one(w, mode)) continue;
      if (spin_for_work(w, ready, mode)) continue;
      if (ready()) return;
      park(ready, detail::notifier::waiter::helper);
    }
  }

  // Spins briefly looking for work before parking (parking and waking cost microseconds):
  // exponential CPU-pause backoff, then a few yields. Returns true if it ran a task.
  template <class Pred>
  auto spin_for_work(worker& w, Pred&& ready, detail::take_mode mode) -> bool {
    for (int round = 0; round < 10; ++round) {
      if (round < 7) {
        for (int i = 0; i < (1 << round); ++i) detail::cpu_relax();
      } else {
        std::this_thread::yield();
      }
      if (ready()) return false;
      if (run_one(w, mode)) return true;
    }
    return false;
  }

  // ---- running tasks ----

  void execute(worker& w, pool_task task) {
    try {
      task();
    } catch (...) {
      bump(w.failed);
      report_error(std::current_exception());
    }
    task.reset();
    bump(w.completed);
  }

  // Finds one task for worker `w` and runs it. Returns false if there was none. When the worker
  // helps while it waits inside a task, the global queue hands out its newest task rather than
  // its oldest, so that nested waits go depth-first (the oldest tasks tend to be the roots of
  // large subtrees); past `max_help_depth` only the worker's own deque is used.
  auto run_one(worker& w, detail::take_mode mode = detail::take_mode::schedule) -> bool {
    if (w.size_hint.load(std::memory_order_relaxed) != 0) {
      std::unique_lock lock(w.mutex);
      if (!w.deque.empty()) {
        pool_task task = w.deque.pop_back();
        w.size_hint.store(w.deque.size(), std::memory_order_relaxed);
        lock.unlock();
        execute(w, std::move(task));
        return true;
      }
    }
    if (mode == detail::take_mode::help_own_only) return false;
    if constexpr (stealing) {
      if (inbox_.size_hint.load(std::memory_order_relaxed) != 0) {
        if (pool_task task = take_from_inbox(w)) {
          execute(w, std::move(task));
          return true;
        }
      }
      if (pool_task task = steal(w)) {
        execute(w, std::move(task));
        return true;
      }
      return false;
    } else {
      if (inbox_.size_hint.load(std::memory_order_relaxed) == 0) return false;
      pool_task task;
      bool wake_producers = false;
      bool more = false;
      {
        std::lock_guard lock(inbox_.mutex);
        if (inbox_.ring.empty()) return false;
        task = mode == detail::take_mode::help ? inbox_.ring.pop_back() : inbox_.ring.pop_front();
        inbox_.size_hint.store(inbox_.ring.size(), std::memory_order_relaxed);
        wake_producers = inbox_.space_waiters != 0;
        more = !inbox_.ring.empty();
      }
      if (wake_producers) inbox_.space_cv.notify_all();
      // Submitters skip the wake-up while one is in flight; whoever takes a task while more are
      // queued passes the wake-up on, so parked workers join in one after another.
      if (more) notify_work();
      execute(w, std::move(task));
      return true;
    }
  }

  // Takes a batch from the inbox: returns one task and moves the rest to w's deque.
  auto take_from_inbox(worker& w) -> pool_task {
    pool_task first;
    detail::task_ring* target = &w.deque;
    bool wake_producers = false;
    bool more = false;
    {
      std::lock_guard lock(inbox_.mutex);
      const std::size_t size = inbox_.ring.size();
      if (size == 0) return first;
      const std::size_t batch = std::min<std::size_t>(32, (size + thread_count_ - 1) / thread_count_);
      first = inbox_.ring.pop_front();
      if (batch > 1) {
        std::lock_guard own(w.mutex);
        for (std::size_t i = 1; i < batch; ++i) target->push_back(inbox_.ring.pop_front());
        w.size_hint.store(target->size(), std::memory_order_relaxed);
      }
      inbox_.size_hint.store(inbox_.ring.size(), std::memory_order_relaxed);
      wake_producers = inbox_.space_waiters != 0;
      more = size > 1;
    }
    if (wake_producers) inbox_.space_cv.notify_all();
    if (more) notify_work();  // let a parked worker share the rest
    return first;
  }

  auto steal(worker& thief) -> pool_task {
    if (thread_count_ == 1) return {};
    thief.rng ^= thief.rng << 13;
    thief.rng ^= thief.rng >> 7;
    thief.rng ^= thief.rng << 17;
    const std::size_t start = thief.rng % thread_count_;
    for (std::size_t k = 0; k < thread_count_; ++k) {
      worker& victim = workers_[(start + k) % thread_count_];
      if (&victim == &thief || victim.size_hint.load(std::memory_order_relaxed) == 0) continue;
      std::unique_lock lock(victim.mutex);
      if (victim.deque.empty()) continue;
      pool_task task = victim.deque.pop_front();
      const std::size_t left = victim.deque.size();
      victim.size_hint.store(left, std::memory_order_relaxed);
      lock.unlock();
      bump(thief.stolen);
      if (left != 0) notify_work();
      return task;
    }
    return {};
  }

  void worker_main(std::size_t index) {
    detail::current_pool_thread = {this, index};
    worker& w = workers_[index];
    auto never = [] { return false; };
    for (;;) {
      if (run_one(w)) continue;
      if (spin_for_work(w, never, detail::take_mode::schedule)) continue;
      // About to sleep: an outside thread may be waiting for the pool to go idle.
      notifier_.notify_outside();
      if (stop_.load(std::memory_order_acquire)) {
        if (run_one(w)) continue;
        break;
      }
      park(never, detail::notifier::waiter::worker);
    }
    detail::current_pool_thread = {};
  }

  // ---- idle detection and shutdown ----

  [[nodiscard]] auto idle() const noexcept -> bool {
    // Completions first: each counted completion's submission happened before it, so reading the
    // submissions last can only make the sum larger, never hide a pending task.
    std::uint64_t done = cancelled_.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < thread_count_; ++i) done += workers_[i].completed.load(std::memory_order_acquire);
    std::uint64_t submitted = submitted_external_.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < thread_count_; ++i) submitted += workers_[i].submitted.load(std::memory_order_acquire);
    return done == submitted;
  }

  void rethrow_stored_error() {
    std::exception_ptr error;
    {
      std::lock_guard lock(error_mutex_);
      error = std::exchange(stored_error_, nullptr);
    }
    if (error) std::rethrow_exception(error);
  }

  // Moves every queued task out: cancellable ones are settled, the others appended to `unrun`.
  void collect_queued(std::vector<pool_task>& unrun) {
    auto settle = [&](pool_task task) {
      cancelled_.fetch_add(1, std::memory_order_acq_rel);
      if (!task.cancel()) unrun.push_back(std::move(task));
    };
    std::vector<pool_task> taken;
    {
      std::lock_guard lock(inbox_.mutex);
      while (!inbox_.ring.empty()) taken.push_back(inbox_.ring.pop_front());
      inbox_.size_hint.store(0, std::memory_order_relaxed);
    }
    for (std::size_t i = 0; i < thread_count_; ++i) {
      std::lock_guard lock(workers_[i].mutex);
      while (!workers_[i].deque.empty()) taken.push_back(workers_[i].deque.pop_front());
      workers_[i].size_hint.store(0, std::memory_order_relaxed);
    }
    // Settled outside the locks: a cancel() may wake waiters that take them.
    for (auto& task : taken) settle(std::move(task));
  }

  auto shutdown_impl(shutdown_mode mode) -> std::vector<pool_task> {
    std::lock_guard shutdown_lock(shutdown_mutex_);
    std::vector<pool_task> unrun;
    if (joined_) return unrun;
    {
      std::lock_guard lock(inbox_.mutex);
      state_.store(mode == shutdown_mode::drain ? pool_state::draining : pool_state::cancelling,
                   std::memory_order_release);
    }
    inbox_.space_cv.notify_all();  // blocked submitters give up with logic_error
    if (mode == shutdown_mode::drain) {
      auto ready = [this] { return idle(); };
      notifier_.block_until(ready);
    } else {
      collect_queued(unrun);
    }
    stop_.store(true, std::memory_order_seq_cst);
    notifier_.wake_all();
    for (std::size_t i = 0; i < thread_count_; ++i) workers_[i].thread.join();
    // A task that passed the state check just before cancel began may have queued one more.
    if (mode == shutdown_mode::cancel) collect_queued(unrun);
    state_.store(pool_state::stopped, std::memory_order_release);
    joined_ = true;
    return unrun;
  }

  // Shared state, grouped by who writes it.
  std::string name_;
  std::size_t capacity_;
  std::size_t thread_count_ = 0;
  std::unique_ptr<worker[]> workers_;

  alignas(64) inbox_queue inbox_;

  alignas(64) std::atomic<std::uint64_t> submitted_external_{0};
  alignas(64) std::atomic<bool> stop_{false};
  std::atomic<pool_state> state_{pool_state::running};
  std::atomic<std::uint64_t> cancelled_{0};
  std::atomic<std::uint64_t> rejected_{0};
  std::atomic<std::uint64_t> ran_in_caller_{0};
  std::atomic<std::uint64_t> failed_in_caller_{0};  // posted tasks run by the caller that threw

  detail::notifier notifier_;  // parks and wakes workers and outside waiters

  std::mutex error_mutex_;
  std::function<void(std::exception_ptr)> error_handler_;  // guarded by error_mutex_
  std::exception_ptr stored_error_;                        // guarded by error_mutex_

  std::mutex shutdown_mutex_;
  bool joined_ = false;  // guarded by shutdown_mutex_ (and read by the destructor)
};

}  // namespace distkit::inline v0
