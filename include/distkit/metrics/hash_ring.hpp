// SPDX-License-Identifier: MIT
// distkit/metrics/hash_ring.hpp: exports a hash ring's membership to a metrics_registry, read
// from the ring when it is scraped.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "distkit/hash_ring.hpp"
#include "distkit/metrics.hpp"

namespace distkit::inline v0 {

/// @brief The registration of one hash ring's metrics; removes them when destroyed.
///
/// Series, with a `ring` label, read at scrape time (nothing is added to lookups):
/// - `distkit_hash_ring_nodes`: nodes in the ring;
/// - `distkit_hash_ring_weight`: the sum of their weights;
/// - `distkit_hash_ring_max_weight_share`: the largest node's share of the total weight (the
///   share of keys the placement aims to give it; 1 / nodes when weights are equal).
///
/// A `concurrent_hash_ring` is read through its current snapshot, so scrapes may run while it
/// changes; a plain `hash_ring` must not change during a scrape (like any other read). Destroy
/// it before the ring and before the registry.
///
/// @code
/// distkit::metrics_registry registry;
/// distkit::concurrent_hash_ring<std::string> ring;
/// distkit::hash_ring_metrics exported{registry, ring, "cache"};
/// @endcode
class hash_ring_metrics {
 public:
  /// @throws std::invalid_argument naming `label_values` if `name` is not valid UTF-8 or another
  ///         ring of this name is registered.
  template <class Ring>
  hash_ring_metrics(metrics_registry& registry, const Ring& ring, std::string_view name) {
    const auto gauge = [&](std::string_view metric, std::string_view help, auto read) {
      auto& family = registry.gauge_callback_family(metric, help, {"ring"});
      handles_.push_back(family.add({name}, [&ring, read] {
        if constexpr (requires { ring.snapshot(); }) {
          return read(*ring.snapshot());
        } else {
          return read(ring);
        }
      }));
    };
    gauge("distkit_hash_ring_nodes", "Nodes in the ring.", [](const auto& r) { return static_cast<double>(r.size()); });
    gauge("distkit_hash_ring_weight", "Sum of the nodes' weights.",
          [](const auto& r) { return static_cast<double>(totals(r).first); });
    gauge("distkit_hash_ring_max_weight_share", "The largest node's share of the total weight.", [](const auto& r) {
      const auto [total, largest] = totals(r);
      return total == 0 ? 0.0 : static_cast<double>(largest) / static_cast<double>(total);
    });
  }

 private:
  template <class R>
  static auto totals(const R& r) -> std::pair<std::uint64_t, std::uint64_t> {
    std::uint64_t total = 0;
    std::uint64_t largest = 0;
    for (std::size_t i = 0; i < r.size(); ++i) {
      total += r.weight_at(i);
      largest = std::max<std::uint64_t>(largest, r.weight_at(i));
    }
    return {total, largest};
  }

  std::vector<callback_family<double>::handle> handles_;
};

}  // namespace distkit::inline v0
