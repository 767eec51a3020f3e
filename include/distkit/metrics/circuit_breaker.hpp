// SPDX-License-Identifier: MIT
// distkit/metrics/circuit_breaker.hpp: the metrics policy that feeds a circuit breaker's calls
// and transitions into a metrics_registry.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

#include "distkit/circuit_breaker.hpp"
#include "distkit/metrics.hpp"

namespace distkit::inline v0 {

/// @brief A `circuit_breaker` metrics policy writing to a `metrics_registry`, one `breaker`
/// label value per breaker:
/// - `distkit_circuit_breaker_calls_total{breaker, outcome}`: `success`, `failure`,
///   `slow_success`, `slow_failure` (recorded calls), `ignored` (exceptions the predicates
///   ignore), `not_permitted` (refused);
/// - `distkit_circuit_breaker_transitions_total{breaker, to}`: transitions into each state;
/// - `distkit_circuit_breaker_state{breaker, state}`: 1 for the current state, 0 for the others.
///
/// Every series is created by the constructor, so the hooks only add to counters: a recorded
/// call costs one `counter::inc`.
/// **Thread safety:** copies share the registry's metrics; hooks may run concurrently.
///
/// @code
/// distkit::metrics_registry registry;
/// distkit::circuit_breaker<distkit::count_window, distkit::steady_time, distkit::breaker_registry_metrics>
///     breaker{{}, {}, distkit::breaker_registry_metrics{registry, "payments"}};
/// @endcode
class breaker_registry_metrics {
 public:
  /// @throws std::invalid_argument naming `label_values` if `breaker` is not valid UTF-8.
  breaker_registry_metrics(metrics_registry& registry, std::string_view breaker) {
    auto& calls = registry.counter_family("distkit_circuit_breaker_calls_total",
                                          "Calls through a circuit breaker, by outcome.", {"breaker", "outcome"});
    calls_[0] = &calls.with({breaker, "success"});
    calls_[1] = &calls.with({breaker, "failure"});
    calls_[2] = &calls.with({breaker, "slow_success"});
    calls_[3] = &calls.with({breaker, "slow_failure"});
    ignored_ = &calls.with({breaker, "ignored"});
    not_permitted_ = &calls.with({breaker, "not_permitted"});
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

  void on_call(call_outcome outcome) noexcept { calls_[(outcome.failed ? 1U : 0U) | (outcome.slow ? 2U : 0U)]->inc(); }
  void on_ignored() noexcept { ignored_->inc(); }
  void on_not_permitted(breaker_state /*state*/) noexcept { not_permitted_->inc(); }
  void on_transition(const state_transition& event) noexcept {
    transitions_[static_cast<std::size_t>(event.to)]->inc();
    state_[static_cast<std::size_t>(event.from)]->set(0);
    state_[static_cast<std::size_t>(event.to)]->set(1);
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
  std::array<counter*, state_count> transitions_{};
  std::array<gauge*, state_count> state_{};
};

static_assert(breaker_metrics_policy<breaker_registry_metrics>);
static_assert(breaker_metrics_policy<breaker_no_metrics>);

}  // namespace distkit::inline v0
