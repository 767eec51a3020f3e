// SPDX-License-Identifier: MIT
// distkit/metrics/circuit_breaker.hpp: the metrics policy that feeds a circuit breaker's calls
// and transitions into a metrics_registry.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <string_view>
#include <utility>

#include "distkit/circuit_breaker.hpp"
#include "distkit/metrics.hpp"

namespace distkit::inline v0 {

/// @brief A `circuit_breaker` metrics policy writing to a `metrics_registry`, one `breaker`
/// label value per breaker:
/// - `distkit_circuit_breaker_calls_total{breaker, outcome}`: `success`, `failure`,
///   `slow_success`, `slow_failure` (recorded calls), `ignored` (exceptions the predicates
///   ignore), `not_permitted` (refused);
/// - `distkit_circuit_breaker_call_duration_seconds{breaker, outcome}`: a histogram of the
///   `elapsed` each call was recorded with, `outcome` = `success` or `failure` (slow or not) or
///   `ignored` (resilience4j's `calls` timer with `kind` successful / failed / ignored);
/// - `distkit_circuit_breaker_transitions_total{breaker, to}`: transitions into each state;
/// - `distkit_circuit_breaker_state{breaker, state}`: 1 for the current state, 0 for the others.
///
/// Every series is created by the constructor, so the hooks only add to counters and
/// histograms: a recorded call costs one `counter::inc` and one `histogram::observe`. Each
/// duration histogram takes a bucket array per thread that records into it (16 KiB with the
/// default `durations` options, which tell values apart up to 68.7 s); pass narrower
/// `histogram_options` to take less.
/// **Thread safety:** copies share the registry's metrics; hooks may run concurrently.
///
/// @code
/// distkit::metrics_registry registry;
/// distkit::circuit_breaker<distkit::count_window, distkit::steady_time, distkit::breaker_registry_metrics>
///     breaker{{}, {}, distkit::breaker_registry_metrics{registry, "payments"}};
/// @endcode
class breaker_registry_metrics {
 public:
  /// @param registry where the series are created (it must outlive this policy and its copies)
  /// @param breaker the `breaker` label value of every series
  /// @param durations how the call-duration histograms record: by default nanoseconds exposed
  ///        as seconds, Prometheus's default `le` bounds (5 ms to 10 s).
  /// @throws std::invalid_argument naming `label_values` if `breaker` is not valid UTF-8, or the
  ///         `histogram_options` member that is out of range.
  breaker_registry_metrics(metrics_registry& registry, std::string_view breaker,
                           histogram_options durations = default_durations()) {
    auto& calls = registry.counter_family("distkit_circuit_breaker_calls_total",
                                          "Calls through a circuit breaker, by outcome.", {"breaker", "outcome"});
    calls_[0] = &calls.with({breaker, "success"});
    calls_[1] = &calls.with({breaker, "failure"});
    calls_[2] = &calls.with({breaker, "slow_success"});
    calls_[3] = &calls.with({breaker, "slow_failure"});
    ignored_ = &calls.with({breaker, "ignored"});
    not_permitted_ = &calls.with({breaker, "not_permitted"});
    auto& seconds = registry.histogram_family("distkit_circuit_breaker_call_duration_seconds",
                                              "Durations of calls through a circuit breaker, by outcome.",
                                              {"breaker", "outcome"}, std::move(durations));
    durations_[0] = &seconds.with({breaker, "success"});
    durations_[1] = &seconds.with({breaker, "failure"});
    durations_[2] = &seconds.with({breaker, "ignored"});
    auto& transitions =
        registry.counter_family("distkit_circuit_breaker_transitions_total",
                                "Circuit breaker state transitions, by the state entered.", {"breaker", "to"});
    auto& state =
        registry.gauge_family("distkit_circuit_breaker_state",
                              "1 for the circuit breaker's current state, 0 for the others.", {"breaker", "state"});
    for (std::size_t i = 0; i < state_count; ++i) {
      const std::string_view name = state_label(static_cast<breaker_state>(i));
      transitions_[i] = &transitions.with({breaker, name});
      state_[i] = &state.with({breaker, name});
    }
    state_[static_cast<std::size_t>(breaker_state::closed)]->set(1);
  }

  void on_call(call_outcome outcome, std::chrono::nanoseconds elapsed) noexcept {
    calls_[(outcome.failed ? 1U : 0U) | (outcome.slow ? 2U : 0U)]->inc();
    durations_[outcome.failed ? 1U : 0U]->observe(elapsed);
  }
  void on_ignored(std::chrono::nanoseconds elapsed) noexcept {
    ignored_->inc();
    durations_[2]->observe(elapsed);
  }
  void on_not_permitted(breaker_state /*state*/) noexcept { not_permitted_->inc(); }
  void on_transition(const state_transition& event) noexcept {
    transitions_[static_cast<std::size_t>(event.to)]->inc();
    state_[static_cast<std::size_t>(event.from)]->set(0);
    state_[static_cast<std::size_t>(event.to)]->set(1);
  }

  /// The default `durations` options: nanoseconds recorded, seconds exposed.
  static auto default_durations() -> histogram_options {
    histogram_options o;
    o.units_per_exposed = 1e9;
    return o;
  }

  /// The label value used for a state (`closed`, `half_open`...: Prometheus style, lower case).
  static constexpr auto state_label(breaker_state s) noexcept -> std::string_view {
    switch (s) {
      case breaker_state::closed:
        return "closed";
      case breaker_state::open:
        return "open";
      case breaker_state::half_open:
        return "half_open";
      case breaker_state::disabled:
        return "disabled";
      case breaker_state::forced_open:
        return "forced_open";
      case breaker_state::metrics_only:
        return "metrics_only";
    }
    return "unknown";
  }

 private:
  static constexpr std::size_t state_count = 6;
  std::array<counter*, 4> calls_{};
  counter* ignored_ = nullptr;
  counter* not_permitted_ = nullptr;
  std::array<histogram*, 3> durations_{};
  std::array<counter*, state_count> transitions_{};
  std::array<gauge*, state_count> state_{};
};

static_assert(breaker_metrics_policy<breaker_registry_metrics>);
static_assert(breaker_metrics_policy<breaker_no_metrics>);

}  // namespace distkit::inline v0
