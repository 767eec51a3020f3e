// SPDX-License-Identifier: MIT
// distkit/pipeline.hpp: typed stages with ordering modes, filtering, bounded memory and cancellation.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "distkit/detail/error.hpp"
#include "distkit/detail/pipeline_detail.hpp"

namespace distkit::inline v0 {

/// @brief How a stage may be called: one item at a time in source order, one at a time in any
/// order, or on up to `max_concurrency` items at once.
enum class stage_kind : std::uint8_t { serial_in_order, serial_out_of_order, parallel };

/// @brief A stage's execution mode: its kind and how many calls of it may run at once.
struct stage_mode {
  stage_kind kind = stage_kind::parallel;
  std::size_t max_concurrency = std::numeric_limits<std::size_t>::max();
};

/// One call at a time, items in source order (even after parallel stages).
inline constexpr stage_mode serial_in_order{stage_kind::serial_in_order, 1};
/// One call at a time, items in whatever order they arrive.
inline constexpr stage_mode serial_out_of_order{stage_kind::serial_out_of_order, 1};

/// @brief A stage that runs on up to `max_concurrency` items at once (default: no limit other than
/// the pipeline's threads and its cap on items in flight).
/// @throws std::invalid_argument if `max_concurrency` is 0.
inline auto parallel(std::size_t max_concurrency = std::numeric_limits<std::size_t>::max()) -> stage_mode {
  if (max_concurrency == 0) detail::throw_invalid_argument("pipeline", "parallel max_concurrency", "must be >= 1", 0);
  return stage_mode{stage_kind::parallel, max_concurrency};
}

/// @brief Somewhere to run a pipeline's work: `e.post(std::function<void()>)` runs the function
/// once, later, on one of the executor's threads; `e.concurrency()` says how many threads it has.
///
/// A pipeline never blocks an executor thread while it waits for another stage: a posted task
/// carries items through as many stages as it can and returns when none can move, so any
/// executor, even one thread, runs any pipeline to the end. Every posted task must run, and
/// `post` must queue it rather than run it before returning (a worker re-posts itself every 1024
/// batches so that other work on a shared executor gets its turn). An executor that also has
/// `e.defer(task)`, which queues a task behind the work already waiting (as `worker_pool::defer`
/// does), gets the re-posts through it: then a task posted during a long or endless run runs
/// before the run ends, even on a one-thread executor whose `post` from a worker runs newest
/// first. `distkit::worker_pool` meets this with its default `blocking_overflow` policy; its
/// `reject` and `caller_runs` policies do not.
template <class E>
concept pipeline_executor = requires(E& e, std::function<void()> task) {
  e.post(std::move(task));
  { e.concurrency() } -> std::convertible_to<std::size_t>;
};

/// @brief Pipeline-wide settings.
struct pipeline_options {
  /// Cap on items in flight (produced by the source and not yet through the sink or dropped);
  /// like oneTBB's `max_number_of_live_tokens`. Must be >= 1.
  std::size_t max_in_flight = 256;
  /// Threads a pipeline starts for itself when `run()` is given no executor; 0 = one per core.
  std::size_t threads = 0;
  /// Most items one thread moves through a stage per lock acquisition. Larger batches cost fewer
  /// synchronisations per item; smaller ones spread work sooner. Must be >= 1.
  std::size_t max_batch = 32;
};

/// @brief How a run ended when it did not throw.
enum class pipeline_status : std::uint8_t {
  completed,  ///< the source said it was done and every item went through the sink or was dropped
  cancelled,  ///< the stop token fired before that; the items in flight were discarded
};

/// @brief Counters of one stage (index 0 is the source).
struct pipeline_stage_stats {
  std::uint64_t items_in = 0;       ///< items the stage's callable was called with (the source: 0)
  std::uint64_t items_out = 0;      ///< items it passed on (the source: produced; the sink: consumed)
  std::uint64_t items_dropped = 0;  ///< items it returned an empty optional for
  std::size_t peak_buffered = 0;    ///< most items ever waiting in front of the stage
};

/// @brief A snapshot of a pipeline's counters (of the current or last run).
struct pipeline_stats {
  std::vector<pipeline_stage_stats> stages;    ///< [0] the source, then each stage in order
  std::size_t in_flight = 0;                   ///< items in flight now
  std::size_t peak_in_flight = 0;              ///< most items ever in flight (never above the cap)
  std::uint64_t discarded = 0;                 ///< items destroyed unfinished by an error or cancellation
  std::chrono::nanoseconds source_blocked{0};  ///< time the source was ready but every token was in flight
  std::uint64_t source_blocked_events = 0;     ///< how many times that happened
};

namespace detail {
template <class F>
struct source_spec {
  F fn;
};
template <class F>
struct stage_spec {
  stage_mode mode;
  F fn;
};
}  // namespace detail

/// @brief The first stage: `fn()` returns `std::optional<T>`, an empty optional once the stream is
/// done. Called by one thread at a time; the order of its items is "source order".
template <class F>
[[nodiscard]] auto source(F fn) -> detail::source_spec<F> {
  return {std::move(fn)};
}

/// @brief A middle stage: `fn(In&&)` returns the next item (`Out`), or `std::optional<Out>` where
/// an empty optional drops the item (later stages never see it).
template <class F>
[[nodiscard]] auto stage(stage_mode mode, F fn) -> detail::stage_spec<F> {
  return {mode, std::move(fn)};
}

/// @brief The last stage: `fn(In&&)` returns void.
template <class F>
[[nodiscard]] auto sink(stage_mode mode, F fn) -> detail::stage_spec<F> {
  return {mode, std::move(fn)};
}

/// @brief A stream of items through typed stages: a serial source, middle stages that transform or
/// drop items, and a sink; each stage serial in order, serial out of order, or parallel.
///
/// Built by `make_pipeline`, which checks at compile time that each stage accepts what the one
/// before it produces (a mismatch is a `static_assert` naming the stage).
///
/// **Execution.** Items move in batches (up to `max_batch`) under one mutex: a worker takes the
/// most downstream batch that may run, calls the stage's callable on each item without the lock,
/// and hands the results to the next stage's buffer. It never waits for another stage: when no
/// stage can run, it returns to its executor, and a worker that makes work available posts
/// another (up to the executor's concurrency). So a pipeline runs to the end on an executor with
/// one thread, whatever its number of stages. Without an executor it starts `threads` threads
/// for the run.
///
/// **Memory bound.** The source is called only while fewer than `max_in_flight` items are in
/// flight; an item leaves flight when the sink returns or when it is dropped (a dropped item that
/// an in-order stage further on must step over travels on as an empty hole, still counted). So at
/// any time at most `max_in_flight` items exist between the source's return and the sink's, in
/// buffers or inside calls. Each stage's input buffer is a ring of `max_in_flight` slots (rounded
/// up to a power of two) allocated once per run, and each worker holds at most one batch; nothing
/// else grows with the stream. A slow stage therefore stops the source (the time it waits is
/// `stats().source_blocked`) instead of growing memory.
///
/// **Ordering.** A `serial_in_order` stage sees items in source order, after any number of
/// parallel or out-of-order stages; out-of-order and parallel stages see them as they come.
///
/// **Errors.** The first exception from any callable stops the source; items in flight are
/// discarded (calls already running finish, no further stage is called for any item; they are
/// counted in `stats().discarded`), and `run()`/`wait()` rethrow that exception. Later
/// exceptions are ignored.
///
/// **Cancellation.** When the `std::stop_token` given to `run()`/`start()` is triggered, the source
/// is not called again, items in flight are discarded as for an error (each worker checks between
/// items), and `run()` returns `pipeline_status::cancelled` instead of throwing. A callable that
/// blocks must watch the token itself.
///
/// @tparam SourceFn  `() -> std::optional<T0>`.
/// @tparam StageFns  `(T(i-1)&&) -> Ti` or `-> std::optional<Ti>`; the last `(T(k-1)&&) -> void`.
///
/// **Thread safety:** `stats()` may be called at any time from any thread; `run`/`start`/`wait`
/// from one thread at a time. A serial stage's callable is never called concurrently with itself
/// (calls are ordered by the pipeline's mutex); a parallel one is. `run()` blocks its caller, so
/// do not call it from a thread of the executor it runs on.
/// **Complexity:** per batch, one lock round-trip and an O(number of stages) scan for work.
///
/// @code
/// int next = 0;
/// long total = 0;
/// auto p = distkit::make_pipeline(
///     distkit::source([&]() -> std::optional<int> { return next < 100 ? std::optional(next++) : std::nullopt; }),
///     distkit::stage(distkit::parallel(), [](int x) -> std::optional<int> {
///       return x % 3 ? std::optional(x * x) : std::nullopt; }),
///     distkit::sink(distkit::serial_in_order, [&](int x) { total += x; }));
/// p.run();
/// @endcode
template <class SourceFn, class... StageFns>
class pipeline {
  using source_check = detail::source_check<SourceFn>;
  using chain = detail::chain_check<1, typename source_check::output, detail::type_list<>, StageFns...>;

  template <class List>
  struct unpack;
  template <class... Ts>
  struct unpack<detail::type_list<Ts...>> {
    using buffers = std::tuple<detail::stage_buffer<Ts>...>;
    using batches = std::tuple<std::vector<detail::pipeline_entry<Ts>>...>;
  };
  using buffers_t = typename unpack<typename chain::inputs>::buffers;
  using batches_t = typename unpack<typename chain::inputs>::batches;

 public:
  /// Number of stages after the source (the sink included).
  static constexpr std::size_t stage_count = sizeof...(StageFns);
  static_assert(stage_count >= 1, "distkit::make_pipeline: a pipeline needs a source and at least a sink");

  /// @throws std::invalid_argument if `max_in_flight` or `max_batch` is 0.
  pipeline(pipeline_options options, detail::source_spec<SourceFn> src, detail::stage_spec<StageFns>... stages)
      : options_(options), source_fn_(std::move(src.fn)), fns_(std::move(stages.fn)...), modes_{stages.mode...} {
    if (options_.max_in_flight == 0) {
      detail::throw_invalid_argument("pipeline", "max_in_flight", "must be >= 1", options_.max_in_flight);
    }
    if (options_.max_batch == 0) {
      detail::throw_invalid_argument("pipeline", "max_batch", "must be >= 1", options_.max_batch);
    }
    for (std::size_t j = 0; j < stage_count; ++j) {
      if (modes_[j].max_concurrency == 0) {
        detail::throw_invalid_argument("pipeline", "max_concurrency", "must be >= 1", 0);
      }
      if (modes_[j].kind != stage_kind::parallel) modes_[j].max_concurrency = 1;
    }
    // ordered_after_[j]: some stage after j is in order, so a drop at j must leave a hole.
    bool ordered = false;
    for (std::size_t j = stage_count; j-- > 0;) {
      ordered_after_[j] = ordered;
      ordered = ordered || modes_[j].kind == stage_kind::serial_in_order;
    }
    stats_.resize(stage_count + 1);
  }

  pipeline(const pipeline&) = delete;
  auto operator=(const pipeline&) -> pipeline& = delete;

  /// Cancels a run still in progress and waits for it (its exception, if any, is swallowed).
  ~pipeline() {
    bool running = false;
    {
      std::lock_guard lock(mutex_);
      running = running_;
    }
    if (running) {
      stopping_.store(true, std::memory_order_relaxed);
      try {
        (void)wait();
      } catch (...) {  // a destructor must not throw: the error was the caller's to collect
      }
    }
  }

  /// @brief Runs the stream to its end on `options.threads` threads of the pipeline's own.
  /// @returns `completed`, or `cancelled` if `stop` fired first.
  /// @throws the first exception a callable threw; `std::logic_error` if already running.
  auto run(std::stop_token stop = {}) -> pipeline_status {
    start(std::move(stop));
    return wait();
  }

  /// @brief Runs the stream to its end on `executor` (which must outlive the run), blocking the caller.
  template <pipeline_executor Executor>
  auto run(Executor& executor, std::stop_token stop = {}) -> pipeline_status {
    start(executor, std::move(stop));
    return wait();
  }

  /// @brief Starts a run on the pipeline's own threads and returns; `wait()` joins it.
  void start(std::stop_token stop = {}) {
    std::size_t threads = options_.threads;
    if (threads == 0) threads = std::max<std::size_t>(1, std::thread::hardware_concurrency());
    threads = std::min(threads, max_useful_workers());
    auto own = std::make_unique<detail::pipeline_threads>(threads);
    auto* raw = own.get();
    auto post = [raw](std::function<void()> task) { raw->post(std::move(task)); };
    begin(threads, post, post, std::move(stop), std::move(own));
  }

  /// @brief Starts a run on `executor` (which must outlive the run) and returns; `wait()` joins it.
  template <pipeline_executor Executor>
  void start(Executor& executor, std::stop_token stop = {}) {
    const std::size_t concurrency = std::max<std::size_t>(1, static_cast<std::size_t>(executor.concurrency()));
    std::function<void(std::function<void()>)> post = [&executor](std::function<void()> task) {
      executor.post(std::move(task));
    };
    std::function<void(std::function<void()>)> yield = post;
    if constexpr (requires(std::function<void()> task) { executor.defer(std::move(task)); }) {
      yield = [&executor](std::function<void()> task) { (void)executor.defer(std::move(task)); };
    }
    begin(concurrency, std::move(post), std::move(yield), std::move(stop), nullptr);
  }

  /// @brief Waits for the run started by `start()` to end.
  /// @returns `completed` or `cancelled`.
  /// @throws the first exception a callable threw; `std::logic_error` if nothing was started.
  auto wait() -> pipeline_status {
    std::unique_lock lock(mutex_);
    if (!running_) detail::throw_logic_error("pipeline", "wait() called with no run in progress");
    done_cv_.wait(lock, [this] { return done_; });
    running_ = false;
    std::exception_ptr error = std::exchange(error_, nullptr);
    const bool completed = completed_;
    lock.unlock();
    stop_callback_.reset();
    threads_.reset();  // joins the pipeline's own threads, if it started any
    if (error) std::rethrow_exception(error);
    return completed ? pipeline_status::completed : pipeline_status::cancelled;
  }

  /// @brief The counters of the current run, or of the last one.
  /// **Thread safety:** safe at any time; takes the pipeline's mutex briefly.
  [[nodiscard]] auto stats() const -> pipeline_stats {
    std::lock_guard lock(mutex_);
    pipeline_stats s;
    s.stages = stats_;
    s.in_flight = in_flight_ - source_reserved_;  // tokens the source holds for items not yet made
    s.peak_in_flight = peak_in_flight_;
    s.discarded = discarded_;
    s.source_blocked = source_blocked_;
    if (source_blocked_now_) s.source_blocked += std::chrono::steady_clock::now() - source_blocked_since_;
    s.source_blocked_events = source_blocked_events_;
    return s;
  }

  [[nodiscard]] auto options() const noexcept -> const pipeline_options& { return options_; }

 private:
  static constexpr int no_work = -2;
  static constexpr int source_work = -1;

  // The most workers that can ever be busy at once: the source plus each stage's limit.
  [[nodiscard]] auto max_useful_workers() const noexcept -> std::size_t {
    std::size_t n = 1;
    for (const auto& m : modes_) {
      n = (m.max_concurrency > options_.max_in_flight) ? options_.max_in_flight + n : n + m.max_concurrency;
    }
    return std::min(n, options_.max_in_flight + 1);
  }

  void begin(std::size_t concurrency, std::function<void(std::function<void()>)> post,
             std::function<void(std::function<void()>)> yield, std::stop_token stop,
             std::unique_ptr<detail::pipeline_threads> own) {
    {
      std::lock_guard lock(mutex_);
      if (running_) detail::throw_logic_error("pipeline", "start() called while a run is in progress");
      running_ = true;
      done_ = false;
      completed_ = false;
      error_ = nullptr;
      const std::size_t ring = detail::round_up_pow2(options_.max_in_flight);
      reset_buffers(ring, std::make_index_sequence<stage_count>{});
      active_.fill(0);
      next_seq_.fill(0);
      source_busy_ = false;
      source_done_ = false;
      source_exhausted_ = false;
      source_seq_ = 0;
      in_flight_ = 0;
      source_reserved_ = 0;
      peak_in_flight_ = 0;
      discarded_ = 0;
      source_blocked_ = std::chrono::nanoseconds{0};
      source_blocked_now_ = false;
      source_blocked_events_ = 0;
      std::fill(stats_.begin(), stats_.end(), pipeline_stage_stats{});
      stopping_.store(false, std::memory_order_relaxed);
      target_workers_ = std::max<std::size_t>(1, std::min(concurrency, max_useful_workers()));
      workers_ = 1;
      post_ = std::move(post);
      yield_ = std::move(yield);
    }
    threads_ = std::move(own);
    stop_callback_.emplace(std::move(stop), stop_request{this});
    try {
      post_([this] { work(); });
    } catch (...) {
      // The executor refused the first task: nothing runs, the run ends here.
      std::lock_guard lock(mutex_);
      running_ = false;
      workers_ = 0;
      done_ = true;
      stop_callback_.reset();
      threads_.reset();
      throw;
    }
  }

  struct stop_request {
    pipeline* self;
    void operator()() const noexcept { self->stopping_.store(true, std::memory_order_relaxed); }
  };

  template <std::size_t... J>
  void reset_buffers(std::size_t ring, std::index_sequence<J...>) {
    (std::get<J>(buffers_).reset(ring, modes_[J].kind == stage_kind::serial_in_order), ...);
  }

  // ---- the worker: runs batches until nothing can move --------------------------------------------

  struct batch_result {
    std::size_t called = 0;     // callable invocations that returned
    std::size_t passed = 0;     // items handed on (or consumed by the sink)
    std::size_t dropped = 0;    // empty optionals returned
    std::size_t discarded = 0;  // items destroyed unfinished (stop, error)
    std::size_t holes = 0;      // holes created or forwarded
    bool exhausted = false;     // the source said it was done
    std::exception_ptr error;
  };

  void work() {
    batches_t batches;
    std::unique_lock lock(mutex_);
    // A worker re-posts itself after this many batches so that other tasks of a shared executor
    // get their turn.
    std::size_t budget = 1024;
    for (;;) {
      std::size_t count = 0;
      const int picked = pick(batches, count);
      if (picked == no_work) break;
      bool spawn = false;
      if (workers_ < target_workers_ && any_runnable()) {
        ++workers_;
        spawn = true;
      }
      lock.unlock();
      if (spawn) post_worker();
      batch_result result;
      if (picked == source_work) {
        run_source(batches, count, result);
      } else {
        detail::visit_index<stage_count>(static_cast<std::size_t>(picked),
                                         [&](auto j) { run_stage<decltype(j)::value>(batches, result); });
      }
      lock.lock();
      if (picked == source_work) {
        finish_source(batches, count, result);
      } else {
        detail::visit_index<stage_count>(static_cast<std::size_t>(picked),
                                         [&](auto j) { finish_stage<decltype(j)::value>(batches, result); });
      }
      if (--budget == 0) {
        if (repost_self(lock)) return;
        budget = 1024;
      }
    }
    retire(lock);
  }

  void post_worker() noexcept {
    try {
      post_([this] { work(); });
    } catch (...) {
      // No room for another worker: the ones running carry on (there is at least this one).
      std::unique_lock lock(mutex_);
      retire(lock);
    }
  }

  // Hands this worker's place to a fresh task queued behind the executor's waiting work (through
  // `defer` when the executor has it); false if the executor refused (keep going).
  auto repost_self(std::unique_lock<std::mutex>& lock) -> bool {
    lock.unlock();
    try {
      yield_([this] { work(); });
      return true;
    } catch (...) {
      lock.lock();
      return false;
    }
  }

  // A worker leaves. The last one out ends the run: by construction, when no worker is left,
  // either the stream is done or it was stopped (some stage could otherwise still move).
  void retire(std::unique_lock<std::mutex>& lock) {
    DISTKIT_ASSERT(workers_ > 0);
    if (--workers_ != 0) return;
    if (stopping_.load(std::memory_order_relaxed) || error_) {
      discarded_ += clear_buffers(std::make_index_sequence<stage_count>{});
      in_flight_ = 0;
    } else {
      DISTKIT_ASSERT(source_done_ && in_flight_ == 0);
    }
    note_source_unblocked();
    completed_ = !error_ && source_exhausted_ && discarded_ == 0 && in_flight_ == 0;
    done_ = true;
    done_cv_.notify_all();  // under the lock: the pipeline may be destroyed once it is released
    lock.unlock();
  }

  template <std::size_t... J>
  auto clear_buffers(std::index_sequence<J...>) -> std::size_t {
    return (std::size_t{0} + ... + std::get<J>(buffers_).clear());
  }

  // ---- choosing work (under the lock) -------------------------------------------------------------

  template <std::size_t J>
  [[nodiscard]] auto runnable() const -> bool {
    const auto& buffer = std::get<J>(buffers_);
    if (active_[J] >= modes_[J].max_concurrency) return false;
    if (modes_[J].kind == stage_kind::serial_in_order) return buffer.ready(next_seq_[J]);
    return buffer.size() != 0;
  }

  [[nodiscard]] auto source_runnable() const -> bool {
    return !source_done_ && !source_busy_ && in_flight_ < options_.max_in_flight;
  }

  template <std::size_t... J>
  [[nodiscard]] auto any_stage_runnable(std::index_sequence<J...>) const -> bool {
    return (runnable<J>() || ...);
  }

  [[nodiscard]] auto any_runnable() const -> bool {
    if (stopping_.load(std::memory_order_relaxed)) return false;
    return source_runnable() || any_stage_runnable(std::make_index_sequence<stage_count>{});
  }

  template <std::size_t J>
  auto try_take(batches_t& batches) -> bool {
    if (!runnable<J>()) return false;
    auto& buffer = std::get<J>(buffers_);
    auto& out = std::get<J>(batches);
    if (modes_[J].kind == stage_kind::serial_in_order) {
      buffer.take_ordered(out, next_seq_[J], options_.max_batch);
    } else if (modes_[J].kind == stage_kind::serial_out_of_order) {
      buffer.take_fifo(out, options_.max_batch);
    } else {
      // Share what is waiting among the workers, so a batch does not serialise a parallel stage.
      const std::size_t share = (buffer.size() + target_workers_ - 1) / target_workers_;
      buffer.take_fifo(out, std::clamp<std::size_t>(share, 1, options_.max_batch));
    }
    ++active_[J];
    return true;
  }

  auto pick_stage(batches_t& batches) -> int {
    // Most downstream first: finishing items frees tokens and buffer slots.
    for (std::size_t j = stage_count; j-- > 0;) {
      if (detail::visit_index<stage_count>(j, [&](auto k) { return try_take<decltype(k)::value>(batches); })) {
        return static_cast<int>(j);
      }
    }
    return no_work;
  }

  auto pick(batches_t& batches, std::size_t& count) -> int {
    if (stopping_.load(std::memory_order_relaxed)) return no_work;
    const int picked = pick_stage(batches);
    if (picked != no_work) return picked;
    if (source_done_ || source_busy_) return no_work;
    if (in_flight_ >= options_.max_in_flight) {
      note_source_blocked();
      return no_work;
    }
    // Leave tokens for a second source batch so the stages downstream are fed while this one runs.
    const std::size_t free = options_.max_in_flight - in_flight_;
    count = std::min({free, options_.max_batch, std::max<std::size_t>(1, options_.max_in_flight / 2)});
    in_flight_ += count;
    source_reserved_ = count;
    source_busy_ = true;
    return source_work;
  }

  void note_source_blocked() {
    if (source_blocked_now_) return;
    source_blocked_now_ = true;
    ++source_blocked_events_;
    source_blocked_since_ = std::chrono::steady_clock::now();
  }

  void note_source_unblocked() {
    if (!source_blocked_now_) return;
    source_blocked_now_ = false;
    source_blocked_ += std::chrono::steady_clock::now() - source_blocked_since_;
  }

  void release(std::size_t tokens) {
    DISTKIT_ASSERT(in_flight_ >= tokens);
    in_flight_ -= tokens;
    if (tokens != 0) note_source_unblocked();
  }

  // ---- running a batch (without the lock) ---------------------------------------------------------

  void run_source(batches_t& batches, std::size_t count, batch_result& result) {
    auto& out = std::get<0>(batches);
    std::uint64_t seq = source_seq_;  // only the busy source worker touches it
    try {
      for (std::size_t i = 0; i < count; ++i) {
        if (stopping_.load(std::memory_order_relaxed)) break;
        auto item = std::invoke(source_fn_);
        if (!item) {
          result.exhausted = true;
          break;
        }
        out.push_back(detail::pipeline_entry<typename source_check::output>{seq++, std::move(*item)});
        ++result.passed;
      }
    } catch (...) {
      result.error = std::current_exception();
    }
  }

  template <std::size_t J>
  void run_stage(batches_t& batches, batch_result& result) {
    using check = typename chain_at<J>::check;
    constexpr bool last = J + 1 == stage_count;
    auto& in = std::get<J>(batches);
    auto& fn = std::get<J>(fns_);
    const bool keep_holes = ordered_after_[J];
    std::size_t i = 0;
    try {
      for (; i < in.size(); ++i) {
        if (stopping_.load(std::memory_order_relaxed)) break;
        auto& e = in[i];
        if constexpr (last) {
          if (e.value) {
            std::invoke(fn, static_cast<typename check::argument>(*e.value));
            ++result.called;
            ++result.passed;
          }
        } else {
          auto& out = std::get<J + 1>(batches);
          using out_item = typename check::output;
          if (!e.value) {
            if (keep_holes) out.push_back(detail::pipeline_entry<out_item>{e.seq, std::nullopt});
            continue;
          }
          if constexpr (check::filters) {
            auto r = std::invoke(fn, static_cast<typename check::argument>(*e.value));
            ++result.called;
            if (r) {
              out.push_back(detail::pipeline_entry<out_item>{e.seq, std::move(*r)});
              ++result.passed;
            } else {
              ++result.dropped;
              if (keep_holes) out.push_back(detail::pipeline_entry<out_item>{e.seq, std::nullopt});
            }
          } else {
            out.push_back(detail::pipeline_entry<out_item>{
                e.seq, std::invoke(fn, static_cast<typename check::argument>(*e.value))});
            ++result.called;
            ++result.passed;
          }
        }
      }
    } catch (...) {
      result.error = std::current_exception();
      ++result.discarded;  // the item whose call threw
      ++i;
    }
    for (; i < in.size(); ++i) {
      if (in[i].value) ++result.discarded;
    }
  }

  template <std::size_t J>
  struct chain_at {
    template <std::size_t N, class C>
    struct walk {
      using type = typename walk<N - 1, typename C::next>::type;
    };
    template <class C>
    struct walk<0, C> {
      using type = C;
    };
    using check = typename walk<J, chain>::type::check;
  };

  // ---- handing results on (under the lock) -------------------------------------------------------

  void fail(std::exception_ptr error) {
    if (!error_) error_ = std::move(error);
    stopping_.store(true, std::memory_order_relaxed);
  }

  template <class Vec>
  auto discard(Vec& items) -> std::size_t {
    std::size_t n = 0;
    for (auto& e : items) n += e.value ? 1 : 0;
    return n;
  }

  void finish_source(batches_t& batches, std::size_t count, batch_result& result) {
    auto& out = std::get<0>(batches);
    source_busy_ = false;
    source_reserved_ = 0;
    source_seq_ += out.size();
    if (result.exhausted) {
      source_done_ = true;
      source_exhausted_ = true;
    }
    if (result.error) fail(result.error);
    stats_[0].items_out += result.passed;
    release(count - out.size());  // tokens reserved but not used
    if (stopping_.load(std::memory_order_relaxed)) {
      discarded_ += discard(out);
      release(out.size());
      // Once stopped, the source is never called again.
      source_done_ = true;
    } else {
      deposit<0>(out);
      peak_in_flight_ = std::max(peak_in_flight_, in_flight_);
      if (!source_done_ && in_flight_ >= options_.max_in_flight) note_source_blocked();
    }
    out.clear();
  }

  template <std::size_t J, class Vec>
  void deposit(Vec& items) {
    auto& buffer = std::get<J>(buffers_);
    for (auto& e : items) buffer.push(std::move(e));
    stats_[J + 1].peak_buffered = std::max(stats_[J + 1].peak_buffered, buffer.size());
  }

  template <std::size_t J>
  void finish_stage(batches_t& batches, batch_result& result) {
    constexpr bool last = J + 1 == stage_count;
    auto& in = std::get<J>(batches);
    --active_[J];
    auto& st = stats_[J + 1];
    st.items_in += result.called + (result.error ? 1 : 0);
    st.items_out += result.passed;
    st.items_dropped += result.dropped;
    discarded_ += result.discarded;
    if (result.error) fail(result.error);
    if constexpr (last) {
      release(in.size());
    } else {
      auto& out = std::get<J + 1>(batches);
      release(in.size() - out.size());
      if (stopping_.load(std::memory_order_relaxed)) {
        discarded_ += discard(out);
        release(out.size());
      } else {
        deposit<J + 1>(out);
      }
      out.clear();
    }
    in.clear();
  }

  // ---- state ---------------------------------------------------------------------------------------

  pipeline_options options_;
  SourceFn source_fn_;
  std::tuple<StageFns...> fns_;
  std::array<stage_mode, stage_count> modes_;
  std::array<bool, stage_count> ordered_after_{};

  mutable std::mutex mutex_;
  std::condition_variable done_cv_;
  std::atomic<bool> stopping_{false};  // read between items without the lock

  // Under mutex_:
  buffers_t buffers_;
  std::array<std::size_t, stage_count> active_{};      // calls of each stage running now
  std::array<std::uint64_t, stage_count> next_seq_{};  // in-order stages: the next item they take
  bool source_busy_ = false;
  bool source_done_ = false;       // the source will not be called again
  bool source_exhausted_ = false;  // ...because it said the stream was done
  std::uint64_t source_seq_ = 0;
  std::size_t in_flight_ = 0;        // items in flight plus the source's reserved tokens
  std::size_t source_reserved_ = 0;  // tokens taken by the running source batch
  std::size_t workers_ = 0;
  std::size_t target_workers_ = 1;
  bool running_ = false;
  bool done_ = false;
  bool completed_ = false;
  std::exception_ptr error_;
  std::vector<pipeline_stage_stats> stats_;
  std::size_t peak_in_flight_ = 0;
  std::uint64_t discarded_ = 0;
  std::chrono::nanoseconds source_blocked_{0};
  bool source_blocked_now_ = false;
  std::chrono::steady_clock::time_point source_blocked_since_{};
  std::uint64_t source_blocked_events_ = 0;

  std::function<void(std::function<void()>)> post_;
  std::function<void(std::function<void()>)> yield_;  // re-posts a worker behind waiting work
  std::optional<std::stop_callback<stop_request>> stop_callback_;
  std::unique_ptr<detail::pipeline_threads> threads_;
};

/// @brief Builds a pipeline from a source, middle stages and a sink, checking their types.
///
/// @code
/// auto p = distkit::make_pipeline({.max_in_flight = 64}, distkit::source(read_line),
///                                 distkit::stage(distkit::parallel(), parse), distkit::sink(distkit::serial_in_order,
///                                 write));
/// @endcode
template <class SourceFn, class... StageFns>
[[nodiscard]] auto make_pipeline(pipeline_options options, detail::source_spec<SourceFn> src,
                                 detail::stage_spec<StageFns>... stages) -> pipeline<SourceFn, StageFns...> {
  return pipeline<SourceFn, StageFns...>(options, std::move(src), std::move(stages)...);
}

/// @brief Builds a pipeline with the default options.
template <class SourceFn, class... StageFns>
[[nodiscard]] auto make_pipeline(detail::source_spec<SourceFn> src, detail::stage_spec<StageFns>... stages)
    -> pipeline<SourceFn, StageFns...> {
  return pipeline<SourceFn, StageFns...>(pipeline_options{}, std::move(src), std::move(stages)...);
}

}  // namespace distkit::inline v0
