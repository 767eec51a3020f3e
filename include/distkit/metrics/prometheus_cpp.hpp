// SPDX-License-Identifier: MIT
// distkit/metrics/prometheus_cpp.hpp: serves a distkit metrics_registry through prometheus-cpp,
// for programs that already expose prometheus-cpp metrics. Link `distkit::prometheus_cpp`
// (prometheus-cpp's core library, Debian `prometheus-cpp-dev`).
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

#include "distkit/metrics.hpp"

namespace distkit::inline v0 {

/// @brief A prometheus-cpp `Collectable` that reads a distkit `metrics_registry` at each scrape.
///
/// prometheus-cpp scrapes `Collectable`s: its own `prometheus::Registry` is one, and an
/// `Exposer` (prometheus-cpp-pull) or a `Gateway` (prometheus-cpp-push) takes any number of
/// them. Register this one beside your registry, and distkit's metrics appear on the same
/// `/metrics` page, with the same names, labels, `le` bounds and values as distkit's own
/// exposition:
///
/// @code
/// #include <prometheus/exposer.h>
/// #include <prometheus/registry.h>
/// distkit::metrics_registry registry;
/// prometheus::Exposer exposer{"127.0.0.1:8080"};
/// auto theirs = std::make_shared<prometheus::Registry>();
/// auto ours = std::make_shared<distkit::prometheus_cpp_collectable>(registry);
/// exposer.RegisterCollectable(theirs);
/// exposer.RegisterCollectable(ours);
/// @endcode
///
/// The distkit registry must outlive this object. Names must not collide with the other
/// collectables' (prometheus-cpp does not merge families).
/// **Thread safety:** `Collect` may run concurrently with every distkit metric operation.
class prometheus_cpp_collectable : public prometheus::Collectable {
 public:
  explicit prometheus_cpp_collectable(const metrics_registry& registry) noexcept : registry_(&registry) {}

  /// Converts every distkit family to a `prometheus::MetricFamily`.
  [[nodiscard]] auto Collect() const -> std::vector<prometheus::MetricFamily> override {
    std::vector<prometheus::MetricFamily> out;
    for (const collected_family& f : registry_->collect()) {
      prometheus::MetricFamily family;
      family.name = f.name;
      family.help = f.help;
      family.type = convert(f.type);
      family.metric.reserve(f.metrics.size());
      for (const collected_metric& m : f.metrics) {
        prometheus::ClientMetric metric;
        for (std::size_t i = 0; i < f.label_names.size(); ++i) {
          metric.label.push_back(prometheus::ClientMetric::Label{f.label_names[i], m.label_values[i]});
        }
        switch (f.type) {
          case metric_type::counter:
            metric.counter.value = m.value;
            break;
          case metric_type::gauge:
            metric.gauge.value = m.value;
            break;
          case metric_type::histogram:
            metric.histogram.sample_count = m.count;
            metric.histogram.sample_sum = m.sum;
            for (const auto& [le, n] : m.buckets) {
              metric.histogram.bucket.push_back(prometheus::ClientMetric::Bucket{n, le});
            }
            break;
        }
        family.metric.push_back(std::move(metric));
      }
      out.push_back(std::move(family));
    }
    return out;
  }

 private:
  static auto convert(metric_type t) noexcept -> prometheus::MetricType {
    switch (t) {
      case metric_type::counter:
        return prometheus::MetricType::Counter;
      case metric_type::gauge:
        return prometheus::MetricType::Gauge;
      case metric_type::histogram:
        return prometheus::MetricType::Histogram;
    }
    return prometheus::MetricType::Untyped;
  }

  const metrics_registry* registry_;
};

}  // namespace distkit::inline v0
