// SPDX-License-Identifier: MIT
// distkit/circuit_breaker.hpp: a circuit breaker with resilience4j's state machine, count- and
// time-based sliding windows and a lock-free, allocation-free closed-state path.
//
// Semantics follow resilience4j's CircuitBreaker (defaults, thresholds compared with >=, slow
// calls strictly longer than the threshold, the minimum number of calls capped by a count
// window's size, the half-open evaluation, OPEN -> HALF_OPEN on the first call strictly after the
// wait). Where distkit differs, on purpose:
//   * a result recorded for an older state (an older *generation*) is ignored, as in
//     sony/gobreaker; resilience4j records it into whatever state is current;
//   * `transition_to` the current state does nothing (resilience4j swaps in a fresh state of the
//     same kind), except OPEN -> OPEN, which restarts the wait and counts a trip as resilience4j
//     does; the edges resilience4j refuses (CLOSED -> HALF_OPEN, METRICS_ONLY -> OPEN and
//     METRICS_ONLY -> HALF_OPEN) throw `std::logic_error`;
//   * `metrics()` carries counts and rates; call durations reach a metrics policy that asks for
//     them (`on_call(outcome, elapsed)`, as `breaker_registry_metrics` does), not the snapshot;
//   * there is no timer thread: "automatic" time-driven transitions (OPEN -> HALF_OPEN when
//     enabled, HALF_OPEN -> OPEN after `max_wait_duration_in_half_open_state`) happen on the
//     first observation after they fall due (`try_acquire`, `call`, `state()`, `metrics()`);
//   * fast successes may be recorded in small per-thread-stripe batches once the window has its
//     minimum number of calls (see `success_batch`); a fast success can never trip the breaker
//     there, so single-threaded every transition happens on exactly the same call as in
//     resilience4j, and with several threads a failure is judged over a window that may hold up
//     to `success_batch * 16` older outcomes instead of the newest successes.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "distkit/breaker_window.hpp"
#include "distkit/clock.hpp"
#include "distkit/detail/breaker_words.hpp"
#include "distkit/detail/error.hpp"
#include "distkit/detail/saturating_time.hpp"

namespace distkit::inline v0 {

/// @brief The states of resilience4j's circuit-breaker state machine.
enum class breaker_state : std::uint8_t {
  closed,        ///< calls flow; outcomes are recorded; thresholds may trip it to `open`
  open,          ///< calls are refused until the wait in open state has elapsed
  half_open,     ///< a limited number of probe calls decide between `closed` and `open`
  disabled,      ///< calls always flow; nothing is recorded (set by `disable()`)
  forced_open,   ///< calls are always refused (set by `force_open()`)
  metrics_only,  ///< calls always flow; outcomes are recorded but never trip the breaker
};

/// @brief The name of a state, in resilience4j's spelling (`"CLOSED"`, `"HALF_OPEN"`...).
[[nodiscard]] constexpr auto to_string(breaker_state s) noexcept -> std::string_view {
  switch (s) {
    case breaker_state::closed:
      return "CLOSED";
    case breaker_state::open:
      return "OPEN";
    case breaker_state::half_open:
      return "HALF_OPEN";
    case breaker_state::disabled:
      return "DISABLED";
    case breaker_state::forced_open:
      return "FORCED_OPEN";
    case breaker_state::metrics_only:
      return "METRICS_ONLY";
  }
  return "UNKNOWN";
}

/// @brief Why a transition happened.
enum class transition_cause : std::uint8_t {
  failure_rate_exceeded,    ///< failure rate >= failure_rate_threshold
  slow_call_rate_exceeded,  ///< slow-call rate >= slow_call_rate_threshold
  both_rates_exceeded,      ///< both at once
  probes_passed,            ///< half-open probes below both thresholds: back to closed
  wait_elapsed,             ///< the wait in open state is over: half-open
  half_open_timeout,        ///< max_wait_duration_in_half_open_state elapsed: back to open
  manual,                   ///< transition_to(), force_open(), disable()
  reset,                    ///< reset()
};

/// @brief A state-transition event, delivered to listeners after the transition is published.
struct state_transition {
  breaker_state from;
  breaker_state to;
  transition_cause cause;
  /// Increases by one per transition: listeners called from different threads can order events.
  std::uint64_t generation;
};

/// @brief A snapshot of a breaker's metrics (resilience4j's `CircuitBreaker.Metrics`).
///
/// In `open`, the figures are those of the state it came from (the closed window, whose
/// time-based buckets keep expiring, or the half-open probes), as in resilience4j.
struct breaker_stats {
  breaker_state state = breaker_state::closed;
  float failure_rate = -1.0F;    ///< percent; -1 while fewer than the minimum number of calls
  float slow_call_rate = -1.0F;  ///< percent; -1 while fewer than the minimum number of calls
  std::uint64_t buffered_calls = 0;
  std::uint64_t failed_calls = 0;
  std::uint64_t slow_calls = 0;
  std::uint64_t successful_calls = 0;
  std::uint64_t not_permitted_calls = 0;  ///< refused since the current state's metrics began
};
/// The former name of `breaker_stats` (`_stats`: what a caller reads; `_metrics`: a metrics policy).
using breaker_metrics [[deprecated("use distkit::breaker_stats")]] = breaker_stats;

/// @brief Thrown by `circuit_breaker::call` when the breaker refuses the call.
class circuit_open_error : public std::runtime_error {
 public:
  explicit circuit_open_error(breaker_state state)
      : std::runtime_error(std::string("distkit::circuit_breaker: call not permitted, state ") +
                           std::string(to_string(state))),
        state_(state) {}
  /// The state that refused the call (`open`, `half_open` with no probe left, or `forced_open`).
  [[nodiscard]] auto state() const noexcept -> breaker_state { return state_; }

 private:
  breaker_state state_;
};

/// @brief The configuration of a `circuit_breaker`, with resilience4j's parameters and defaults.
///
/// Use designated initialisers: `{.failure_rate_threshold = 25, .sliding_window_size = 20}`.
/// Whether `sliding_window_size` counts calls or seconds is decided by the `Window` policy.
struct circuit_breaker_options {
  /// Percent in (0, 100]: at or above it, the breaker opens.
  float failure_rate_threshold = 50.0F;
  /// Percent in (0, 100]: at or above it, the breaker opens.
  float slow_call_rate_threshold = 100.0F;
  /// A call strictly longer than this is slow. Positive.
  std::chrono::nanoseconds slow_call_duration_threshold = std::chrono::seconds(60);
  /// Rates are computed only once the window holds this many calls (>= 1). A count window caps
  /// it at its size, as resilience4j does; a time window does not.
  std::uint32_t minimum_number_of_calls = 100;
  /// Calls (`count_window`, <= 262,144) or seconds (`time_window`, <= 86,400). >= 1.
  std::uint32_t sliding_window_size = 100;
  /// Probes allowed in half-open, 1..65,535. The probes are judged once
  /// min(minimum_number_of_calls, this) of them have reported.
  std::uint32_t permitted_number_of_calls_in_half_open_state = 10;
  /// Wait in open state before probing. Positive.
  std::chrono::nanoseconds wait_duration_in_open_state = std::chrono::seconds(60);
  /// Each consecutive trip without closing in between multiplies the wait by this (>= 1;
  /// 1 keeps it constant), as resilience4j's exponential-backoff interval function.
  double wait_duration_multiplier = 1.0;
  /// Cap of the growing wait; 0 means no cap. When set, >= wait_duration_in_open_state.
  std::chrono::nanoseconds max_wait_duration_in_open_state = std::chrono::nanoseconds(0);
  /// When true, OPEN -> HALF_OPEN happens on any observation after the wait (`state()`,
  /// `metrics()`, a call); when false, only a call attempt moves it (resilience4j's default).
  bool automatic_transition_from_open_to_half_open_enabled = false;
  /// Half-open longer than this goes back to open; 0 waits for the probes forever. >= 0.
  std::chrono::nanoseconds max_wait_duration_in_half_open_state = std::chrono::nanoseconds(0);
  /// Decides whether an exception from the protected call is a failure (true) or a success.
  /// Empty: every exception is a failure. Consulted after `ignore_exception`.
  std::function<bool(const std::exception_ptr&)> record_exception{};
  /// Exceptions for which it returns true are neither failures nor successes: the permit is
  /// released (resilience4j's ignoreExceptions). Empty: nothing is ignored.
  std::function<bool(const std::exception_ptr&)> ignore_exception{};
  /// Fast successes are batched per thread stripe, this many at a time, once the window holds
  /// its minimum number of calls; 1 records every outcome at once. 1..65,535.
  std::uint32_t success_batch = 16;
  /// Where half-open goes when `max_wait_duration_in_half_open_state` ends before the probes
  /// decide: `open` (the default) or `closed` (resilience4j's transitionToStateAfterWaitDuration).
  breaker_state transition_to_state_after_wait_duration = breaker_state::open;
  /// The state a new breaker starts in (resilience4j's initialState). Any state but `closed` is
  /// entered as the breaker's first transition (generation 1, cause `manual`, before any
  /// listener exists): `open` starts its first wait, `half_open` its probes.
  breaker_state initial_state = breaker_state::closed;
};
/// The former name of `circuit_breaker_options` (`_options`: configuration).
using circuit_breaker_config [[deprecated("use distkit::circuit_breaker_options")]] = circuit_breaker_options;

/// @brief An expected-like result of `circuit_breaker::try_call`: the callable's value, or the
/// state that refused the call.
template <class T>
class call_result {
 public:
  explicit call_result(breaker_state refused_by) : refused_by_(refused_by) {}
  template <class U>
  explicit call_result(std::in_place_t, U&& value) : value_(std::in_place, std::forward<U>(value)) {}

  [[nodiscard]] auto has_value() const noexcept -> bool { return value_.has_value(); }
  explicit operator bool() const noexcept { return has_value(); }
  /// The value; throws `circuit_open_error` when the call was refused.
  [[nodiscard]] auto value() & -> T& {
    if (!value_) throw circuit_open_error(refused_by_);
    return *value_;
  }
  [[nodiscard]] auto value() && -> T {
    if (!value_) throw circuit_open_error(refused_by_);
    return std::move(*value_);
  }
  [[nodiscard]] auto operator*() & noexcept -> T& { return *value_; }
  [[nodiscard]] auto operator->() noexcept -> T* { return &*value_; }
  /// The refusing state (meaningful when `!has_value()`).
  [[nodiscard]] auto refused_by() const noexcept -> breaker_state { return refused_by_; }

 private:
  std::optional<T> value_;
  breaker_state refused_by_ = breaker_state::closed;
};

template <>
class call_result<void> {
 public:
  call_result() = default;
  explicit call_result(breaker_state refused_by) : ok_(false), refused_by_(refused_by) {}
  [[nodiscard]] auto has_value() const noexcept -> bool { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  void value() const {
    if (!ok_) throw circuit_open_error(refused_by_);
  }
  [[nodiscard]] auto refused_by() const noexcept -> breaker_state { return refused_by_; }

 private:
  bool ok_ = true;
  breaker_state refused_by_ = breaker_state::closed;
};

namespace detail {

[[noreturn]] DISTKIT_COLD inline void throw_circuit_open(breaker_state state) { throw circuit_open_error(state); }

// A small per-thread number picking the thread's batch stripe (constant-initialised, so reading
// it is a plain TLS load).
inline auto breaker_thread_index() noexcept -> unsigned {
  static std::atomic<unsigned> next{0};
  static thread_local unsigned index = 0;
  if (DISTKIT_UNLIKELY(index == 0)) index = next.fetch_add(1, std::memory_order_relaxed) + 1;
  return index;
}

}  // namespace detail

/// @brief What a breaker tells its metrics policy: each recorded call's outcome, each ignored
/// exception, each refusal and each transition. Every hook is `noexcept` (it runs on the call
/// path, and a transition's runs under the breaker's transition lock).
///
/// A policy that wants call durations declares `on_call(call_outcome, std::chrono::nanoseconds)`
/// and `on_ignored(std::chrono::nanoseconds)` (noexcept) instead of the one-argument hooks: the breaker then
/// passes each call's `elapsed` as recorded (negative counts as 0, longer than 2^62 ns, about
/// 146 years, as 2^62 ns). A policy without them never pays for the duration.
template <class M>
concept breaker_metrics_policy = requires(M& m, call_outcome outcome, breaker_state state,
                                          const state_transition& event, std::chrono::nanoseconds elapsed) {
  // The two-argument hook when the policy has one (then it must be noexcept), else the other.
  requires(requires {
    { m.on_call(outcome, elapsed) } noexcept;
  } ||
           (
               !requires { m.on_call(outcome, elapsed); } &&
               requires {
                 { m.on_call(outcome) } noexcept;
               }));
  requires(requires {
    { m.on_ignored(elapsed) } noexcept;
  } ||
           (
               !requires { m.on_ignored(elapsed); } &&
               requires {
                 { m.on_ignored() } noexcept;
               }));
  { m.on_not_permitted(state) } noexcept;
  { m.on_transition(event) } noexcept;
};

/// @brief The default metrics policy: records nothing and takes no space (the breaker stores it
/// `[[no_unique_address]]`), so a breaker without metrics compiles to what it was without the
/// policy. `distkit/metrics/circuit_breaker.hpp` has the policy that feeds a `metrics_registry`.
struct breaker_no_metrics {
  static void on_call(call_outcome /*outcome*/) noexcept {}
  static void on_ignored() noexcept {}
  static void on_not_permitted(breaker_state /*state*/) noexcept {}
  static void on_transition(const state_transition& /*event*/) noexcept {}
};

/// @brief Stops calls to a failing dependency and probes it before trusting it again, with
/// resilience4j's state machine and defaults.
///
/// CLOSED records outcomes in a sliding window; once it holds `minimum_number_of_calls`, a
/// failure rate or slow-call rate at or above its threshold opens the breaker. OPEN refuses calls
/// for `wait_duration_in_open_state` (growing by `wait_duration_multiplier` per consecutive
/// trip); the first call strictly after it moves to HALF_OPEN, which lets exactly
/// `permitted_number_of_calls_in_half_open_state` probes through and closes or reopens on their
/// rates. `force_open()`, `disable()`, `transition_to(metrics_only)` and `reset()` override it.
///
/// @tparam Window  models `breaker_window`: `count_window` (default; `sliding_window_size` calls)
///                 or `time_window` (`sliding_window_size` seconds).
/// @tparam Clock   models `time_source` (default `steady_time`; tests use `manual_clock`).
/// @tparam Metrics models `breaker_metrics_policy` (default `breaker_no_metrics`, which costs
///                 nothing; `breaker_registry_metrics` counts calls by outcome and transitions).
///
/// @throws std::invalid_argument from the constructor when a parameter is out of range; the
///         message names it.
///
/// A permit from `try_acquire()` carries the state's generation; a result recorded after the
/// breaker moved on is ignored. A permit destroyed without a result records nothing and, in
/// half-open, gives its probe slot back (resilience4j's releasePermission): an unknown outcome
/// must neither count as a failure (a caller's bug would trip the breaker) nor use up a probe
/// (half-open would wait forever).
///
/// **Thread safety:** every member may be called concurrently. In the closed state
/// `try_acquire` and recording take no lock and allocate nothing; transitions serialise on a
/// mutex that only a transition takes, and listeners run after it is released.
/// **Complexity:** `try_acquire` and recording are O(1) (a time window's expiry amortised).
///
/// @code
/// distkit::circuit_breaker<> breaker{{.failure_rate_threshold = 50, .sliding_window_size = 20}};
/// if (auto permit = breaker.try_acquire()) {
///   permit->record_success(std::chrono::milliseconds(3));
/// }
/// int v = breaker.call([] { return 42; });  // throws circuit_open_error when refused
/// @endcode
template <breaker_window Window = count_window, time_source Clock = steady_time,
          breaker_metrics_policy Metrics = breaker_no_metrics>
class circuit_breaker {
 public:
  using window_type = Window;
  using clock_type = Clock;
  using listener = std::function<void(const state_transition&)>;

  /// @brief The right to make one call; report its outcome once.
  ///
  /// Move-only. Destroyed without a result: nothing is recorded and a half-open probe slot is
  /// released.
  class permit {
   public:
    permit(permit&& other) noexcept : owner_(std::exchange(other.owner_, nullptr)), ticket_(other.ticket_) {}
    auto operator=(permit&& other) noexcept -> permit& {
      if (this != &other) {
        release();
        owner_ = std::exchange(other.owner_, nullptr);
        ticket_ = other.ticket_;
      }
      return *this;
    }
    permit(const permit&) = delete;
    auto operator=(const permit&) -> permit& = delete;
    ~permit() { release(); }

    /// Records a success that took `elapsed` (slow when longer than the slow-call threshold).
    template <class Rep, class Period>
    void record_success(std::chrono::duration<Rep, Period> elapsed) noexcept {
      if (auto* owner = std::exchange(owner_, nullptr)) {
        owner->record_call(ticket_, owner->outcome_of(false, elapsed), detail::saturating_ns(elapsed));
      }
    }
    /// Records a failure that took `elapsed`.
    template <class Rep, class Period>
    void record_failure(std::chrono::duration<Rep, Period> elapsed) noexcept {
      if (auto* owner = std::exchange(owner_, nullptr)) {
        owner->record_call(ticket_, owner->outcome_of(true, elapsed), detail::saturating_ns(elapsed));
      }
    }
    /// Classifies an exception with the configured predicates: ignored (the permit is released),
    /// a failure, or a success.
    template <class Rep, class Period>
    void record_exception(const std::exception_ptr& error, std::chrono::duration<Rep, Period> elapsed) {
      auto* owner = owner_;
      if (owner == nullptr) return;
      const auto& cfg = owner->config_;
      if (cfg.ignore_exception && cfg.ignore_exception(error)) {
        owner->report_ignored(detail::saturating_ns(elapsed));
        release();
      } else if (!cfg.record_exception || cfg.record_exception(error)) {
        record_failure(elapsed);
      } else {
        record_success(elapsed);
      }
    }
    /// Gives the permit back without a result (as if destroyed).
    void release() noexcept {
      if (auto* owner = std::exchange(owner_, nullptr)) owner->release_ticket(ticket_);
    }
    /// The state the permit was granted in.
    [[nodiscard]] auto state() const noexcept -> breaker_state { return state_of(ticket_); }
    /// The generation the permit belongs to.
    [[nodiscard]] auto generation() const noexcept -> std::uint64_t { return generation_of(ticket_); }

   private:
    friend class circuit_breaker;
    permit(circuit_breaker* owner, std::uint64_t ticket) noexcept : owner_(owner), ticket_(ticket) {}
    circuit_breaker* owner_;
    std::uint64_t ticket_;
  };

  /// @throws std::invalid_argument naming the first parameter out of range.
  explicit circuit_breaker(circuit_breaker_options config = {}, Clock clock = Clock{}, Metrics metrics = Metrics{})
      : config_(validated(std::move(config))),
        clock_(std::move(clock)),
        window_(config_.sliding_window_size),
        min_closed_(Window::is_time_based ? config_.minimum_number_of_calls
                                          : std::min(config_.minimum_number_of_calls, config_.sliding_window_size)),
        min_half_open_(std::min(config_.minimum_number_of_calls, config_.permitted_number_of_calls_in_half_open_state)),
        batch_(config_.success_batch),
        slow_ns_(config_.slow_call_duration_threshold.count()),
        metrics_(std::move(metrics)) {
    if (config_.initial_state != breaker_state::closed) {
      transition(pack(0, breaker_state::closed), config_.initial_state, transition_cause::manual);
    }
  }

  circuit_breaker(const circuit_breaker&) = delete;
  auto operator=(const circuit_breaker&) -> circuit_breaker& = delete;

  /// @brief Asks to make one call. Empty when refused (open, forced open, or half-open with no
  /// probe left); the refusal is counted in `not_permitted_calls`.
  [[nodiscard]] auto try_acquire() noexcept -> std::optional<permit> {
    const std::uint64_t word = state_.load(std::memory_order_acquire);
    if (DISTKIT_LIKELY(state_of(word) == breaker_state::closed)) return permit(this, word);
    return acquire_slow(word);
  }

  /// @brief Calls `f(args...)` if permitted, times it with the clock and records the outcome
  /// (an exception is classified by the predicates, then rethrown).
  /// @throws circuit_open_error when refused; whatever `f` throws.
  template <class F, class... Args>
  auto call(F&& f, Args&&... args) -> std::invoke_result_t<F, Args...> {
    auto p = try_acquire();
    if (!p) detail::throw_circuit_open(refusal_state());
    return run(*p, std::forward<F>(f), std::forward<Args>(args)...);
  }

  /// @brief As `call`, but a refusal is a value: `call_result<R>` holds `f`'s (decayed) result or
  /// the refusing state. Exceptions from `f` still propagate.
  template <class F, class... Args>
  auto try_call(F&& f, Args&&... args) -> call_result<std::decay_t<std::invoke_result_t<F, Args...>>> {
    using result = std::invoke_result_t<F, Args...>;
    using out = call_result<std::decay_t<result>>;
    auto p = try_acquire();
    if (!p) return out(refusal_state());
    if constexpr (std::is_void_v<result>) {
      run(*p, std::forward<F>(f), std::forward<Args>(args)...);
      return out();
    } else {
      return out(std::in_place, run(*p, std::forward<F>(f), std::forward<Args>(args)...));
    }
  }

  /// @brief The current state, after any time-driven transition that is due (half-open timeout;
  /// open -> half-open when `automatic_transition_from_open_to_half_open_enabled`).
  [[nodiscard]] auto state() noexcept -> breaker_state {
    poll();
    return state_of(state_.load(std::memory_order_acquire));
  }

  /// @brief The number of transitions so far (the generation of the current state).
  [[nodiscard]] auto generation() const noexcept -> std::uint64_t {
    return generation_of(state_.load(std::memory_order_acquire));
  }

  /// @brief Current metrics (pending batched successes are folded in first).
  [[nodiscard]] auto metrics() noexcept -> breaker_stats {
    poll();
    flush_stripes();
    const std::uint64_t word = state_.load(std::memory_order_acquire);
    breaker_stats m;
    m.state = state_of(word);
    m.not_permitted_calls = not_permitted_.load(std::memory_order_relaxed);
    window_snapshot snap;
    std::uint64_t minimum = min_closed_;
    const bool probes = m.state == breaker_state::half_open ||
                        (m.state == breaker_state::open && open_shows_probes_.load(std::memory_order_relaxed));
    if (probes) {
      snap = detail::probe_results_word::counts(probe_results_.load(std::memory_order_acquire));
      minimum = min_half_open_;
    } else if (m.state == breaker_state::closed || m.state == breaker_state::open ||
               m.state == breaker_state::metrics_only) {
      snap = window_.snapshot(current_second());
    }
    m.buffered_calls = snap.calls;
    m.failed_calls = snap.failed;
    m.slow_calls = snap.slow;
    m.successful_calls = snap.calls - std::min(snap.calls, snap.failed);
    if (snap.calls > 0 && snap.calls >= minimum) {
      m.failure_rate = rate(snap.failed, snap.calls);
      m.slow_call_rate = rate(snap.slow, snap.calls);
    }
    return m;
  }

  /// @brief Performs any time-driven transition that is due; the breaker has no timer thread.
  void poll() noexcept {
    const std::uint64_t word = state_.load(std::memory_order_acquire);
    const breaker_state s = state_of(word);
    if (s == breaker_state::open && config_.automatic_transition_from_open_to_half_open_enabled) {
      if (now_ns() > open_until_.load(std::memory_order_relaxed)) {
        transition(word, breaker_state::half_open, transition_cause::wait_elapsed);
      }
    } else if (s == breaker_state::half_open) {
      const std::int64_t deadline = half_open_until_.load(std::memory_order_relaxed);
      if (deadline != 0 && now_ns() >= deadline) {
        transition(word, config_.transition_to_state_after_wait_duration, transition_cause::half_open_timeout);
      }
    }
  }

  /// @brief Moves to `target` with fresh metrics for it (resilience4j's transitionTo*State).
  /// `open` while open restarts the wait and counts one more trip for the growing wait (as
  /// resilience4j's OPEN -> OPEN; no listener is called). `forced_open` also counts as a trip.
  /// @returns false if the breaker already is in `target` (other than `open`): nothing happens.
  /// @throws std::logic_error for the edges resilience4j refuses: CLOSED -> HALF_OPEN,
  ///         METRICS_ONLY -> OPEN and METRICS_ONLY -> HALF_OPEN (the state is unchanged).
  auto transition_to(breaker_state target) -> bool {
    for (;;) {
      const std::uint64_t word = state_.load(std::memory_order_acquire);
      const breaker_state from = state_of(word);
      if (DISTKIT_UNLIKELY(!allowed_edge(from, target))) throw_refused_edge(from, target);
      if (from == target) {
        if (target != breaker_state::open) return false;
        if (restart_open(word)) return true;
        continue;
      }
      if (transition(word, target, transition_cause::manual)) return true;
    }
  }
  /// @brief Refuses every call until another transition (FORCED_OPEN).
  auto force_open() -> bool { return transition_to(breaker_state::forced_open); }
  /// @brief Lets every call through and records nothing (DISABLED).
  auto disable() -> bool { return transition_to(breaker_state::disabled); }
  /// @brief Back to CLOSED with an empty window and the open-wait growth forgotten; always
  /// notifies listeners (cause `reset`), even from CLOSED.
  void reset() {
    for (;;) {
      const std::uint64_t word = state_.load(std::memory_order_acquire);
      if (transition(word, breaker_state::closed, transition_cause::reset)) return;
    }
  }

  /// @brief Registers a state-transition listener. It runs on the thread that made the
  /// transition, after the new state is published and with no breaker lock held; an exception
  /// it throws is swallowed. Events from concurrent transitions may arrive out of order: use
  /// `generation`.
  void on_state_transition(listener l) {
    std::lock_guard lock(listeners_mutex_);
    auto next =
        listeners_ ? std::make_shared<std::vector<listener>>(*listeners_) : std::make_shared<std::vector<listener>>();
    next->push_back(std::move(l));
    listeners_ = std::move(next);
  }

  [[nodiscard]] auto config() const noexcept -> const circuit_breaker_options& { return config_; }

 private:
  // The state word: [generation:61 | state:3]. The other packed words are laid out in
  // detail/breaker_words.hpp.
  static constexpr unsigned state_bits = 3;
  static constexpr unsigned stripe_count = 16;
  using stripe_word = detail::stripe_word;
  using results_word = detail::probe_results_word;
  using permits_word = detail::probe_permits_word;

  static constexpr auto state_of(std::uint64_t word) noexcept -> breaker_state {
    return static_cast<breaker_state>(word & ((1U << state_bits) - 1));
  }
  static constexpr auto generation_of(std::uint64_t word) noexcept -> std::uint64_t { return word >> state_bits; }
  static constexpr auto pack(std::uint64_t generation, breaker_state s) noexcept -> std::uint64_t {
    return (generation << state_bits) | static_cast<std::uint64_t>(s);
  }
  static auto rate(std::uint64_t part, std::uint64_t total) noexcept -> float {
    return static_cast<float>(part) * 100.0F / static_cast<float>(total);
  }

  static auto validated(circuit_breaker_options c) -> circuit_breaker_options {
    constexpr std::string_view who = "circuit_breaker";
    if (!(c.failure_rate_threshold > 0.0F && c.failure_rate_threshold <= 100.0F)) {
      detail::throw_invalid_argument(who, "failure_rate_threshold", "must be in (0, 100]", c.failure_rate_threshold);
    }
    if (!(c.slow_call_rate_threshold > 0.0F && c.slow_call_rate_threshold <= 100.0F)) {
      detail::throw_invalid_argument(who, "slow_call_rate_threshold", "must be in (0, 100]",
                                     c.slow_call_rate_threshold);
    }
    if (c.slow_call_duration_threshold.count() <= 0) {
      detail::throw_invalid_argument(who, "slow_call_duration_threshold", "must be positive (ns)",
                                     c.slow_call_duration_threshold.count());
    }
    if (c.minimum_number_of_calls < 1) {
      detail::throw_invalid_argument(who, "minimum_number_of_calls", "must be at least 1", c.minimum_number_of_calls);
    }
    if (c.sliding_window_size < 1 || c.sliding_window_size > Window::max_size) {
      detail::throw_invalid_argument(who, "sliding_window_size",
                                     "must be in [1, " + std::to_string(Window::max_size) + "]", c.sliding_window_size);
    }
    if (c.permitted_number_of_calls_in_half_open_state < 1 ||
        c.permitted_number_of_calls_in_half_open_state > results_word::count_mask) {
      detail::throw_invalid_argument(who, "permitted_number_of_calls_in_half_open_state", "must be in [1, 65535]",
                                     c.permitted_number_of_calls_in_half_open_state);
    }
    if (c.wait_duration_in_open_state.count() <= 0) {
      detail::throw_invalid_argument(who, "wait_duration_in_open_state", "must be positive (ns)",
                                     c.wait_duration_in_open_state.count());
    }
    if (!(c.wait_duration_multiplier >= 1.0 && std::isfinite(c.wait_duration_multiplier))) {
      detail::throw_invalid_argument(who, "wait_duration_multiplier", "must be finite and >= 1",
                                     c.wait_duration_multiplier);
    }
    if (c.max_wait_duration_in_open_state.count() != 0 &&
        c.max_wait_duration_in_open_state < c.wait_duration_in_open_state) {
      detail::throw_invalid_argument(who, "max_wait_duration_in_open_state",
                                     "must be 0 (no cap) or >= wait_duration_in_open_state (ns)",
                                     c.max_wait_duration_in_open_state.count());
    }
    if (c.max_wait_duration_in_half_open_state.count() < 0) {
      detail::throw_invalid_argument(who, "max_wait_duration_in_half_open_state", "must be >= 0 (ns)",
                                     c.max_wait_duration_in_half_open_state.count());
    }
    if (c.success_batch < 1 || c.success_batch > stripe_word::pending_mask) {
      detail::throw_invalid_argument(who, "success_batch", "must be in [1, 65535]", c.success_batch);
    }
    if (c.transition_to_state_after_wait_duration != breaker_state::open &&
        c.transition_to_state_after_wait_duration != breaker_state::closed) {
      detail::throw_invalid_argument(who, "transition_to_state_after_wait_duration", "must be open or closed",
                                     to_string(c.transition_to_state_after_wait_duration));
    }
    if (static_cast<unsigned>(c.initial_state) > static_cast<unsigned>(breaker_state::metrics_only)) {
      detail::throw_invalid_argument(who, "initial_state", "must be a breaker_state",
                                     static_cast<unsigned>(c.initial_state));
    }
    return c;
  }

  // Saturated to +-2^62 ns, so a deadline (now + a wait) never overflows.
  [[nodiscard]] auto now_ns() const noexcept -> std::int64_t {
    return detail::saturating_ns(clock_.now().time_since_epoch());
  }
  [[nodiscard]] auto current_second() const noexcept -> std::int64_t {
    if constexpr (Window::is_time_based) {
      return std::chrono::duration_cast<std::chrono::seconds>(clock_.now().time_since_epoch()).count();
    } else {
      return 0;
    }
  }

  template <class Rep, class Period>
  [[nodiscard]] auto outcome_of(bool failed, std::chrono::duration<Rep, Period> elapsed) const noexcept
      -> call_outcome {
    return {failed, detail::saturating_ns(elapsed) > slow_ns_};
  }

  auto refusal_state() noexcept -> breaker_state {
    const breaker_state s = state_of(state_.load(std::memory_order_acquire));
    return s == breaker_state::closed ? breaker_state::open : s;  // closed again by now: report why it refused
  }

  template <class F, class... Args>
  auto run(permit& p, F&& f, Args&&... args) -> std::invoke_result_t<F, Args...> {
    const auto start = clock_.now();
    try {
      if constexpr (std::is_void_v<std::invoke_result_t<F, Args...>>) {
        std::invoke(std::forward<F>(f), std::forward<Args>(args)...);
        p.record_success(clock_.now() - start);
      } else if constexpr (std::is_reference_v<std::invoke_result_t<F, Args...>>) {
        std::invoke_result_t<F, Args...> value = std::invoke(std::forward<F>(f), std::forward<Args>(args)...);
        p.record_success(clock_.now() - start);
        return static_cast<std::invoke_result_t<F, Args...>>(value);
      } else {
        std::invoke_result_t<F, Args...> value = std::invoke(std::forward<F>(f), std::forward<Args>(args)...);
        p.record_success(clock_.now() - start);
        return value;
      }
    } catch (...) {
      p.record_exception(std::current_exception(), clock_.now() - start);
      throw;
    }
  }

  auto acquire_slow(std::uint64_t word) noexcept -> std::optional<permit> {
    for (;;) {
      switch (state_of(word)) {
        case breaker_state::closed:
        case breaker_state::metrics_only:
        case breaker_state::disabled:
          return permit(this, word);
        case breaker_state::forced_open:
          not_permitted_.fetch_add(1, std::memory_order_relaxed);
          metrics_.on_not_permitted(breaker_state::forced_open);
          return std::nullopt;
        case breaker_state::open:
          // resilience4j: the first call strictly after the wait moves the breaker to half-open.
          if (now_ns() > open_until_.load(std::memory_order_relaxed)) {
            transition(word, breaker_state::half_open, transition_cause::wait_elapsed);
            word = state_.load(std::memory_order_acquire);
            continue;
          }
          not_permitted_.fetch_add(1, std::memory_order_relaxed);
          metrics_.on_not_permitted(breaker_state::open);
          return std::nullopt;
        case breaker_state::half_open: {
          const std::int64_t deadline = half_open_until_.load(std::memory_order_relaxed);
          if (deadline != 0 && now_ns() >= deadline) {
            transition(word, config_.transition_to_state_after_wait_duration, transition_cause::half_open_timeout);
            word = state_.load(std::memory_order_acquire);
            continue;
          }
          const std::uint64_t generation = generation_of(word);
          std::uint64_t permits = probe_permits_.load(std::memory_order_acquire);
          for (;;) {
            if (permits_word::generation_of(permits) != generation) break;  // the state moved on: re-read it
            if (permits_word::left_of(permits) == 0) {
              not_permitted_.fetch_add(1, std::memory_order_relaxed);
              metrics_.on_not_permitted(breaker_state::half_open);
              return std::nullopt;
            }
            if (probe_permits_.compare_exchange_weak(permits, permits - permits_word::one_permit,
                                                     std::memory_order_acq_rel, std::memory_order_acquire)) {
              return permit(this, word);
            }
          }
          word = state_.load(std::memory_order_acquire);
          continue;
        }
      }
      return std::nullopt;
    }
  }

  void release_ticket(std::uint64_t ticket) noexcept {
    if (state_of(ticket) != breaker_state::half_open) return;  // nothing is held outside half-open
    const std::uint64_t generation = generation_of(ticket);
    std::uint64_t permits = probe_permits_.load(std::memory_order_acquire);
    while (permits_word::generation_of(permits) == generation &&
           !probe_permits_.compare_exchange_weak(permits, permits + permits_word::one_permit, std::memory_order_acq_rel,
                                                 std::memory_order_acquire)) {
    }
  }

  // ---- recording -------------------------------------------------------------------------

  // `elapsed_ns` is as `detail::saturating_ns` gives it; a metrics policy sees it clamped at 0.
  void record_call(std::uint64_t ticket, call_outcome outcome, std::int64_t elapsed_ns) noexcept {
    if constexpr (requires { metrics_.on_call(outcome, std::chrono::nanoseconds{}); }) {
      metrics_.on_call(outcome, std::chrono::nanoseconds(std::max<std::int64_t>(elapsed_ns, 0)));
    } else {
      metrics_.on_call(outcome);
    }
    record(ticket, outcome);
  }

  void report_ignored(std::int64_t elapsed_ns) noexcept {
    if constexpr (requires { metrics_.on_ignored(std::chrono::nanoseconds{}); }) {
      metrics_.on_ignored(std::chrono::nanoseconds(std::max<std::int64_t>(elapsed_ns, 0)));
    } else {
      metrics_.on_ignored();
    }
  }

  void record(std::uint64_t ticket, call_outcome outcome) noexcept {
    const std::uint64_t word = state_.load(std::memory_order_acquire);
    if (DISTKIT_UNLIKELY(word != ticket)) return;  // a late result for an older state: ignored
    const breaker_state s = state_of(word);
    if (DISTKIT_LIKELY(s == breaker_state::closed || s == breaker_state::metrics_only)) {
      const std::int64_t second = current_second();
      if (!outcome.failed && !outcome.slow && batch_ > 1 && armed_second_.load(std::memory_order_relaxed) == second) {
        batch_success(word, second);
        return;
      }
      record_in_window(word, outcome, second);
    } else if (s == breaker_state::half_open) {
      record_probe(word, outcome);
    }
  }

  // The tag of fast successes recorded at `second` in the state `word` (see detail::stripe_word).
  static constexpr auto stripe_tag(std::uint64_t word, std::int64_t second) noexcept -> std::uint64_t {
    return stripe_word::tag(generation_of(word), second);
  }

  auto stripe() noexcept -> std::atomic<std::uint64_t>& {
    return stripes_[detail::breaker_thread_index() % stripe_count].pending;
  }

  void batch_success(std::uint64_t word, std::int64_t second) noexcept {
    const std::uint64_t tag = stripe_tag(word, second);
    std::atomic<std::uint64_t>& s = stripe();
    std::uint64_t cur = s.load(std::memory_order_relaxed);
    for (;;) {
      if (stripe_word::tag_of(cur) == tag) {
        const std::uint64_t pending = stripe_word::pending_of(cur) + 1;
        if (pending < batch_) {
          if (s.compare_exchange_weak(cur, cur + 1, std::memory_order_relaxed)) return;
        } else if (s.compare_exchange_weak(cur, stripe_word::make(tag, 0), std::memory_order_relaxed)) {
          flush(word, pending, second);
          return;
        }
      } else if (s.compare_exchange_weak(cur, stripe_word::make(tag, 1), std::memory_order_relaxed)) {
        flush_tagged(word, cur, second);  // a batch of another second or an older state
        return;
      }
    }
  }

  // Records a batch of `count` fast successes taken from a stripe.
  void flush(std::uint64_t word, std::uint64_t count, std::int64_t second) noexcept {
    const window_snapshot snap = window_.record(call_outcome{}, static_cast<std::uint32_t>(count), second);
    evaluate(word, snap, second);
  }

  // Records a stripe word's pending successes if they belong to the current state.
  void flush_tagged(std::uint64_t word, std::uint64_t taken, std::int64_t now_second) noexcept {
    const std::uint64_t count = stripe_word::pending_of(taken);
    if (count == 0) return;
    const std::uint64_t tag = stripe_word::tag_of(taken);
    if (!stripe_word::same_generation(tag, generation_of(word))) return;  // an older state's successes
    flush(word, count, stripe_word::second_of(tag, now_second));
  }

  // Takes this thread's stripe's pending successes (so a failure is recorded after them).
  void flush_own_stripe(std::uint64_t word, std::int64_t second) noexcept {
    std::atomic<std::uint64_t>& s = stripe();
    std::uint64_t cur = s.load(std::memory_order_relaxed);
    while (stripe_word::pending_of(cur) != 0) {
      if (s.compare_exchange_weak(cur, stripe_word::without_pending(cur), std::memory_order_relaxed)) {
        flush_tagged(word, cur, second);
        return;
      }
    }
  }

  void flush_stripes() noexcept {
    if (batch_ <= 1) return;
    const std::uint64_t word = state_.load(std::memory_order_acquire);
    const breaker_state st = state_of(word);
    const bool recording = st == breaker_state::closed || st == breaker_state::metrics_only;
    const std::int64_t second = current_second();
    for (auto& slot : stripes_) {
      std::uint64_t cur = slot.pending.load(std::memory_order_relaxed);
      while (stripe_word::pending_of(cur) != 0) {
        if (slot.pending.compare_exchange_weak(cur, stripe_word::without_pending(cur), std::memory_order_relaxed)) {
          if (recording) flush_tagged(word, cur, second);
          break;
        }
      }
    }
  }

  void record_in_window(std::uint64_t word, call_outcome outcome, std::int64_t second) noexcept {
    if (batch_ > 1) flush_own_stripe(word, second);
    const window_snapshot snap = window_.record(outcome, 1, second);
    evaluate(word, snap, second);
  }

  // resilience4j's checkIfThresholdsExceeded for the closed window.
  void evaluate(std::uint64_t word, const window_snapshot& snap, std::int64_t second) noexcept {
    if (snap.calls < min_closed_ || snap.calls == 0) return;
    if (snap.failed == 0 && snap.slow == 0) {
      arm(second);
      return;
    }
    const bool failing = rate(snap.failed, snap.calls) >= config_.failure_rate_threshold;
    const bool slow = rate(snap.slow, snap.calls) >= config_.slow_call_rate_threshold;
    if (!failing && !slow) {
      arm(second);
      return;
    }
    if (state_of(word) != breaker_state::closed) return;  // metrics_only never trips
    transition(word, breaker_state::open,
               failing && slow
                   ? transition_cause::both_rates_exceeded
                   : (failing ? transition_cause::failure_rate_exceeded : transition_cause::slow_call_rate_exceeded));
  }

  // The window holds its minimum number of calls in this second: from here a fast success can
  // only lower both rates, so such successes may be batched (count window: until reset; time
  // window: until the second changes, when old buckets may expire).
  void arm(std::int64_t second) noexcept {
    if (batch_ > 1 && armed_second_.load(std::memory_order_relaxed) != second) {
      armed_second_.store(second, std::memory_order_relaxed);
    }
  }

  void record_probe(std::uint64_t word, call_outcome outcome) noexcept {
    const std::uint64_t generation = generation_of(word);
    const std::uint64_t add = results_word::increment(outcome);
    std::uint64_t cur = probe_results_.load(std::memory_order_acquire);
    std::uint64_t next = 0;
    do {
      if (!results_word::same_generation(cur, generation)) return;
      next = cur + add;
    } while (!probe_results_.compare_exchange_weak(cur, next, std::memory_order_acq_rel, std::memory_order_acquire));
    const window_snapshot probes = results_word::counts(next);
    if (probes.calls != min_half_open_) return;  // exactly one recorder sees the deciding count
    const bool failing = rate(probes.failed, probes.calls) >= config_.failure_rate_threshold;
    const bool slow = rate(probes.slow, probes.calls) >= config_.slow_call_rate_threshold;
    if (failing || slow) {
      transition(word, breaker_state::open,
                 failing && slow
                     ? transition_cause::both_rates_exceeded
                     : (failing ? transition_cause::failure_rate_exceeded : transition_cause::slow_call_rate_exceeded));
    } else {
      transition(word, breaker_state::closed, transition_cause::probes_passed);
    }
  }

  // ---- transitions (cold) ----------------------------------------------------------------

  [[nodiscard]] auto open_wait(std::uint32_t attempts) const noexcept -> std::int64_t {
    const auto base = static_cast<double>(config_.wait_duration_in_open_state.count());
    double wait = base * std::pow(config_.wait_duration_multiplier, static_cast<double>(attempts - 1));
    if (config_.max_wait_duration_in_open_state.count() > 0) {
      wait = std::min(wait, static_cast<double>(config_.max_wait_duration_in_open_state.count()));
    }
    wait = std::min(wait, 1e18);  // ~31 years: keeps the deadline representable
    return static_cast<std::int64_t>(wait);
  }

  // Moves from exactly `expected` to `to`. Returns false if the state changed meanwhile.
  auto transition(std::uint64_t expected, breaker_state to, transition_cause cause) noexcept -> bool {
    state_transition event{};
    {
      std::lock_guard lock(transition_mutex_);
      const std::uint64_t word = state_.load(std::memory_order_acquire);
      if (word != expected) return false;
      const breaker_state from = state_of(word);
      const std::uint64_t generation = generation_of(word) + 1;
      const std::int64_t now = now_ns();
      switch (to) {
        case breaker_state::open:
          // Consecutive trips: 1 after closed (which zeroes it), +1 after each failed half-open.
          attempts_ += 1;
          open_until_.store(detail::add_saturating(now, open_wait(attempts_)), std::memory_order_relaxed);
          // Open shows the metrics of the state it came from, refusals included (resilience4j).
          open_shows_probes_.store(from == breaker_state::half_open, std::memory_order_relaxed);
          break;
        case breaker_state::half_open:
          probe_results_.store(results_word::empty(generation), std::memory_order_relaxed);
          probe_permits_.store(permits_word::make(generation, config_.permitted_number_of_calls_in_half_open_state),
                               std::memory_order_relaxed);
          half_open_until_.store(config_.max_wait_duration_in_half_open_state.count() > 0
                                     ? detail::add_saturating(now, config_.max_wait_duration_in_half_open_state.count())
                                     : 0,
                                 std::memory_order_relaxed);
          not_permitted_.store(0, std::memory_order_relaxed);
          reset_window();  // the closed window's figures are no longer shown; start the next one clean
          break;
        case breaker_state::closed:
        case breaker_state::metrics_only:
        case breaker_state::disabled:
          attempts_ = 0;
          not_permitted_.store(0, std::memory_order_relaxed);
          reset_window();
          break;
        case breaker_state::forced_open:
          // resilience4j counts it as a trip (a later OPEN waits longer) and gives it fresh
          // metrics, which an OPEN entered from it then shows.
          attempts_ += 1;
          not_permitted_.store(0, std::memory_order_relaxed);
          reset_window();
          break;
      }
      state_.store(pack(generation, to), std::memory_order_release);
      event = {from, to, cause, generation};
      metrics_.on_transition(event);  // under the lock, so a state gauge ends on the last state
    }
    notify(event);
    return true;
  }

  // resilience4j's StateTransition table: every edge but these three.
  static constexpr auto allowed_edge(breaker_state from, breaker_state to) noexcept -> bool {
    if (from == breaker_state::closed) return to != breaker_state::half_open;
    if (from == breaker_state::metrics_only) return to != breaker_state::open && to != breaker_state::half_open;
    return true;
  }

  [[noreturn]] DISTKIT_COLD static void throw_refused_edge(breaker_state from, breaker_state to) {
    detail::throw_logic_error("circuit_breaker", "transition " + std::string(to_string(from)) + " -> " +
                                                     std::string(to_string(to)) +
                                                     " is not allowed (resilience4j refuses it too)");
  }

  // OPEN -> OPEN: the wait starts again, one trip longer. The state word (and so the generation)
  // is unchanged: no permit exists in open, and resilience4j publishes no event for it.
  auto restart_open(std::uint64_t expected) noexcept -> bool {
    std::lock_guard lock(transition_mutex_);
    if (state_.load(std::memory_order_acquire) != expected) return false;
    attempts_ += 1;
    open_until_.store(detail::add_saturating(now_ns(), open_wait(attempts_)), std::memory_order_relaxed);
    return true;
  }

  void reset_window() noexcept {
    armed_second_.store(no_second, std::memory_order_relaxed);
    window_.reset();
  }

  void notify(const state_transition& event) noexcept {
    std::shared_ptr<const std::vector<listener>> snapshot;
    {
      std::lock_guard lock(listeners_mutex_);
      snapshot = listeners_;
    }
    if (!snapshot) return;
    for (const auto& l : *snapshot) {
      try {
        l(event);
      } catch (...) {  // a listener's failure must not break the breaker
      }
    }
  }

  static constexpr std::int64_t no_second = std::numeric_limits<std::int64_t>::min();

  struct alignas(64) stripe_slot {
    std::atomic<std::uint64_t> pending{0};
  };

  // Read on every call and written only by transitions (and once per second when arming a time
  // window): its own cache line.
  alignas(64) std::atomic<std::uint64_t> state_{pack(0, breaker_state::closed)};
  std::atomic<std::int64_t> armed_second_{no_second};
  circuit_breaker_options config_;
  [[no_unique_address]] Clock clock_;
  Window window_;
  std::uint64_t min_closed_;
  std::uint64_t min_half_open_;
  std::uint32_t batch_;
  std::int64_t slow_ns_;
  std::array<stripe_slot, stripe_count> stripes_{};
  alignas(64) std::atomic<std::uint64_t> probe_permits_{0};
  std::atomic<std::uint64_t> probe_results_{0};
  std::atomic<std::int64_t> open_until_{0};
  std::atomic<std::int64_t> half_open_until_{0};
  std::atomic<bool> open_shows_probes_{false};
  alignas(64) std::atomic<std::uint64_t> not_permitted_{0};
  std::mutex transition_mutex_;
  std::uint32_t attempts_ = 0;  // consecutive trips (guarded by transition_mutex_)
  std::mutex listeners_mutex_;
  std::shared_ptr<const std::vector<listener>> listeners_;
  [[no_unique_address]] Metrics metrics_;
};

}  // namespace distkit::inline v0
