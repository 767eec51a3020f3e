// SPDX-License-Identifier: MIT
// distkit/metrics/worker_pool.hpp: exports a worker pool's task counts and queue depth to a
// metrics_registry, read from the pool's own counters when the registry is scraped.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "distkit/metrics.hpp"
#include "distkit/worker_pool.hpp"

namespace distkit::inline v0 {

/// @brief The registration of one worker pool's metrics; removes them when destroyed.
///
/// The pool already counts its tasks (per worker, without contention: `worker_pool::stats()`),
/// so nothing is added to its hot paths: each series is a function reading `stats()` at scrape
/// time. Series, with a `pool` label:
/// - `distkit_worker_pool_tasks_submitted_total`, `_completed_total`, `_failed_total`,
///   `_stolen_total`, `_rejected_total`, `_cancelled_total`, `_ran_in_caller_total`
///   (the `pool_stats` fields of the same names);
/// - `distkit_worker_pool_queue_depth` (tasks waiting) and `distkit_worker_pool_threads`.
///
/// Destroy it before the pool and before the registry.
///
/// @code
/// distkit::metrics_registry registry;
/// distkit::worker_pool<> pool{{.threads = 4}};
/// distkit::worker_pool_metrics exported{registry, pool, "handlers"};
/// @endcode
class worker_pool_metrics {
 public:
  /// @throws std::invalid_argument naming `label_values` if `name` is not valid UTF-8 or another
  ///         pool of this name is registered.
  template <class Pool>
  worker_pool_metrics(metrics_registry& registry, const Pool& pool, std::string_view name) {
    const auto counter = [&](std::string_view metric, std::string_view help, auto field) {
      auto& family = registry.counter_callback_family(metric, help, {"pool"});
      handles_.push_back(family.add({name}, [&pool, field]() -> std::uint64_t { return pool.stats().*field; }));
    };
    counter("distkit_worker_pool_tasks_submitted_total", "Tasks accepted into the pool.", &pool_stats::submitted);
    counter("distkit_worker_pool_tasks_completed_total", "Accepted tasks that ran to the end.", &pool_stats::completed);
    counter("distkit_worker_pool_tasks_failed_total", "Posted tasks that threw.", &pool_stats::failed);
    counter("distkit_worker_pool_tasks_stolen_total", "Tasks a worker took from another worker's deque.",
            &pool_stats::stolen);
    counter("distkit_worker_pool_tasks_rejected_total", "Tasks refused by a full inbox.", &pool_stats::rejected);
    counter("distkit_worker_pool_tasks_cancelled_total", "Accepted tasks discarded by a cancelling shutdown.",
            &pool_stats::cancelled);
    counter("distkit_worker_pool_tasks_ran_in_caller_total", "Tasks run by the submitter (caller_runs policy).",
            &pool_stats::ran_in_caller);
    auto& depth = registry.gauge_callback_family("distkit_worker_pool_queue_depth", "Tasks waiting to run.", {"pool"});
    gauge_handles_.push_back(depth.add({name}, [&pool] { return static_cast<double>(pool.stats().queued); }));
    auto& threads = registry.gauge_callback_family("distkit_worker_pool_threads", "Worker threads.", {"pool"});
    gauge_handles_.push_back(threads.add({name}, [&pool] { return static_cast<double>(pool.stats().threads); }));
  }

 private:
  std::vector<callback_family<std::uint64_t>::handle> handles_;
  std::vector<callback_family<double>::handle> gauge_handles_;
};

}  // namespace distkit::inline v0
