// SPDX-License-Identifier: MIT
// distkit/metrics/bloom_filter.hpp: exports a Bloom filter's size, fill and estimated
// false-positive rate to a metrics_registry, computed from the filter when it is scraped.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "distkit/bloom_filter.hpp"
#include "distkit/metrics.hpp"

namespace distkit::inline v0 {

/// @brief The registration of one Bloom filter's metrics; removes them when destroyed.
///
/// Nothing is added to `insert` or `contains`: each series reads the filter at scrape time.
/// Series, with a `filter` label:
/// - `distkit_bloom_filter_size_bytes` (m / 8) and `distkit_bloom_filter_hashes_per_key` (k);
/// - `distkit_bloom_filter_fill_ratio` (bits set / m);
/// - `distkit_bloom_filter_approximate_items` (distinct keys estimated from the bits set);
/// - `distkit_bloom_filter_estimated_false_positive_rate` (from the bits actually set: the
///   rate a `contains` of a key never inserted answers true now, which grows as the filter
///   fills past its design).
///
/// A scrape reads every word (O(m)). With `lock_free_concurrency` it may run while other
/// threads insert (each word is read atomically; the figures are a moment's, possibly
/// mid-insert); with the default single-writer policy, scrape only where no insert runs at the
/// same time (the filter is built, then read), like any other read. Destroy it before the
/// filter and before the registry.
///
/// @code
/// distkit::metrics_registry registry;
/// distkit::bloom_filter<std::string> seen(1'000'000, 0.01);
/// distkit::bloom_filter_metrics exported{registry, seen, "seen_urls"};
/// @endcode
class bloom_filter_metrics {
 public:
  /// @throws std::invalid_argument naming `label_values` if `name` is not valid UTF-8 or another
  ///         filter of this name is registered.
  template <class Filter>
  bloom_filter_metrics(metrics_registry& registry, const Filter& filter, std::string_view name) {
    const auto gauge = [&](std::string_view metric, std::string_view help, auto read) {
      auto& family = registry.gauge_callback_family(metric, help, {"filter"});
      handles_.push_back(family.add({name}, [&filter, read] { return static_cast<double>(read(filter)); }));
    };
    gauge("distkit_bloom_filter_size_bytes", "Size of the filter's bit array (m / 8).",
          [](const Filter& f) { return f.memory_bytes(); });
    gauge("distkit_bloom_filter_hashes_per_key", "Bits set per key (k).",
          [](const Filter& f) { return f.hash_count(); });
    gauge("distkit_bloom_filter_fill_ratio", "Share of the filter's bits that are set.",
          [](const Filter& f) { return static_cast<double>(f.bits_set()) / static_cast<double>(f.bit_count()); });
    gauge("distkit_bloom_filter_approximate_items", "Distinct keys inserted, estimated from the bits set.",
          [](const Filter& f) { return f.approximate_count(); });
    gauge("distkit_bloom_filter_estimated_false_positive_rate",
          "Probability that a key never inserted is reported present, from the bits set now.",
          [](const Filter& f) { return f.estimated_false_positive_rate(); });
  }

 private:
  std::vector<callback_family<double>::handle> handles_;
};

}  // namespace distkit::inline v0
