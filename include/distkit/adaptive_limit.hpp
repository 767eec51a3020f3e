// SPDX-License-Identifier: MIT
// distkit/adaptive_limit.hpp: an adaptive concurrency limit (Netflix concurrency-limits' AIMD
// and Gradient2): how many requests may be in flight to a dependency, learned from their
// latencies and drops instead of configured.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string_view>
#include <utility>

#include "distkit/detail/error.hpp"

namespace distkit::inline v0 {

/// One finished request, as a limit algorithm sees it.
struct limit_sample {
  std::chrono::nanoseconds rtt{0};  ///< its round-trip time
  std::size_t inflight = 0;         ///< requests in flight when it started (itself included)
  bool dropped = false;             ///< it was refused or timed out: the dependency is overloaded
};

/// @brief A limit algorithm: `initial()` and `update(limit, sample) -> new limit`. Called under
/// the limiter's lock, one sample at a time.
template <class A>
concept limit_algorithm = requires(A& a, const A& ca, double limit, const limit_sample& s) {
  { ca.initial() } -> std::convertible_to<double>;
  { a.update(limit, s) } -> std::convertible_to<double>;
};

/// Options of `aimd_limit` (Netflix's defaults).
struct aimd_limit_options {
  double initial = 20;
  double min = 20;
  double max = 200;
  double backoff_ratio = 0.9;  ///< in [0.5, 1)
  std::chrono::nanoseconds timeout = std::chrono::seconds(5);
};

/// @brief Additive increase, multiplicative decrease: one more request per sample while the
/// limit is in use (at least half of it in flight), times `backoff_ratio` on a drop or a
/// sample slower than `timeout` (Netflix's `AIMDLimit`).
class aimd_limit {
 public:
  /// @throws std::invalid_argument naming the option out of range.
  explicit aimd_limit(aimd_limit_options o = {}) : o_(o) {
    check_bounds("aimd_limit", o_.initial, o_.min, o_.max);
    if (!(o_.backoff_ratio >= 0.5 && o_.backoff_ratio < 1)) {
      detail::throw_invalid_argument("aimd_limit", "backoff_ratio", "must be in [0.5, 1)", o_.backoff_ratio);
    }
    if (o_.timeout.count() <= 0) detail::throw_invalid_argument("aimd_limit", "timeout", "must be positive (ns)", 0);
  }
  [[nodiscard]] auto initial() const noexcept -> double { return o_.initial; }
  [[nodiscard]] auto update(double limit, const limit_sample& s) const noexcept -> double {
    if (s.dropped || s.rtt > o_.timeout) return std::max(o_.min, std::floor(limit * o_.backoff_ratio));
    if (static_cast<double>(s.inflight) * 2 >= limit) return std::min(o_.max, limit + 1);
    return limit;
  }

  static void check_bounds(std::string_view who, double initial, double min, double max) {
    if (!(min >= 1) || !std::isfinite(min)) detail::throw_invalid_argument(who, "min", "must be finite and >= 1", min);
    if (!(max >= min) || !std::isfinite(max))
      detail::throw_invalid_argument(who, "max", "must be finite and >= min", max);
    if (!(initial >= min && initial <= max)) {
      detail::throw_invalid_argument(who, "initial", "must be in [min, max]", initial);
    }
  }

 private:
  aimd_limit_options o_;
};

/// Options of `gradient2_limit` (Netflix's defaults).
struct gradient2_limit_options {
  double initial = 20;
  double min = 20;
  double max = 200;
  double smoothing = 0.2;      ///< in (0, 1]
  double rtt_tolerance = 1.5;  ///< >= 1
  std::size_t long_window = 600;
  double queue_size = 4;  ///< >= 0
};

/// @brief Gradient2 (Netflix's `Gradient2Limit`): compares a short-term RTT (the sample's) with
/// a long-term one (an exponential average over `long_window` samples); while they agree the
/// limit grows by `queue_size` per sample (smoothed), and as queueing makes the short RTT
/// exceed `rtt_tolerance` x the long one the limit shrinks by up to half per sample. A sample
/// taken while less than half the limit was in use leaves it alone (the limit was not the
/// bottleneck). Drops do not move it; the RTT does (a drop reported without its RTT, by
/// `token::dropped()`, is not a sample for it: report `dropped(rtt)` to let its time count).
class gradient2_limit {
 public:
  /// @throws std::invalid_argument naming the option out of range.
  explicit gradient2_limit(gradient2_limit_options o = {}) : o_(o) {
    aimd_limit::check_bounds("gradient2_limit", o_.initial, o_.min, o_.max);
    if (!(o_.smoothing > 0 && o_.smoothing <= 1)) {
      detail::throw_invalid_argument("gradient2_limit", "smoothing", "must be in (0, 1]", o_.smoothing);
    }
    if (!(o_.rtt_tolerance >= 1) || !std::isfinite(o_.rtt_tolerance)) {
      detail::throw_invalid_argument("gradient2_limit", "rtt_tolerance", "must be finite and >= 1", o_.rtt_tolerance);
    }
    if (o_.long_window == 0) detail::throw_invalid_argument("gradient2_limit", "long_window", "must be at least 1", 0);
    if (!(o_.queue_size >= 0) || !std::isfinite(o_.queue_size)) {
      detail::throw_invalid_argument("gradient2_limit", "queue_size", "must be finite and >= 0", o_.queue_size);
    }
  }
  [[nodiscard]] auto initial() const noexcept -> double { return o_.initial; }
  auto update(double limit, const limit_sample& s) noexcept -> double {
    // A drop reported without its duration (`token::dropped()`) has no RTT to read: it moves
    // neither the long RTT nor the limit (read as 0 ns it would look like the fastest answer
    // yet and raise the limit on an overload signal).
    if (s.dropped && s.rtt.count() <= 0) return limit;
    const double short_rtt = static_cast<double>(std::max<std::int64_t>(s.rtt.count(), 1));
    // The long-term RTT: a plain mean over the first samples (warm-up), then an exponential
    // average over `long_window`.
    ++samples_;
    const double n = static_cast<double>(std::min<std::size_t>(samples_, o_.long_window));
    long_rtt_ +=
        (short_rtt - long_rtt_) / (samples_ <= o_.long_window ? n : static_cast<double>(o_.long_window + 1) / 2);
    // After a long stretch of slow samples the long RTT would hold the limit down: let it
    // drift back toward the short one.
    if (long_rtt_ / short_rtt > 2) long_rtt_ *= 0.95;
    if (static_cast<double>(s.inflight) < limit / 2) return limit;  // not limited by the limit
    const double gradient = std::clamp(o_.rtt_tolerance * long_rtt_ / short_rtt, 0.5, 1.0);
    const double target = limit * gradient + o_.queue_size;
    const double next = limit * (1 - o_.smoothing) + target * o_.smoothing;
    return std::clamp(next, o_.min, o_.max);
  }
  [[nodiscard]] auto long_rtt() const noexcept -> std::chrono::nanoseconds {
    return std::chrono::nanoseconds(static_cast<std::int64_t>(long_rtt_));
  }

 private:
  gradient2_limit_options o_;
  double long_rtt_ = 0;
  std::size_t samples_ = 0;
};

static_assert(limit_algorithm<aimd_limit>);
static_assert(limit_algorithm<gradient2_limit>);

/// @brief How many requests may be in flight to one dependency, adapted by `Algorithm` from
/// each finished request's latency and outcome. `try_acquire` refuses (an empty optional) when
/// the limit is reached: shed the request or queue it, do not send it.
///
/// **Thread safety:** every member may be called from any thread (one mutex; a request costs
/// two short critical sections). A token is used by one thread.
/// @code
/// distkit::adaptive_concurrency_limit<distkit::gradient2_limit> limit;
/// if (auto token = limit.try_acquire()) {
///   auto start = std::chrono::steady_clock::now();
///   bool ok = send("request");  // the call to the dependency
///   if (ok) {
///     token->success(std::chrono::steady_clock::now() - start);
///   } else {
///     token->dropped();
///   }
/// }
/// @endcode
template <limit_algorithm Algorithm = gradient2_limit>
class adaptive_concurrency_limit {
 public:
  /// One admitted request. Report it once: `success(rtt)`, `dropped()` (overload: refused or
  /// timed out) or `ignore()` (failed for a reason that says nothing about load); destroyed
  /// unreported, it is ignored.
  class token {
   public:
    token(token&& other) noexcept
        : owner_(std::exchange(other.owner_, nullptr)), inflight_at_start_(other.inflight_at_start_) {}
    auto operator=(token&&) -> token& = delete;
    token(const token&) = delete;
    auto operator=(const token&) -> token& = delete;
    ~token() { ignore(); }

    template <class Rep, class Period>
    void success(std::chrono::duration<Rep, Period> rtt) {
      finish(limit_sample{std::chrono::duration_cast<std::chrono::nanoseconds>(rtt), inflight_at_start_, false});
    }
    void dropped() { finish(limit_sample{std::chrono::nanoseconds(0), inflight_at_start_, true}); }
    /// A drop that took `rtt` (a timeout or a refusal seen after `rtt`): algorithms that read
    /// the RTT of drops (Gradient2) see the real one.
    template <class Rep, class Period>
    void dropped(std::chrono::duration<Rep, Period> rtt) {
      finish(limit_sample{std::chrono::duration_cast<std::chrono::nanoseconds>(rtt), inflight_at_start_, true});
    }
    void ignore() noexcept {
      if (auto* o = std::exchange(owner_, nullptr)) o->release(nullptr);
    }

   private:
    friend class adaptive_concurrency_limit;
    token(adaptive_concurrency_limit* owner, std::size_t inflight) noexcept
        : owner_(owner), inflight_at_start_(inflight) {}
    void finish(const limit_sample& s) {
      if (auto* o = std::exchange(owner_, nullptr)) o->release(&s);
    }
    adaptive_concurrency_limit* owner_;
    std::size_t inflight_at_start_;
  };

  explicit adaptive_concurrency_limit(Algorithm algorithm = Algorithm{})
      : algorithm_(std::move(algorithm)), limit_(algorithm_.initial()) {}
  adaptive_concurrency_limit(const adaptive_concurrency_limit&) = delete;
  auto operator=(const adaptive_concurrency_limit&) -> adaptive_concurrency_limit& = delete;

  /// Admits one more request if fewer than `limit()` are in flight.
  [[nodiscard]] auto try_acquire() -> std::optional<token> {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (static_cast<double>(inflight_) >= std::floor(limit_)) return std::nullopt;
    ++inflight_;
    return token(this, inflight_);
  }

  /// The current limit (requests in flight admitted at once).
  [[nodiscard]] auto limit() const -> std::size_t {
    const std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<std::size_t>(limit_);
  }
  [[nodiscard]] auto inflight() const -> std::size_t {
    const std::lock_guard<std::mutex> lock(mutex_);
    return inflight_;
  }

 private:
  void release(const limit_sample* s) {
    const std::lock_guard<std::mutex> lock(mutex_);
    --inflight_;
    if (s != nullptr) limit_ = algorithm_.update(limit_, *s);
  }

  mutable std::mutex mutex_;
  Algorithm algorithm_;
  double limit_;
  std::size_t inflight_ = 0;
};

}  // namespace distkit::inline v0
