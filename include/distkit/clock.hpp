// SPDX-License-Identifier: MIT
// distkit/clock.hpp: the `time_source` concept, the steady-clock policy and `manual_clock`.
//
// Every primitive that reads time takes a Clock policy. Production code keeps the default
// `steady_time` (monotonic: immune to wall-clock jumps); tests drive `manual_clock` by hand, so
// no test ever sleeps and every timing edge case is reproducible.
#pragma once

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <memory>

namespace distkit::inline v0 {

/// @brief A source of monotonic time.
///
/// Requires the member types `duration` and `time_point`, and `c.now()` on a const `C`,
/// `noexcept`, returning `time_point`. Successive calls never go backwards.
template <class C>
concept time_source = std::copy_constructible<C> && requires(const C& c) {
  typename C::duration;
  typename C::time_point;
  { c.now() } noexcept -> std::same_as<typename C::time_point>;
};

/// @brief The default time source: `std::chrono::steady_clock`.
///
/// **Thread safety:** stateless. Costs one `clock_gettime(CLOCK_MONOTONIC)` per call (its cost
/// is measured beside the rate limiter in benchmarks/RESULTS.md); hot paths that already know
/// the time take it as an argument instead.
struct steady_time {
  using duration = std::chrono::steady_clock::duration;
  using time_point = std::chrono::steady_clock::time_point;
  [[nodiscard]] auto now() const noexcept -> time_point { return std::chrono::steady_clock::now(); }
};

/// @brief A clock that moves only when told to: the time source of every distkit test.
///
/// Copies share one time, so a test keeps a `manual_clock` and hands a copy to the primitive
/// under test; `advance()` on either is seen by both. Time starts at zero (`time_point{}`).
///
/// **Thread safety:** all members may be called concurrently (an atomic counter of nanoseconds).
///
/// @code
/// distkit::manual_clock clock;
/// auto t0 = clock.now();
/// clock.advance(std::chrono::seconds(5));
/// assert(clock.now() - t0 == std::chrono::seconds(5));
/// @endcode
class manual_clock {
 public:
  using rep = std::int64_t;
  using period = std::nano;
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<manual_clock, duration>;
  static constexpr bool is_steady = true;

  manual_clock() : ns_(std::make_shared<std::atomic<rep>>(0)) {}
  explicit manual_clock(time_point start) : ns_(std::make_shared<std::atomic<rep>>(start.time_since_epoch().count())) {}

  [[nodiscard]] auto now() const noexcept -> time_point {
    return time_point(duration(ns_->load(std::memory_order_acquire)));
  }

  /// Moves time forward by `d` (a negative `d` is ignored: time never goes backwards).
  template <class Rep, class Period>
  void advance(std::chrono::duration<Rep, Period> d) noexcept {
    const auto step = std::chrono::duration_cast<duration>(d).count();
    if (step > 0) ns_->fetch_add(step, std::memory_order_acq_rel);
  }

  /// Sets the time to `t` if `t` is later than now; an earlier `t` is ignored.
  void set(time_point t) noexcept {
    rep current = ns_->load(std::memory_order_acquire);
    const rep target = t.time_since_epoch().count();
    while (current < target && !ns_->compare_exchange_weak(current, target, std::memory_order_acq_rel)) {
    }
  }

 private:
  std::shared_ptr<std::atomic<rep>> ns_;
};

static_assert(time_source<steady_time>);
static_assert(time_source<manual_clock>);

}  // namespace distkit::inline v0
