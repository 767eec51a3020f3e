// SPDX-License-Identifier: MIT
// distkit/metrics/pipeline.hpp: exports a pipeline's items in flight and per-stage counts to a
// metrics_registry, read from the pipeline's own counters when the registry is scraped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "distkit/metrics.hpp"
#include "distkit/pipeline.hpp"

namespace distkit::inline v0 {

/// @brief The registration of one pipeline's metrics; removes them when destroyed.
///
/// The pipeline already counts per stage (`pipeline::stats()`, under its own mutex), so nothing
/// is added to its hot path: each series reads `stats()` at scrape time. Series, with a
/// `pipeline` label (and `stage`: `0` is the source, then each stage in order):
/// - `distkit_pipeline_items_in_flight`, `distkit_pipeline_peak_items_in_flight` (gauges);
/// - `distkit_pipeline_stage_items_in_total`, `_out_total`, `_dropped_total` (per stage);
/// - `distkit_pipeline_items_discarded_total` (by an error or a cancellation),
///   `distkit_pipeline_source_blocked_total` (times every token was in flight).
///
/// The pipeline's counters start again at each run, which Prometheus reads as a counter reset.
/// Destroy the registration before the pipeline and before the registry.
///
/// @code
/// distkit::metrics_registry registry;
/// auto p = distkit::make_pipeline(distkit::source(read_line), distkit::sink(distkit::serial_in_order, write));
/// distkit::pipeline_metrics exported{registry, p, "ingest"};
/// @endcode
class pipeline_metrics {
 public:
  /// @throws std::invalid_argument naming `label_values` if `name` is not valid UTF-8 or another
  ///         pipeline of this name is registered.
  template <class Pipeline>
  pipeline_metrics(metrics_registry& registry, const Pipeline& pipeline, std::string_view name) {
    const Pipeline* p = &pipeline;
    auto& in_flight = registry.gauge_callback_family("distkit_pipeline_items_in_flight",
                                                     "Items between the source and the sink now.", {"pipeline"});
    gauges_.push_back(in_flight.add({name}, [p] { return static_cast<double>(p->stats().in_flight); }));
    auto& peak = registry.gauge_callback_family("distkit_pipeline_peak_items_in_flight",
                                                "Most items ever in flight in the run.", {"pipeline"});
    gauges_.push_back(peak.add({name}, [p] { return static_cast<double>(p->stats().peak_in_flight); }));
    auto& discarded =
        registry.counter_callback_family("distkit_pipeline_items_discarded_total",
                                         "Items discarded unfinished by an error or a cancellation.", {"pipeline"});
    counters_.push_back(discarded.add({name}, [p] { return p->stats().discarded; }));
    auto& blocked =
        registry.counter_callback_family("distkit_pipeline_source_blocked_total",
                                         "Times the source was ready while every token was in flight.", {"pipeline"});
    counters_.push_back(blocked.add({name}, [p] { return p->stats().source_blocked_events; }));
    auto& items_in = registry.counter_callback_family(
        "distkit_pipeline_stage_items_in_total", "Items a stage's callable was called with.", {"pipeline", "stage"});
    auto& items_out =
        registry.counter_callback_family("distkit_pipeline_stage_items_out_total",
                                         "Items a stage passed on (the source: produced).", {"pipeline", "stage"});
    auto& dropped =
        registry.counter_callback_family("distkit_pipeline_stage_items_dropped_total",
                                         "Items a stage filtered out (returned empty).", {"pipeline", "stage"});
    const std::size_t stages = pipeline.stats().stages.size();
    for (std::size_t i = 0; i < stages; ++i) {
      const std::string stage = std::to_string(i);
      counters_.push_back(items_in.add({name, stage}, [p, i] { return p->stats().stages[i].items_in; }));
      counters_.push_back(items_out.add({name, stage}, [p, i] { return p->stats().stages[i].items_out; }));
      counters_.push_back(dropped.add({name, stage}, [p, i] { return p->stats().stages[i].items_dropped; }));
    }
  }

 private:
  std::vector<callback_family<std::uint64_t>::handle> counters_;
  std::vector<callback_family<double>::handle> gauges_;
};

}  // namespace distkit::inline v0
