// SPDX-License-Identifier: MIT
// distkit/metrics/rate_limiter.hpp: the metrics policy that feeds a rate limiter's decisions
// into a metrics_registry.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

#include "distkit/metrics.hpp"
#include "distkit/rate_limiter.hpp"

namespace distkit::inline v0 {

/// @brief A `rate_limiter` metrics policy writing to a `metrics_registry`, one `limiter` label
/// value per limiter:
/// `distkit_rate_limiter_decisions_total{limiter, decision, reason}` with `decision` `allowed`
/// or `denied` and `reason` `none`, `rate_limited`, `cost_exceeds_limit` or
/// `store_unavailable` (allowed or denied by the store's failure mode).
///
/// The five series that can occur are created by the constructor; a decision costs one
/// `counter::inc` picked from a table.
/// **Thread safety:** copies share the registry's metrics; hooks may run concurrently.
///
/// @code
/// distkit::metrics_registry registry;
/// distkit::rate_limiter<distkit::gcra, distkit::steady_time, distkit::local_store<distkit::gcra>,
///                       distkit::limiter_registry_metrics>
///     limiter{{.limit = 100, .window = std::chrono::seconds(1)}, {}, {registry, "api"}};
/// @endcode
class limiter_registry_metrics {
 public:
  /// @throws std::invalid_argument naming `label_values` if `limiter` is not valid UTF-8.
  limiter_registry_metrics(metrics_registry& registry, std::string_view limiter) {
    auto& decisions =
        registry.counter_family("distkit_rate_limiter_decisions_total",
                                "Rate limiter decisions, by decision and reason.", {"limiter", "decision", "reason"});
    counter& allowed = decisions.with({limiter, "allowed", "none"});
    counter& limited = decisions.with({limiter, "denied", "rate_limited"});
    counter& too_costly = decisions.with({limiter, "denied", "cost_exceeds_limit"});
    counter& unavailable_allowed = decisions.with({limiter, "allowed", "store_unavailable"});
    counter& unavailable_denied = decisions.with({limiter, "denied", "store_unavailable"});
    // [allowed][reason]; the combinations no store returns count with the nearest series.
    table_ = {{
        {&limited, &limited, &too_costly, &unavailable_denied},
        {&allowed, &allowed, &allowed, &unavailable_allowed},
    }};
  }

  DISTKIT_ALWAYS_INLINE void on_decision(const decision& d) noexcept {
    table_[d.allowed ? 1 : 0][static_cast<std::size_t>(d.reason) & 3U]->inc();
  }

 private:
  std::array<std::array<counter*, 4>, 2> table_{};
};

static_assert(limiter_metrics_policy<limiter_registry_metrics>);
static_assert(limiter_metrics_policy<limiter_no_metrics>);

}  // namespace distkit::inline v0
