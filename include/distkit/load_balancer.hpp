// SPDX-License-Identifier: MIT
// distkit/load_balancer.hpp: a client-side load balancer — smooth weighted round robin, P2C
// least-request, P2C peak-EWMA and hash-ring affinity pickers over a lock-free membership
// snapshot, with outlier ejection on one circuit breaker per endpoint, a maximum ejection
// percentage, a panic threshold, slow start, and admission by an adaptive concurrency limit or
// a rate limit.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "distkit/adaptive_limit.hpp"
#include "distkit/circuit_breaker.hpp"
#include "distkit/clock.hpp"
#include "distkit/detail/error.hpp"
#include "distkit/detail/saturating_time.hpp"
#include "distkit/detail/snapshot_cell.hpp"
#include "distkit/hash.hpp"
#include "distkit/hash_ring.hpp"
#include "distkit/rate_limiter.hpp"

namespace distkit::inline v0 {

namespace detail {

// The live, per-endpoint state every picker reads. It outlives every snapshot that points to it
// (the balancer keeps each endpoint it ever held), so a request handle can always report to it.
struct alignas(64) lb_endpoint_core {
  std::atomic<std::int64_t> active{0};         // requests in flight
  std::atomic<std::uint64_t> ewma_bits{0};     // peak-EWMA latency in ns, as double bits
  std::atomic<std::int64_t> ewma_stamp_ns{0};  // time of the last EWMA update
  std::atomic<std::uint32_t> flags{0};         // ejected_flag | ramping_flag
  std::atomic<std::int64_t> retry_at_ns{0};    // an ejected endpoint is not tried before this
  std::atomic<std::int64_t> ramp_start_ns{0};  // slow start began here
  std::atomic<std::uint32_t> consecutive_failures{0};
  std::atomic<std::uint64_t> since_sweep{0};  // outcomes since the last latency sweep
  static constexpr std::uint32_t ejected_flag = 1;
  static constexpr std::uint32_t ramping_flag = 2;

  [[nodiscard]] auto ewma_ns() const noexcept -> double {
    return std::bit_cast<double>(ewma_bits.load(std::memory_order_relaxed));
  }
};

inline constexpr std::uint32_t no_endpoint = std::numeric_limits<std::uint32_t>::max();

// exp(-x) for x >= 0, the weight the peak-EWMA keeps after a gap of x decay times. Below 2^-10
// (gaps under a thousandth of the decay time: 10 ms for Finagle's 10 s, the usual gap between
// two responses of a busy endpoint) three terms of the series are within 2^-30 / 6 of it, at a
// fraction of a call to std::exp.
[[nodiscard]] inline auto ewma_keep(double x) noexcept -> double {
  if (x < 0x1p-10) return 1.0 - x + 0.5 * x * x;
  return std::exp(-x);
}

}  // namespace detail

/// @brief One member of a snapshot as a picker sees it when building its table.
struct lb_member {
  std::string_view name;     ///< the endpoint's bytes (empty unless the endpoint is `byte_hashable`)
  std::uint32_t weight = 1;  ///< configured weight, >= 1
};

/// @brief What a picker may ask about the endpoints during one pick.
///
/// Indices are positions in the current snapshot, `0 .. size() - 1`. `available(i)` is false for
/// an ejected endpoint whose ejection has not yet run out (always true in panic mode);
/// `ramp(i)` is the slow-start factor in (0, 1] (1 outside slow start).
class lb_pick_view {
 public:
  struct entry {
    detail::lb_endpoint_core* core;
    std::uint32_t weight;
  };

  lb_pick_view(std::span<const entry> entries, std::int64_t now_ns, bool panic, std::uint64_t key_hash, bool has_key,
               std::int64_t ramp_window_ns, double ramp_exponent, double ramp_floor) noexcept
      : entries_(entries),
        now_ns_(now_ns),
        panic_(panic),
        key_hash_(key_hash),
        has_key_(has_key),
        ramp_window_ns_(ramp_window_ns),
        ramp_exponent_(ramp_exponent),
        ramp_floor_(ramp_floor) {}

  [[nodiscard]] auto size() const noexcept -> std::uint32_t { return static_cast<std::uint32_t>(entries_.size()); }
  [[nodiscard]] auto active(std::uint32_t i) const noexcept -> std::int64_t {
    return entries_[i].core->active.load(std::memory_order_relaxed);
  }
  [[nodiscard]] auto weight(std::uint32_t i) const noexcept -> std::uint32_t { return entries_[i].weight; }
  /// The peak-EWMA latency in nanoseconds (0 before the first response).
  [[nodiscard]] auto ewma_ns(std::uint32_t i) const noexcept -> double { return entries_[i].core->ewma_ns(); }
  [[nodiscard]] auto available(std::uint32_t i) const noexcept -> bool {
    const std::uint32_t f = entries_[i].core->flags.load(std::memory_order_relaxed);
    if (DISTKIT_LIKELY((f & detail::lb_endpoint_core::ejected_flag) == 0) || panic_) return true;
    return now_ns_ >= entries_[i].core->retry_at_ns.load(std::memory_order_relaxed);
  }
  [[nodiscard]] auto ramp(std::uint32_t i) const noexcept -> double {
    const std::uint32_t f = entries_[i].core->flags.load(std::memory_order_relaxed);
    if (DISTKIT_LIKELY((f & detail::lb_endpoint_core::ramping_flag) == 0)) return 1.0;
    const std::int64_t elapsed = now_ns_ - entries_[i].core->ramp_start_ns.load(std::memory_order_relaxed);
    if (elapsed >= ramp_window_ns_) return 1.0;
    const double t = elapsed <= 0 ? 0.0 : static_cast<double>(elapsed) / static_cast<double>(ramp_window_ns_);
    return std::max(ramp_floor_, std::pow(t, ramp_exponent_));
  }
  /// `available(i)`, and inside slow start accepted with probability `ramp(i)` (for pickers that
  /// cannot scale a weight, such as round robin).
  [[nodiscard]] auto admits(std::uint32_t i, std::uint64_t random) const noexcept -> bool {
    if (!available(i)) return false;
    const double r = ramp(i);
    return r >= 1.0 || static_cast<double>(random >> 11) * 0x1.0p-53 < r;
  }
  [[nodiscard]] auto has_key() const noexcept -> bool { return has_key_; }
  [[nodiscard]] auto key_hash() const noexcept -> std::uint64_t { return key_hash_; }
  [[nodiscard]] auto panic() const noexcept -> bool { return panic_; }
  [[nodiscard]] auto now_ns() const noexcept -> std::int64_t { return now_ns_; }

 private:
  std::span<const entry> entries_;
  std::int64_t now_ns_;
  bool panic_;
  std::uint64_t key_hash_;
  bool has_key_;
  std::int64_t ramp_window_ns_;
  double ramp_exponent_;
  double ramp_floor_;
};

/// @brief A picking policy of `load_balancer`.
///
/// Requires a member type `table` (built once per membership snapshot, immutable after) and
/// - `p.build(members) -> table` for `std::span<const lb_member>` (at least one member);
/// - `p.choose(t, view, random) -> std::uint32_t`: an index with `view.available(index)`, or
///   `lb_no_endpoint` when it finds none; `random` is a callable returning 64 random bits.
/// Optional: `static constexpr bool needs_key_bytes = true` (the table hashes endpoint names:
/// the endpoint must be `byte_hashable`), `static constexpr bool uses_round_robin_counter`.
namespace detail {
// Stands for the random source a picker is given (a callable returning 64 random bits).
struct lb_random_archetype {
  auto operator()() const noexcept -> std::uint64_t;
};
}  // namespace detail

template <class P>
concept lb_picker =
    std::copy_constructible<P> && requires(const P& p, std::span<const lb_member> members, const typename P::table& t,
                                           const lb_pick_view& view, const detail::lb_random_archetype& random) {
      { p.build(members) } -> std::same_as<typename P::table>;
      { p.choose(t, view, random) } -> std::same_as<std::uint32_t>;
    };

/// The index a picker returns when no endpoint is available.
inline constexpr std::uint32_t lb_no_endpoint = detail::no_endpoint;

namespace detail {

// Any available index, scanning from a random start (the last resort of every picker).
template <class Random>
auto scan_available(const lb_pick_view& view, Random&& random) noexcept -> std::uint32_t {
  const std::uint32_t n = view.size();
  if (n == 0) return no_endpoint;
  const std::uint32_t start = static_cast<std::uint32_t>(random() % n);
  for (std::uint32_t k = 0; k < n; ++k) {
    const std::uint32_t i = start + k < n ? start + k : start + k - n;
    if (view.available(i)) return i;
  }
  return no_endpoint;
}

// A uniformly random available index, a few draws before falling back to a scan.
template <class Random>
auto random_available(const lb_pick_view& view, Random& random, std::uint32_t not_this) noexcept -> std::uint32_t {
  const std::uint32_t n = view.size();
  for (int attempt = 0; attempt < 4; ++attempt) {
    const std::uint32_t i = static_cast<std::uint32_t>((random() >> 32) * n >> 32);
    if (i != not_this && view.available(i)) return i;
  }
  return no_endpoint;
}

template <class Random>
void two_candidates(const lb_pick_view& view, Random& random, std::uint32_t& a, std::uint32_t& b) noexcept {
  const std::uint32_t n = view.size();
  const std::uint64_t r = random();
  // Two distinct indices from one draw (Lemire's multiply-shift on each half).
  a = static_cast<std::uint32_t>(((r & 0xFFFFFFFFULL) * n) >> 32);
  b = static_cast<std::uint32_t>(((r >> 32) * (n - 1)) >> 32);
  if (b >= a) ++b;
  if (DISTKIT_UNLIKELY(!view.available(a))) a = random_available(view, random, b);
  if (DISTKIT_UNLIKELY(!view.available(b))) b = random_available(view, random, a);
}

}  // namespace detail

/// @brief Smooth weighted round robin, nginx's algorithm: each endpoint gets picks in proportion
/// to its weight, interleaved as evenly as possible (weights 5, 1, 1 give a a b a c a a).
///
/// The sequence of one period is computed when the membership changes (weights are reduced by
/// their greatest common divisor and, if they still sum to more than `max(8192, N)`, scaled down
/// proportionally with every weight kept >= 1) and walked with one shared atomic counter, so a
/// pick is O(1) and lock-free. An unavailable endpoint is skipped (its turn goes to the next in
/// the sequence); one in slow start takes its turn with probability `ramp` and passes it on
/// otherwise, which gives it the share of an endpoint of weight `ramp · weight` (exactly so when
/// the weights are equal).
class round_robin_picker {
 public:
  struct table {
    std::vector<std::uint32_t> sequence;
    std::unique_ptr<std::atomic<std::uint64_t>> next = std::make_unique<std::atomic<std::uint64_t>>(0);
  };

  [[nodiscard]] auto build(std::span<const lb_member> members) const -> table {
    table t;
    std::vector<std::uint64_t> w(members.size());
    std::uint64_t g = 0;
    for (std::size_t i = 0; i < members.size(); ++i) g = std::gcd(g, std::uint64_t{members[i].weight});
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < members.size(); ++i) total += w[i] = members[i].weight / g;
    const std::uint64_t cap = std::max<std::uint64_t>(8192, members.size());
    if (total > cap) {
      // Proportional scaling, every weight kept >= 1 (the sum may then exceed the cap by up to N).
      const double scale = static_cast<double>(cap) / static_cast<double>(total);
      total = 0;
      for (std::size_t i = 0; i < members.size(); ++i) {
        w[i] = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::llround(static_cast<double>(w[i]) * scale)));
        total += w[i];
      }
    }
    // nginx: every endpoint's current weight grows by its weight; the largest (first on ties)
    // is picked and loses the total.
    std::vector<std::int64_t> current(members.size(), 0);
    t.sequence.reserve(total);
    for (std::uint64_t step = 0; step < total; ++step) {
      std::size_t best = 0;
      for (std::size_t i = 0; i < members.size(); ++i) {
        current[i] += static_cast<std::int64_t>(w[i]);
        if (current[i] > current[best]) best = i;
      }
      current[best] -= static_cast<std::int64_t>(total);
      t.sequence.push_back(static_cast<std::uint32_t>(best));
    }
    return t;
  }

  template <class Random>
  [[nodiscard]] auto choose(const table& t, const lb_pick_view& view, Random&& random) const noexcept -> std::uint32_t {
    const std::size_t period = t.sequence.size();
    const std::uint64_t first = t.next->fetch_add(1, std::memory_order_relaxed);
    std::uint32_t i = t.sequence[first % period];
    if (DISTKIT_LIKELY(view.admits(i, random()))) return i;
    // Skip forward along the sequence (a bounded number of turns), then scan.
    const std::size_t tries = std::min<std::size_t>(period, 64);
    for (std::size_t k = 1; k < tries; ++k) {
      i = t.sequence[t.next->fetch_add(1, std::memory_order_relaxed) % period];
      if (view.admits(i, random())) return i;
    }
    return detail::scan_available(view, random);
  }
};

/// @brief Power of two choices, least request (Envoy's `LEAST_REQUEST`): two distinct endpoints
/// drawn uniformly, the one with the lower `(active + 1)^bias / (weight · ramp)` wins (the first
/// on ties). With equal weights and no slow start it is the one with fewer requests in flight.
///
/// `active_request_bias` is Envoy's: 1 weighs load and weight equally, 0 ignores load (weights
/// only), larger values punish load more.
class p2c_least_request_picker {
 public:
  struct table {
    bool equal_weights = true;
  };

  /// @throws std::invalid_argument if `active_request_bias` is negative or not finite.
  p2c_least_request_picker() = default;
  explicit p2c_least_request_picker(double active_request_bias) : bias_(active_request_bias) {
    if (!(bias_ >= 0.0 && bias_ <= 1e6)) {
      detail::throw_invalid_argument("p2c_least_request_picker", "active_request_bias", "must be in [0, 1e6]",
                                     active_request_bias);
    }
  }

  [[nodiscard]] auto build(std::span<const lb_member> members) const -> table {
    table t;
    for (const lb_member& m : members) t.equal_weights = t.equal_weights && m.weight == members[0].weight;
    return t;
  }

  template <class Random>
  [[nodiscard]] auto choose(const table& t, const lb_pick_view& view, Random&& random) const noexcept -> std::uint32_t {
    const std::uint32_t n = view.size();
    if (n == 1) return view.available(0) ? 0 : lb_no_endpoint;
    std::uint32_t a = 0;
    std::uint32_t b = 0;
    detail::two_candidates(view, random, a, b);
    if (a == lb_no_endpoint || b == lb_no_endpoint) {
      if (a != lb_no_endpoint) return a;
      if (b != lb_no_endpoint) return b;
      return detail::scan_available(view, random);
    }
    const double ra = view.ramp(a);
    const double rb = view.ramp(b);
    if (t.equal_weights && bias_ == 1.0 && ra == 1.0 && rb == 1.0) return view.active(b) < view.active(a) ? b : a;
    return score(view, b, rb) < score(view, a, ra) ? b : a;
  }

  [[nodiscard]] auto active_request_bias() const noexcept -> double { return bias_; }

 private:
  [[nodiscard]] auto score(const lb_pick_view& view, std::uint32_t i, double ramp) const noexcept -> double {
    const double load = static_cast<double>(view.active(i) + 1);
    const double pressure = bias_ == 1.0 ? load : std::pow(load, bias_);
    return pressure / (static_cast<double>(view.weight(i)) * ramp);
  }

  double bias_ = 1.0;
};

/// @brief Power of two choices over peak-EWMA latency (Finagle's `P2CPeakEwma`): the cost of an
/// endpoint is its peak-sensitive moving average of response latency times `(active + 1)`,
/// divided by `weight · ramp`; of two distinct random endpoints the cheaper wins.
///
/// The average (kept by the balancer, decay time `load_balancer_options::ewma_decay`) jumps to a
/// latency above it at once and decays towards lower ones. An endpoint with no response yet
/// costs 0 while idle (so new endpoints get tried) and a large penalty per request in flight.
/// Unlike Finagle the average is not decayed on read: an idle slow endpoint keeps its cost until
/// it answers again (P2C still sends it requests when its partner is costlier).
class p2c_peak_ewma_picker {
 public:
  struct table {};
  /// The cost per request in flight of an endpoint that has not answered yet (Finagle's penalty).
  static constexpr double unknown_penalty = 1e15;

  [[nodiscard]] auto build(std::span<const lb_member> /*members*/) const -> table { return {}; }

  template <class Random>
  [[nodiscard]] auto choose(const table& /*t*/, const lb_pick_view& view, Random&& random) const noexcept
      -> std::uint32_t {
    const std::uint32_t n = view.size();
    if (n == 1) return view.available(0) ? 0 : lb_no_endpoint;
    std::uint32_t a = 0;
    std::uint32_t b = 0;
    detail::two_candidates(view, random, a, b);
    if (a == lb_no_endpoint || b == lb_no_endpoint) {
      if (a != lb_no_endpoint) return a;
      if (b != lb_no_endpoint) return b;
      return detail::scan_available(view, random);
    }
    return cost(view, b) < cost(view, a) ? b : a;
  }

  [[nodiscard]] static auto cost(const lb_pick_view& view, std::uint32_t i) noexcept -> double {
    const double ewma = view.ewma_ns(i);
    const auto active = static_cast<double>(view.active(i));
    const double raw = ewma == 0.0 ? unknown_penalty * active : ewma * (active + 1.0);
    return raw / (static_cast<double>(view.weight(i)) * view.ramp(i));
  }
};

/// @brief Affinity: the key's endpoint under a hash-ring placement (`ring_placement`,
/// `ketama_placement`, `maglev_placement`, `rendezvous_placement`...), the placement's next
/// distinct endpoint when it is unavailable. Keys that land on the same endpoint keep landing
/// there while it is available and the membership holds. Picks without a key use a random hash.
///
/// @tparam Placement  models `placement` (default `ring_placement`).
/// @tparam Hash       hashes the pick's key; models `hasher` (default `xxh3_hash`).
template <placement Placement = ring_placement, class Hash = xxh3_hash>
class hash_picker {
 public:
  static constexpr bool needs_key_bytes = true;
  using table = Placement;
  using hasher_type = Hash;

  hash_picker() = default;
  explicit hash_picker(Placement p, Hash h = Hash{}) : placement_(std::move(p)), hash_(std::move(h)) {}

  [[nodiscard]] auto build(std::span<const lb_member> members) const -> table {
    std::vector<ring_member> ring(members.size());
    for (std::size_t i = 0; i < members.size(); ++i) ring[i] = {members[i].name, members[i].weight};
    Placement t = placement_;
    t.build(ring);
    return t;
  }

  template <class Random>
  [[nodiscard]] auto choose(const table& t, const lb_pick_view& view, Random&& random) const -> std::uint32_t {
    const std::uint64_t h = view.has_key() ? view.key_hash() : random();
    const std::uint32_t first = t.lookup(h);
    if (DISTKIT_LIKELY(view.available(first))) return first;
    std::array<std::uint32_t, 32> order{};
    const std::size_t n = t.lookup_n(h, std::span<std::uint32_t>(order.data(), std::min<std::size_t>(32, view.size())));
    for (std::size_t k = 0; k < n; ++k) {
      if (view.available(order[k])) return order[k];
    }
    return detail::scan_available(view, random);
  }

  [[nodiscard]] auto hash_function() const noexcept -> const Hash& { return hash_; }

 private:
  Placement placement_;
  [[no_unique_address]] Hash hash_;
};

/// @brief Affinity with bounded loads (consistent hashing with bounded loads, as
/// `bounded_load_ring`, with requests in flight as the load): the first endpoint in the key's
/// placement order whose requests in flight are below `ceil((1 + epsilon) · (total + 1) · w / W)`.
template <placement Placement = ring_placement, class Hash = xxh3_hash>
class bounded_load_picker {
 public:
  static constexpr bool needs_key_bytes = true;
  using hasher_type = Hash;
  struct table {
    Placement placement;
    std::uint64_t total_weight = 0;
  };

  /// @throws std::invalid_argument if `epsilon` is not in (0, 100] ("epsilon").
  bounded_load_picker() = default;
  explicit bounded_load_picker(double epsilon, Placement p = Placement{}, Hash h = Hash{})
      : epsilon_(epsilon), placement_(std::move(p)), hash_(std::move(h)) {
    if (!(epsilon > 0.0 && epsilon <= 100.0)) {
      detail::throw_invalid_argument("bounded_load_picker", "epsilon", "must be in (0, 100]", epsilon);
    }
  }

  [[nodiscard]] auto build(std::span<const lb_member> members) const -> table {
    table t{placement_, 0};
    std::vector<ring_member> ring(members.size());
    for (std::size_t i = 0; i < members.size(); ++i) {
      ring[i] = {members[i].name, members[i].weight};
      t.total_weight += members[i].weight;
    }
    t.placement.build(ring);
    return t;
  }

  template <class Random>
  [[nodiscard]] auto choose(const table& t, const lb_pick_view& view, Random&& random) const -> std::uint32_t {
    const std::uint64_t h = view.has_key() ? view.key_hash() : random();
    std::int64_t total = 0;
    for (std::uint32_t i = 0; i < view.size(); ++i) total += view.active(i);
    const auto fits = [&](std::uint32_t i) {
      const double cap = std::ceil((1.0 + epsilon_) * static_cast<double>(total + 1) *
                                   static_cast<double>(view.weight(i)) / static_cast<double>(t.total_weight));
      return view.available(i) && static_cast<double>(view.active(i)) < cap;
    };
    const std::uint32_t first = t.placement.lookup(h);
    if (fits(first)) return first;
    std::vector<std::uint32_t> order(view.size());
    order.resize(t.placement.lookup_n(h, order));
    for (const std::uint32_t i : order) {
      if (fits(i)) return i;
    }
    return detail::scan_available(view, random);
  }

  [[nodiscard]] auto epsilon() const noexcept -> double { return epsilon_; }
  [[nodiscard]] auto hash_function() const noexcept -> const Hash& { return hash_; }

 private:
  double epsilon_ = 0.25;
  Placement placement_;
  [[no_unique_address]] Hash hash_;
};

static_assert(lb_picker<round_robin_picker>);
static_assert(lb_picker<p2c_least_request_picker>);
static_assert(lb_picker<p2c_peak_ewma_picker>);
static_assert(lb_picker<hash_picker<>>);
static_assert(lb_picker<hash_picker<maglev_placement>>);
static_assert(lb_picker<hash_picker<ketama_placement, ketama_key_hash>>);
static_assert(lb_picker<bounded_load_picker<>>);

/// @brief Outlier detection (Envoy's outlier detection, built on one `circuit_breaker` per
/// endpoint): an endpoint is ejected when its breaker opens — on `consecutive_failures` failures
/// in a row, on a failure rate of at least `failure_rate_threshold` percent over its last
/// `failure_rate_window` outcomes (once `failure_rate_minimum` are in), or when the latency sweep
/// finds its EWMA above `latency_factor` times the median of the others. An ejected endpoint
/// gets no requests for `base_ejection_time`; then its breaker lets `probes` requests through,
/// which return it, or eject it again for `ejection_multiplier` times longer (per failed probe
/// in a row, up to `max_ejection_time`: the breaker's open-state back-off).
///
/// At most `max_ejection_percent` of the endpoints are ejected at once (one may always be, as in
/// Envoy); an ejection beyond it is refused and the endpoint's window starts over. When fewer
/// than `panic_threshold_percent` of the endpoints are available, the balancer panics and picks
/// over all of them, ejected or not.
struct outlier_detection {
  std::uint32_t consecutive_failures = 5;                        ///< 0 disables this rule
  float failure_rate_threshold = 50.0F;                          ///< percent in (0, 100]
  std::uint32_t failure_rate_window = 100;                       ///< outcomes, >= 1
  std::uint32_t failure_rate_minimum = 20;                       ///< outcomes before the rate counts, >= 1
  double latency_factor = 0.0;                                   ///< 0 disables; otherwise > 1
  std::uint32_t latency_minimum_hosts = 3;                       ///< endpoints with data for a latency sweep, >= 2
  std::uint32_t latency_minimum_requests = 10;                   ///< per endpoint and interval, >= 1
  std::chrono::nanoseconds interval = std::chrono::seconds(10);  ///< latency sweep period, > 0
  std::chrono::nanoseconds base_ejection_time = std::chrono::seconds(30);  ///< > 0
  double ejection_multiplier = 2.0;                                        ///< >= 1
  std::chrono::nanoseconds max_ejection_time = std::chrono::seconds(300);  ///< >= base_ejection_time
  std::uint32_t probes = 1;                    ///< half-open requests that decide a return, >= 1
  std::uint32_t max_ejection_percent = 10;     ///< 0..100
  std::uint32_t panic_threshold_percent = 50;  ///< 0..100; 0 never panics
  static constexpr bool ejects = true;

  [[nodiscard]] auto breaker_config() const -> circuit_breaker_options {
    circuit_breaker_options c;
    c.failure_rate_threshold = failure_rate_threshold;
    c.sliding_window_size = failure_rate_window;
    c.minimum_number_of_calls = failure_rate_minimum;
    c.permitted_number_of_calls_in_half_open_state = probes;
    c.wait_duration_in_open_state = base_ejection_time;
    c.wait_duration_multiplier = ejection_multiplier;
    c.max_wait_duration_in_open_state = max_ejection_time;
    c.success_batch = 1;  // every outcome is seen at once: ejection decisions stay exact
    return c;
  }
  void validate() const {
    if (!(failure_rate_threshold > 0.0F && failure_rate_threshold <= 100.0F)) {
      detail::throw_invalid_argument("load_balancer", "failure_rate_threshold", "must be in (0, 100]",
                                     failure_rate_threshold);
    }
    if (latency_factor != 0.0 && !(latency_factor > 1.0)) {
      detail::throw_invalid_argument("load_balancer", "latency_factor", "must be 0 (off) or above 1", latency_factor);
    }
    if (latency_minimum_hosts < 2) {
      detail::throw_invalid_argument("load_balancer", "latency_minimum_hosts", "must be at least 2",
                                     latency_minimum_hosts);
    }
    if (interval.count() <= 0) {
      detail::throw_invalid_argument("load_balancer", "interval", "must be positive (ns)", interval.count());
    }
    if (max_ejection_percent > 100) {
      detail::throw_invalid_argument("load_balancer", "max_ejection_percent", "must be in [0, 100]",
                                     max_ejection_percent);
    }
    if (panic_threshold_percent > 100) {
      detail::throw_invalid_argument("load_balancer", "panic_threshold_percent", "must be in [0, 100]",
                                     panic_threshold_percent);
    }
    (void)circuit_breaker<count_window, manual_clock>(breaker_config());  // its own range checks
  }
};

/// @brief No outlier detection: every endpoint is always available (its breaker never opens).
struct no_outlier_detection {
  static constexpr bool ejects = false;
  [[nodiscard]] auto breaker_config() const -> circuit_breaker_options {
    circuit_breaker_options c;
    c.success_batch = 1;
    return c;
  }
  void validate() const {}
  std::uint32_t consecutive_failures = 0;
  double latency_factor = 0.0;
  std::uint32_t latency_minimum_hosts = 2;
  std::uint32_t latency_minimum_requests = 1;
  std::chrono::nanoseconds interval = std::chrono::seconds(10);
  std::chrono::nanoseconds base_ejection_time = std::chrono::seconds(30);
  std::uint32_t max_ejection_percent = 0;
  std::uint32_t panic_threshold_percent = 0;
};

/// @brief A health policy of `load_balancer`: `outlier_detection` or `no_outlier_detection` (or
/// a type with the same members).
template <class H>
concept lb_health = std::copy_constructible<H> && requires(const H& h) {
  { H::ejects } -> std::convertible_to<bool>;
  { h.breaker_config() } -> std::same_as<circuit_breaker_options>;
  h.validate();
  { h.consecutive_failures } -> std::convertible_to<std::uint32_t>;
  { h.latency_factor } -> std::convertible_to<double>;
  { h.max_ejection_percent } -> std::convertible_to<std::uint32_t>;
  { h.panic_threshold_percent } -> std::convertible_to<std::uint32_t>;
};
static_assert(lb_health<outlier_detection>);
static_assert(lb_health<no_outlier_detection>);

/// One backend of a client's aperture: its index and the share of the client's requests it
/// should take (the weight to give it).
struct aperture_member {
  std::size_t backend = 0;
  double share = 0;
  friend auto operator==(const aperture_member&, const aperture_member&) -> bool = default;
};

/// @brief Deterministic aperture subsetting (as in Finagle): which backends client `client` of
/// `clients` talks to, out of `backends`, so that many clients over many backends each keep
/// few connections while every backend gets the same share of the traffic.
///
/// Backends sit on a unit ring, backend j on [j/N, (j+1)/N); client i's arc is
/// [i/M, i/M + k/M) (wrapping), with k the smallest integer for which the arc covers at least
/// `min_aperture` backends' width. The client talks to each backend its arc overlaps, with a
/// share proportional to the overlap. Every point of the ring is covered by exactly k arcs,
/// so when every client sends the same traffic and honours the shares, every backend receives
/// exactly 1/N of it; with k = 1 a client has at most ceil(N/M) + 1 backends. The result
/// depends only on the four numbers: clients that know their index and the counts agree
/// without talking to each other.
///
/// @throws std::invalid_argument naming `clients`, `client`, `backends` or `min_aperture` when
///         `clients` or `backends` is 0 or above 2^31, `client >= clients`, or `min_aperture`
///         is 0.
/// **Complexity:** O(size of the result).
/// @code
/// std::vector<std::string> hosts{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"};
/// distkit::load_balancer<std::string> lb;
/// for (auto [b, share] : distkit::deterministic_aperture(/*client*/ 7, /*clients*/ 10, hosts.size())) {
///   lb.add(hosts[b], static_cast<std::uint32_t>(share * 1000 + 0.5));
/// }
/// @endcode
[[nodiscard]] inline auto deterministic_aperture(std::size_t client, std::size_t clients, std::size_t backends,
                                                 std::size_t min_aperture = 1) -> std::vector<aperture_member> {
  constexpr std::string_view who = "deterministic_aperture";
  constexpr std::size_t max_count = std::size_t{1} << 31;
  if (clients == 0 || clients > max_count)
    detail::throw_invalid_argument(who, "clients", "must be in [1, 2^31]", clients);
  if (client >= clients) detail::throw_invalid_argument(who, "client", "must be below clients", client);
  if (backends == 0 || backends > max_count) {
    detail::throw_invalid_argument(who, "backends", "must be in [1, 2^31]", backends);
  }
  if (min_aperture == 0) detail::throw_invalid_argument(who, "min_aperture", "must be at least 1", 0);
  // Arcs measured in units of 1 / (M * N): client i starts at i * N, spans k * N; backend j
  // spans [j * M, (j + 1) * M). Integers throughout, so the shares are exact fractions.
  const std::uint64_t m = clients;
  const std::uint64_t n = backends;
  const std::uint64_t k = std::max<std::uint64_t>(1, (std::uint64_t{min_aperture} * m + n - 1) / n);
  if (k >= m) {  // the arc is the whole ring: every backend, equally
    std::vector<aperture_member> all(backends);
    for (std::size_t j = 0; j < backends; ++j) all[j] = {j, 1.0 / static_cast<double>(n)};
    return all;
  }
  const std::uint64_t ring = m * n;
  const std::uint64_t start = std::uint64_t{client} * n;
  const std::uint64_t width = k * n;
  std::vector<aperture_member> out;
  std::uint64_t at = start;
  std::uint64_t left = width;
  while (left > 0) {
    const std::uint64_t pos = at % ring;
    const std::uint64_t j = pos / m;
    const std::uint64_t take = std::min(left, (j + 1) * m - pos);
    const double share = static_cast<double>(take) / static_cast<double>(width);
    if (!out.empty() && out.back().backend == j) {
      out.back().share += share;  // the arc wrapped onto its first backend
    } else if (!out.empty() && out.front().backend == j) {
      out.front().share += share;
    } else {
      out.push_back({static_cast<std::size_t>(j), share});
    }
    at += take;
    left -= take;
  }
  return out;
}

/// @brief Why a pick returned no request (`load_balancer::pick_stats` counts each reason).
enum class lb_refusal : std::uint8_t {
  none,               ///< admitted
  no_endpoint,        ///< no member, or none available (all ejected and no panic)
  concurrency_limit,  ///< the admission policy's concurrency limit is reached
  rate_limit,         ///< the admission policy's rate is spent for now
};

/// @brief Picks refused since the balancer was built, by reason (`load_balancer::pick_stats`).
struct lb_pick_stats {
  std::uint64_t no_endpoint = 0;        ///< no member, or none available
  std::uint64_t concurrency_limit = 0;  ///< refused by a concurrency limit
  std::uint64_t rate_limit = 0;         ///< refused by a rate limit
};

/// @brief An admission policy of `load_balancer`: whether a pick may go ahead at all, decided
/// before an endpoint is chosen, so that a refusal touches no endpoint (no request in flight
/// counted, no breaker permit or half-open probe taken).
///
/// Requires a member type `ticket` (default-constructible, holding nothing; nothrow-movable), and
/// - `a.admit(ticket&, std::int64_t now_ns) -> lb_refusal`: `lb_refusal::none` after filling the
///   ticket, or the reason of the refusal;
/// - `a.success(ticket&, std::int64_t latency_ns)`, `a.failure(ticket&, std::int64_t latency_ns)`
///   and `a.release(ticket&)`, all `noexcept`: the admitted request ended with that outcome, or
///   without one. Each empties the ticket; on an empty ticket they do nothing.
///
/// Optional: `static constexpr bool admits_all = true`: the balancer then never calls the
/// policy and a request carries nothing for it (`no_admission`, the default, costs nothing).
template <class A>
concept lb_admission =
    std::move_constructible<A> && std::default_initializable<typename A::ticket> &&
    std::is_nothrow_move_constructible_v<typename A::ticket> && std::is_nothrow_move_assignable_v<typename A::ticket> &&
    requires(A& a, typename A::ticket& t, std::int64_t ns) {
      { a.admit(t, ns) } -> std::same_as<lb_refusal>;
      { a.success(t, ns) } noexcept;
      { a.failure(t, ns) } noexcept;
      { a.release(t) } noexcept;
    };

/// @brief No admission control: every pick goes ahead (the default; compiled away).
struct no_admission {
  struct ticket {};
  static constexpr bool admits_all = true;
  [[nodiscard]] auto admit(ticket& /*t*/, std::int64_t /*now_ns*/) noexcept -> lb_refusal { return lb_refusal::none; }
  void success(ticket& /*t*/, std::int64_t /*latency_ns*/) noexcept {}
  void failure(ticket& /*t*/, std::int64_t /*latency_ns*/) noexcept {}
  void release(ticket& /*t*/) noexcept {}
};

/// @brief How `concurrency_limit_admission` counts a request that ended with `failure()`.
enum class lb_failure_sample : std::uint8_t {
  /// As an overload signal (Netflix's `onDropped`): AIMD backs off; Gradient2 reads its latency.
  /// Right when failures are the dependency's own (errors under load, timeouts, refusals).
  dropped,
  /// Not at all (Netflix's `onIgnore`): the token is given back, the limit does not move. Right
  /// when failures say nothing about load (a client's bad request).
  ignored,
};

/// Options of `concurrency_limit_admission`.
struct concurrency_limit_admission_options {
  lb_failure_sample failures = lb_failure_sample::dropped;  ///< how `failure()` counts
};

/// @brief Admission by an adaptive concurrency limit (Netflix concurrency-limits, Envoy's
/// adaptive concurrency filter) over the whole balancer: a pick takes a token from an
/// `adaptive_concurrency_limit<Algorithm>` and is refused (`lb_refusal::concurrency_limit`) when
/// the limit's requests are in flight; the request's outcome is the limit's sample.
///
/// `success(latency)` is a sample of that latency (AIMD treats one slower than its `timeout` as
/// a drop); `failure(latency)` is a drop with that latency, or nothing with
/// `lb_failure_sample::ignored`; a handle released or destroyed without an outcome gives its
/// token back without a sample. The limit is learnt from every endpoint's latencies together:
/// it bounds what this client sends to the service behind the balancer.
///
/// @tparam Algorithm  models `limit_algorithm`: `gradient2_limit` (default) or `aimd_limit`.
/// @throws std::invalid_argument naming `failures` when it is not an enumerator (the algorithm's
///         constructor names its own options).
/// **Thread safety:** as `adaptive_concurrency_limit`: any thread; a token costs two short
/// critical sections on one mutex.
///
/// @code
/// using admission = distkit::concurrency_limit_admission<distkit::aimd_limit>;
/// distkit::load_balancer<std::string, distkit::p2c_least_request_picker, distkit::outlier_detection,
///                        distkit::steady_time, admission>
///     lb({}, {}, {}, {}, admission{distkit::aimd_limit{{.initial = 50, .min = 10, .max = 500}}});
/// lb.add("10.0.0.1:80");
/// if (auto req = lb.try_pick()) {
///   send(req->endpoint()) ? req->success() : req->failure();
/// } else {
///   // shed the request: lb.pick_stats().concurrency_limit counts it
/// }
/// @endcode
template <limit_algorithm Algorithm = gradient2_limit>
class concurrency_limit_admission {
 public:
  using limit_type = adaptive_concurrency_limit<Algorithm>;

  /// One admitted request's token (empty when nothing is held).
  class ticket {
   public:
    ticket() = default;
    ticket(ticket&& other) noexcept { take(other); }
    auto operator=(ticket&& other) noexcept -> ticket& {
      if (this != &other) {
        token_.reset();
        take(other);
      }
      return *this;
    }
    ticket(const ticket&) = delete;
    auto operator=(const ticket&) -> ticket& = delete;
    ~ticket() = default;

   private:
    friend class concurrency_limit_admission;
    void take(ticket& other) noexcept {
      if (other.token_) {
        token_.emplace(std::move(*other.token_));
        other.token_.reset();
      }
    }
    std::optional<typename limit_type::token> token_;
  };

  /// @throws std::invalid_argument naming `failures` when it is not an enumerator.
  explicit concurrency_limit_admission(Algorithm algorithm = Algorithm{},
                                       concurrency_limit_admission_options options = {})
      : limit_(std::make_unique<limit_type>(std::move(algorithm))), options_(options) {
    if (options_.failures != lb_failure_sample::dropped && options_.failures != lb_failure_sample::ignored) {
      detail::throw_invalid_argument("concurrency_limit_admission", "failures", "must be dropped or ignored",
                                     static_cast<int>(options_.failures));
    }
  }

  [[nodiscard]] auto admit(ticket& t, std::int64_t /*now_ns*/) -> lb_refusal {
    auto token = limit_->try_acquire();
    if (!token) return lb_refusal::concurrency_limit;
    t.token_.emplace(std::move(*token));
    return lb_refusal::none;
  }
  void success(ticket& t, std::int64_t latency_ns) noexcept {
    report(t, [latency_ns](auto& token) { token.success(std::chrono::nanoseconds(latency_ns)); });
  }
  void failure(ticket& t, std::int64_t latency_ns) noexcept {
    if (options_.failures == lb_failure_sample::dropped) {
      report(t, [latency_ns](auto& token) { token.dropped(std::chrono::nanoseconds(latency_ns)); });
    } else {
      release(t);
    }
  }
  void release(ticket& t) noexcept { t.token_.reset(); }  // an unreported token is ignored

  /// The current limit (requests in flight admitted at once).
  [[nodiscard]] auto limit() const -> std::size_t { return limit_->limit(); }
  /// Admitted requests not yet ended.
  [[nodiscard]] auto inflight() const -> std::size_t { return limit_->inflight(); }
  [[nodiscard]] auto options() const noexcept -> const concurrency_limit_admission_options& { return options_; }

 private:
  template <class Report>
  static void report(ticket& t, const Report& r) noexcept {
    if (!t.token_) return;
    try {
      r(*t.token_);
    } catch (...) {  // the limit's mutex failed to lock: the token is given back unreported
    }
    t.token_.reset();
  }

  std::unique_ptr<limit_type> limit_;  // not movable itself (a mutex): the policy is
  concurrency_limit_admission_options options_;
};

/// @brief Admission by a rate limit over the whole balancer: at most `limit` picks per `window`,
/// decided by one key of a `rate_limiter` store at the balancer's clock. With `gcra` (the
/// default) it is a token bucket: a burst of `limit` picks at once, then one per
/// `window / limit`. A pick over the rate is refused (`lb_refusal::rate_limit`).
///
/// A pick admitted here spends its unit even when no endpoint is then available. Outcomes do
/// not matter to a rate. The Store may be any `limiter_store` given with its key (the balancer
/// has been tested with the in-process store only).
///
/// @tparam Algorithm  models `window_algorithm` (default `gcra`).
/// @tparam Store      models `limiter_store` (default `local_store<Algorithm>`, one shard).
/// @throws std::invalid_argument naming `limit` or `window` (out of range, as `rate_limiter`)
///         or `key` (empty).
/// **Thread safety:** as the store: any thread.
///
/// @code
/// using admission = distkit::rate_limit_admission<>;
/// distkit::load_balancer<std::string, distkit::p2c_least_request_picker, distkit::outlier_detection,
///                        distkit::steady_time, admission>
///     lb({}, {}, {}, {}, admission{{.limit = 1000, .window = std::chrono::seconds(1)}});
/// lb.add("10.0.0.1:80");
/// if (auto req = lb.try_pick()) req->success();  // else: over 1,000 picks a second
/// @endcode
template <window_algorithm Algorithm = gcra, limiter_store Store = local_store<Algorithm>>
class rate_limit_admission {
 public:
  struct ticket {};

  /// An in-process limit.
  explicit rate_limit_admission(rate_limit limit)
    requires std::constructible_from<Store, rate_limit>
      : store_(make_store(limit)), key_("load_balancer") {}
  /// A configured store, asked under `key`.
  /// @throws std::invalid_argument naming `key` when it is empty.
  explicit rate_limit_admission(Store store, std::string key = "load_balancer")
      : store_(std::move(store)), key_(std::move(key)) {
    if (key_.empty()) detail::throw_invalid_argument("rate_limit_admission", "key", "must not be empty");
  }

  [[nodiscard]] auto admit(ticket& /*t*/, std::int64_t now_ns) -> lb_refusal {
    const decision d = store_.try_acquire(key_, 1, now_ns);
    return d.allowed ? lb_refusal::none : lb_refusal::rate_limit;
  }
  void success(ticket& /*t*/, std::int64_t /*latency_ns*/) noexcept {}
  void failure(ticket& /*t*/, std::int64_t /*latency_ns*/) noexcept {}
  void release(ticket& /*t*/) noexcept {}

  [[nodiscard]] auto policy() const noexcept -> const rate_limit& { return store_.policy(); }
  [[nodiscard]] auto store() noexcept -> Store& { return store_; }

 private:
  static auto make_store(rate_limit limit) -> Store {
    if constexpr (std::constructible_from<Store, rate_limit, local_store_options>) {
      return Store(limit, local_store_options{.shards = 1});  // one key: one shard
    } else {
      return Store(limit);
    }
  }

  Store store_;
  std::string key_;
};

static_assert(lb_admission<no_admission>);
static_assert(lb_admission<concurrency_limit_admission<aimd_limit>>);
static_assert(lb_admission<concurrency_limit_admission<gradient2_limit>>);
static_assert(lb_admission<rate_limit_admission<>>);

/// @brief Settings of `load_balancer` that do not depend on the picker or the health policy.
struct load_balancer_options {
  /// Slow start (Envoy's `slow_start_config`): an endpoint added after the first pick, or
  /// returning from ejection, starts at `slow_start_min_weight_percent` of its weight and ramps
  /// to all of it over this window as `(elapsed / window)^(1 / aggression)`. 0 disables.
  std::chrono::nanoseconds slow_start_window = std::chrono::nanoseconds(0);
  double slow_start_aggression = 1.0;                ///< > 0; 1 ramps linearly
  std::uint32_t slow_start_min_weight_percent = 10;  ///< 1..100
  /// Decay time of the peak-EWMA latency (Finagle's default: 10 s). > 0.
  std::chrono::nanoseconds ewma_decay = std::chrono::seconds(10);
  /// Seeds the pickers' random choices (deterministic when one thread picks).
  std::uint64_t seed = 0x5EED;
};
/// The former name of `load_balancer_options` (`_options`: configuration).
using load_balancer_config [[deprecated("use distkit::load_balancer_options")]] = load_balancer_options;

/// @brief A client-side load balancer over a changing set of endpoints.
///
/// `try_pick()` (or `try_pick(key)` for affinity pickers) chooses an endpoint and returns a
/// `request` handle; end the request with `success()` or `failure()` (the handle measures the
/// latency with the clock, or takes it as an argument) and the balancer updates the endpoint's
/// requests in flight, its peak-EWMA latency and its circuit breaker. A handle dropped without an
/// outcome records nothing.
///
/// @tparam Endpoint  any copyable, equality-comparable value (an address, a connection pool
///                   index...); `byte_hashable` for the affinity pickers.
/// @tparam Picker    models `lb_picker` (default `p2c_least_request_picker`).
/// @tparam Health    models `lb_health` (default `outlier_detection`).
/// @tparam Clock     models `time_source` (default `steady_time`; tests use `manual_clock`).
/// @tparam Admission models `lb_admission` (default `no_admission`, which costs nothing):
///                   `concurrency_limit_admission<aimd_limit | gradient2_limit>` or
///                   `rate_limit_admission<>` refuse picks before an endpoint is chosen (an
///                   empty optional, counted by reason in `pick_stats()`).
///
/// @throws std::invalid_argument from the constructor naming a parameter out of range, and from
///         membership changes for a duplicate or missing endpoint or a weight of 0.
///
/// **Thread safety:** every member may be called concurrently. Picks are lock-free: they read an
/// immutable snapshot of the membership published atomically by `add`/`remove`/`set_weight`
/// (which serialise on a mutex and rebuild the picker's table). A handle reports to per-endpoint
/// atomics that outlive the endpoint's removal. Handles must not outlive the balancer.
/// **Complexity:** a pick is O(1) for round robin and P2C, a placement lookup for affinity; a
/// membership change is O(N) plus the picker's table build.
///
/// @code
/// distkit::load_balancer<std::string> lb;
/// lb.add("10.0.0.1:80");
/// lb.add("10.0.0.2:80", 2);
/// if (auto req = lb.try_pick()) {
///   bool ok = send(req->endpoint());
///   ok ? req->success() : req->failure();
/// }
/// @endcode
template <class Endpoint, lb_picker Picker = p2c_least_request_picker, lb_health Health = outlier_detection,
          time_source Clock = steady_time, lb_admission Admission = no_admission>
  requires std::copy_constructible<Endpoint> && std::equality_comparable<Endpoint>
class load_balancer {
  static constexpr bool needs_key_bytes = [] {
    if constexpr (requires { Picker::needs_key_bytes; }) {
      return static_cast<bool>(Picker::needs_key_bytes);
    } else {
      return false;
    }
  }();
  static_assert(!needs_key_bytes || byte_hashable<Endpoint>,
                "distkit::load_balancer: an affinity picker hashes endpoint names: the Endpoint must be byte_hashable");

  using breaker_type = circuit_breaker<count_window, Clock>;
  using ticket_type = typename Admission::ticket;
  static constexpr bool admits_all = [] {
    if constexpr (requires { Admission::admits_all; }) {
      return static_cast<bool>(Admission::admits_all);
    } else {
      return false;
    }
  }();

  struct node {
    node(const Endpoint& e, const circuit_breaker_options& c, const Clock& clock) : endpoint(e), breaker(c, clock) {}
    detail::lb_endpoint_core core;
    Endpoint endpoint;
    breaker_type breaker;
    std::atomic<bool> member{false};
  };

  struct snapshot {
    std::vector<lb_pick_view::entry> entries;
    std::vector<node*> nodes;
    std::optional<typename Picker::table> table;  // empty while there are no endpoints
  };

 public:
  using endpoint_type = Endpoint;
  using picker_type = Picker;
  using health_type = Health;
  using clock_type = Clock;
  using admission_type = Admission;

  /// @brief One request to the endpoint a pick chose. Move-only; report its outcome once.
  class request {
   public:
    request(request&& other) noexcept
        : owner_(std::exchange(other.owner_, nullptr)),
          node_(other.node_),
          permit_(std::move(other.permit_)),
          start_ns_(other.start_ns_),
          ticket_(std::move(other.ticket_)) {}
    auto operator=(request&& other) noexcept -> request& {
      if (this != &other) {
        release();
        owner_ = std::exchange(other.owner_, nullptr);
        node_ = other.node_;
        permit_ = std::move(other.permit_);
        start_ns_ = other.start_ns_;
        ticket_ = std::move(other.ticket_);
      }
      return *this;
    }
    request(const request&) = delete;
    auto operator=(const request&) -> request& = delete;
    ~request() { release(); }

    /// The chosen endpoint (valid for the balancer's lifetime, even after its removal).
    [[nodiscard]] auto endpoint() const noexcept -> const Endpoint& { return node_->endpoint; }
    /// Records a success; the latency is the time since the pick.
    void success() noexcept { finish(false, -1); }
    /// Records a failure; the latency is the time since the pick.
    void failure() noexcept { finish(true, -1); }
    /// Records a success that took `latency`.
    template <class Rep, class Period>
    void success(std::chrono::duration<Rep, Period> latency) noexcept {
      finish(false, std::chrono::duration_cast<std::chrono::nanoseconds>(latency).count());
    }
    /// Records a failure that took `latency`.
    template <class Rep, class Period>
    void failure(std::chrono::duration<Rep, Period> latency) noexcept {
      finish(true, std::chrono::duration_cast<std::chrono::nanoseconds>(latency).count());
    }
    /// Ends the request without an outcome (as if destroyed): an admission token is given
    /// back without a sample.
    void release() noexcept {
      if (auto* owner = std::exchange(owner_, nullptr)) {
        node_->core.active.fetch_sub(1, std::memory_order_relaxed);
        if (permit_) permit_->release();
        if constexpr (!admits_all) owner->admission_.release(ticket_);
        (void)owner;
      }
    }
    /// True while the outcome is still to be reported.
    [[nodiscard]] auto pending() const noexcept -> bool { return owner_ != nullptr; }

   private:
    friend class load_balancer;
    request(load_balancer* owner, node* n, std::optional<typename breaker_type::permit> permit, std::int64_t start_ns,
            ticket_type&& ticket) noexcept
        : owner_(owner), node_(n), permit_(std::move(permit)), start_ns_(start_ns), ticket_(std::move(ticket)) {}

    void finish(bool failed, std::int64_t latency_ns) noexcept {
      auto* owner = std::exchange(owner_, nullptr);
      if (owner == nullptr) return;
      const std::int64_t now = owner->now_ns();
      if (latency_ns < 0) latency_ns = std::max<std::int64_t>(0, now - start_ns_);
      owner->record(*node_, permit_, failed, latency_ns, now);
      node_->core.active.fetch_sub(1, std::memory_order_relaxed);
      // After the endpoint's count: a request admitted with the token given back here is
      // counted in flight only once this one is not.
      if constexpr (!admits_all) {
        if (failed) {
          owner->admission_.failure(ticket_, latency_ns);
        } else {
          owner->admission_.success(ticket_, latency_ns);
        }
      }
    }

    load_balancer* owner_;
    node* node_;
    std::optional<typename breaker_type::permit> permit_;
    std::int64_t start_ns_;
    [[no_unique_address]] ticket_type ticket_;
  };

  /// What `stats` reports for one endpoint.
  struct endpoint_stats {
    std::int64_t active = 0;       ///< requests in flight
    double ewma_latency_ns = 0.0;  ///< peak-EWMA latency (0 before the first response)
    bool ejected = false;          ///< ejected by outlier detection
    double ramp = 1.0;             ///< slow-start factor now
    std::uint32_t weight = 0;      ///< configured weight
    breaker_state breaker = breaker_state::closed;
  };

  /// @throws std::invalid_argument naming the first parameter out of range.
  explicit load_balancer(load_balancer_options config = {}, Picker picker = Picker{}, Health health = Health{},
                         Clock clock = Clock{}, Admission admission = Admission{})
      : config_(validated(config)),
        picker_(std::move(picker)),
        health_(validated(std::move(health))),
        clock_(std::move(clock)),
        admission_(std::move(admission)),
        cell_(std::make_unique<const snapshot>(), config.seed),
        ewma_decay_ns_(static_cast<double>(config_.ewma_decay.count())),
        ramp_window_ns_(std::max<std::int64_t>(1, config_.slow_start_window.count())),
        ramp_exponent_(1.0 / config_.slow_start_aggression),
        ramp_floor_(static_cast<double>(config_.slow_start_min_weight_percent) / 100.0) {
    next_sweep_ns_.store(now_ns() + health_.interval.count(), std::memory_order_relaxed);
  }
  load_balancer(const load_balancer&) = delete;
  auto operator=(const load_balancer&) -> load_balancer& = delete;

  /// Adds `endpoint` with `weight`; it starts in slow start when slow start is on and the
  /// balancer has already made a pick (the initial membership does not ramp).
  /// @throws std::invalid_argument if it is already a member ("endpoint") or `weight` is 0.
  void add(const Endpoint& endpoint, std::uint32_t weight = 1) {
    check_weight(weight);
    const std::lock_guard<std::mutex> lock(cell_.write_mutex());
    const snapshot* cur = cell_.current_for_writer();
    for (node* n : cur->nodes) {
      if (n->endpoint == endpoint) detail::throw_invalid_argument("load_balancer", "endpoint", "is already a member");
    }
    node* n = find_or_make(endpoint);
    std::vector<node*> nodes = cur->nodes;
    std::vector<std::uint32_t> weights = weights_of(*cur);
    nodes.push_back(n);
    weights.push_back(weight);
    if (config_.slow_start_window.count() > 0 && picked_.load(std::memory_order_relaxed)) start_ramp(*n, now_ns());
    rebuild(std::move(nodes), std::move(weights));
    n->member.store(true, std::memory_order_relaxed);
  }

  /// Removes `endpoint`; requests in flight to it still report normally.
  /// @throws std::invalid_argument if it is not a member ("endpoint").
  void remove(const Endpoint& endpoint) {
    const std::lock_guard<std::mutex> lock(cell_.write_mutex());
    const snapshot* cur = cell_.current_for_writer();
    const std::size_t i = index_of(*cur, endpoint);
    std::vector<node*> nodes = cur->nodes;
    std::vector<std::uint32_t> weights = weights_of(*cur);
    node* gone = nodes[i];
    nodes.erase(nodes.begin() + static_cast<std::ptrdiff_t>(i));
    weights.erase(weights.begin() + static_cast<std::ptrdiff_t>(i));
    rebuild(std::move(nodes), std::move(weights));
    gone->member.store(false, std::memory_order_relaxed);
    // An ejected endpoint that leaves frees its place in the ejection budget.
    if ((gone->core.flags.fetch_and(~detail::lb_endpoint_core::ejected_flag) &
         detail::lb_endpoint_core::ejected_flag) != 0) {
      ejected_.fetch_sub(1, std::memory_order_relaxed);
    }
  }

  /// Changes the weight of `endpoint`.
  /// @throws std::invalid_argument if it is not a member or `weight` is 0.
  void set_weight(const Endpoint& endpoint, std::uint32_t weight) {
    check_weight(weight);
    const std::lock_guard<std::mutex> lock(cell_.write_mutex());
    const snapshot* cur = cell_.current_for_writer();
    const std::size_t i = index_of(*cur, endpoint);
    std::vector<std::uint32_t> weights = weights_of(*cur);
    weights[i] = weight;
    rebuild(cur->nodes, std::move(weights));
  }

  /// The weight `endpoint` has now. @throws std::invalid_argument naming `endpoint` if it is
  /// not a member.
  [[nodiscard]] auto weight(const Endpoint& endpoint) const -> std::uint32_t {
    const auto s = cell_.read();
    return s->entries[index_of(*s, endpoint)].weight;
  }

  /// Chooses an endpoint; empty when the balancer has none available.
  [[nodiscard]] auto try_pick() -> std::optional<request> { return pick(0, false); }

  /// Chooses an endpoint for `key` (affinity pickers send equal keys to the same endpoint).
  template <byte_hashable Key>
    requires needs_key_bytes
  [[nodiscard]] auto try_pick(const Key& key) -> std::optional<request> {
    return pick(picker_.hash_function()(key), true);
  }

  /// The number of endpoints.
  [[nodiscard]] auto size() const noexcept -> std::size_t { return cell_.read()->nodes.size(); }
  /// The members, in the order the pickers index them.
  [[nodiscard]] auto endpoints() const -> std::vector<Endpoint> {
    const auto snap = cell_.read();
    std::vector<Endpoint> out;
    out.reserve(snap->nodes.size());
    for (const node* n : snap->nodes) out.push_back(n->endpoint);
    return out;
  }
  /// The number of endpoints ejected now.
  [[nodiscard]] auto ejected_count() const noexcept -> std::size_t {
    return static_cast<std::size_t>(std::max<std::int64_t>(0, ejected_.load(std::memory_order_relaxed)));
  }
  /// True when fewer than the panic threshold of the endpoints are available.
  [[nodiscard]] auto panicking() const noexcept -> bool {
    const auto snap = cell_.read();
    return in_panic(snap->nodes.size());
  }
  /// The state of `endpoint`. @throws std::invalid_argument if it is not a member.
  [[nodiscard]] auto stats(const Endpoint& endpoint) -> endpoint_stats {
    const auto snap = cell_.read();
    const std::size_t i = index_of(*snap, endpoint);
    node& n = *snap->nodes[i];
    endpoint_stats s;
    s.active = n.core.active.load(std::memory_order_relaxed);
    s.ewma_latency_ns = n.core.ewma_ns();
    s.ejected = (n.core.flags.load(std::memory_order_relaxed) & detail::lb_endpoint_core::ejected_flag) != 0;
    s.ramp = view_of(*snap, now_ns(), false, 0, false).ramp(static_cast<std::uint32_t>(i));
    s.weight = snap->entries[i].weight;
    s.breaker = n.breaker.state();
    return s;
  }

  /// Runs the latency-outlier sweep now (it also runs on its own every `interval`, on the thread
  /// that reports the first outcome after the interval ends).
  void sweep() {
    if constexpr (Health::ejects) {
      if (health_.latency_factor <= 0.0) return;
      const auto snap = cell_.read();
      std::vector<std::pair<double, node*>> seen;
      for (node* n : snap->nodes) {
        const std::uint64_t count = n->core.since_sweep.exchange(0, std::memory_order_relaxed);
        const bool ejected =
            (n->core.flags.load(std::memory_order_relaxed) & detail::lb_endpoint_core::ejected_flag) != 0;
        if (!ejected && count >= health_.latency_minimum_requests) seen.emplace_back(n->core.ewma_ns(), n);
      }
      if (seen.size() < health_.latency_minimum_hosts) return;
      std::vector<double> latencies;
      latencies.reserve(seen.size());
      for (const auto& s : seen) latencies.push_back(s.first);
      const std::size_t mid = latencies.size() / 2;
      std::nth_element(latencies.begin(), latencies.begin() + static_cast<std::ptrdiff_t>(mid), latencies.end());
      double median = latencies[mid];
      if (latencies.size() % 2 == 0) {
        median =
            (median + *std::max_element(latencies.begin(), latencies.begin() + static_cast<std::ptrdiff_t>(mid))) / 2;
      }
      for (const auto& s : seen) {
        if (s.first > health_.latency_factor * median) eject(*s.second);
      }
    }
  }

  /// Picks refused so far, by reason.
  [[nodiscard]] auto pick_stats() const noexcept -> lb_pick_stats {
    lb_pick_stats s;
    s.no_endpoint = refused(lb_refusal::no_endpoint);
    s.concurrency_limit = refused(lb_refusal::concurrency_limit);
    s.rate_limit = refused(lb_refusal::rate_limit);
    return s;
  }

  [[nodiscard]] auto config() const noexcept -> const load_balancer_options& { return config_; }
  [[nodiscard]] auto admission() const noexcept -> const Admission& { return admission_; }
  [[nodiscard]] auto health() const noexcept -> const Health& { return health_; }
  [[nodiscard]] auto picker() const noexcept -> const Picker& { return picker_; }

 private:
  static auto validated(load_balancer_options c) -> load_balancer_options {
    if (c.slow_start_window.count() < 0) {
      detail::throw_invalid_argument("load_balancer", "slow_start_window", "must be >= 0 (ns)",
                                     c.slow_start_window.count());
    }
    if (!(c.slow_start_aggression > 0.0 && c.slow_start_aggression < 1e6)) {
      detail::throw_invalid_argument("load_balancer", "slow_start_aggression", "must be in (0, 1e6)",
                                     c.slow_start_aggression);
    }
    if (c.slow_start_min_weight_percent < 1 || c.slow_start_min_weight_percent > 100) {
      detail::throw_invalid_argument("load_balancer", "slow_start_min_weight_percent", "must be in [1, 100]",
                                     c.slow_start_min_weight_percent);
    }
    if (c.ewma_decay.count() <= 0) {
      detail::throw_invalid_argument("load_balancer", "ewma_decay", "must be positive (ns)", c.ewma_decay.count());
    }
    return c;
  }
  static auto validated(Health h) -> Health {
    h.validate();
    return h;
  }
  static void check_weight(std::uint32_t weight) {
    if (weight == 0) detail::throw_invalid_argument("load_balancer", "weight", "must be at least 1", weight);
  }

  [[nodiscard]] auto now_ns() const noexcept -> std::int64_t {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_.now().time_since_epoch()).count();
  }

  static auto index_of(const snapshot& s, const Endpoint& endpoint) -> std::size_t {
    for (std::size_t i = 0; i < s.nodes.size(); ++i) {
      if (s.nodes[i]->endpoint == endpoint) return i;
    }
    detail::throw_invalid_argument("load_balancer", "endpoint", "is not a member");
  }
  static auto weights_of(const snapshot& s) -> std::vector<std::uint32_t> {
    std::vector<std::uint32_t> w;
    w.reserve(s.entries.size());
    for (const auto& e : s.entries) w.push_back(e.weight);
    return w;
  }

  // Called with the write mutex held. Endpoints are kept for the balancer's lifetime and
  // reused when they come back, so handles and snapshots never point to freed state.
  auto find_or_make(const Endpoint& endpoint) -> node* {
    for (const auto& n : kept_) {
      if (n->endpoint == endpoint) return n.get();
    }
    auto made = std::make_unique<node>(endpoint, health_.breaker_config(), clock_);
    node* n = made.get();
    if constexpr (Health::ejects) {
      n->breaker.on_state_transition([this, n](const state_transition& t) { on_transition(*n, t); });
    }
    kept_.push_back(std::move(made));
    return n;
  }

  void rebuild(std::vector<node*> nodes, std::vector<std::uint32_t> weights) {
    auto next = std::make_unique<snapshot>();
    next->entries.resize(nodes.size());
    std::vector<lb_member> members(nodes.size());
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      next->entries[i] = {&nodes[i]->core, weights[i]};
      if constexpr (needs_key_bytes) {
        members[i] = {detail::key_bytes(nodes[i]->endpoint), weights[i]};
      } else {
        members[i] = {{}, weights[i]};
      }
    }
    if (!nodes.empty()) next->table.emplace(picker_.build(members));
    next->nodes = std::move(nodes);
    size_.store(next->nodes.size(), std::memory_order_relaxed);
    cell_.publish(std::unique_ptr<const snapshot>(std::move(next)));
  }

  [[nodiscard]] auto in_panic(std::size_t n) const noexcept -> bool {
    if constexpr (Health::ejects) {
      const std::int64_t ejected = ejected_.load(std::memory_order_relaxed);
      if (ejected <= 0 || n == 0) return false;
      const auto available =
          static_cast<std::uint64_t>(std::max<std::int64_t>(0, static_cast<std::int64_t>(n) - ejected));
      return available * 100 < std::uint64_t{health_.panic_threshold_percent} * n;
    } else {
      (void)n;
      return false;
    }
  }

  [[nodiscard]] auto view_of(const snapshot& s, std::int64_t now, bool panic, std::uint64_t key_hash,
                             bool has_key) const noexcept -> lb_pick_view {
    return lb_pick_view(s.entries, now, panic, key_hash, has_key, ramp_window_ns_, ramp_exponent_, ramp_floor_);
  }

  auto pick(std::uint64_t key_hash, bool has_key) -> std::optional<request> {
    const std::int64_t now = now_ns();
    const auto snap = cell_.read();
    const std::size_t n = snap->nodes.size();
    if (DISTKIT_UNLIKELY(n == 0)) return refuse(lb_refusal::no_endpoint);
    // Admission comes first: a refused pick touches no endpoint (no permit, no count in flight).
    ticket_type ticket;
    if constexpr (!admits_all) {
      const lb_refusal refusal = admission_.admit(ticket, now);
#if !defined(DISTKIT_LB_MUTATION_IGNORE_ADMISSION)  // test-only mutation: the admission tests must catch it
      if (DISTKIT_UNLIKELY(refusal != lb_refusal::none)) return refuse(refusal);
#else
      (void)refusal;
#endif
    }
    if (DISTKIT_UNLIKELY(!picked_.load(std::memory_order_relaxed))) picked_.store(true, std::memory_order_relaxed);
    const bool panic = in_panic(n);
    const lb_pick_view view = view_of(*snap, now, panic, key_hash, has_key);
    const auto random = [&snap]() noexcept { return snap.next_random(); };
    for (int attempt = 0; attempt < 4; ++attempt) {
      const std::uint32_t i = picker_.choose(*snap->table, view, random);
      if (DISTKIT_UNLIKELY(i == lb_no_endpoint)) break;
      node* chosen = snap->nodes[i];
      std::optional<typename breaker_type::permit> permit = chosen->breaker.try_acquire();
      if (DISTKIT_UNLIKELY(!permit) && !panic) {
        // Still open (its wait grew) or half-open with every probe taken: try it again later.
        chosen->core.retry_at_ns.store(now + health_.base_ejection_time.count(), std::memory_order_relaxed);
        continue;
      }
      chosen->core.active.fetch_add(1, std::memory_order_relaxed);
      return request(this, chosen, std::move(permit), now, std::move(ticket));
    }
    if constexpr (!admits_all) admission_.release(ticket);
    return refuse(lb_refusal::no_endpoint);
  }

  DISTKIT_COLD auto refuse(lb_refusal why) noexcept -> std::optional<request> {
    refused_[static_cast<std::size_t>(why)].fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }
  [[nodiscard]] auto refused(lb_refusal why) const noexcept -> std::uint64_t {
    return refused_[static_cast<std::size_t>(why)].load(std::memory_order_relaxed);
  }

  void record(node& n, std::optional<typename breaker_type::permit>& permit, bool failed, std::int64_t latency_ns,
              std::int64_t now) noexcept {
    update_ewma(n.core, static_cast<double>(latency_ns), now);
    // Read only by the latency sweep: not counted (no locked add per request) when it is off.
    if (health_.latency_factor > 0.0) n.core.since_sweep.fetch_add(1, std::memory_order_relaxed);
    const bool closed_permit = permit && permit->state() == breaker_state::closed;
    if (permit) {
      if (failed) {
        permit->record_failure(std::chrono::nanoseconds(latency_ns));
      } else {
        permit->record_success(std::chrono::nanoseconds(latency_ns));
      }
    }
    if constexpr (Health::ejects) {
      if (failed) {
        const std::uint32_t run = n.core.consecutive_failures.fetch_add(1, std::memory_order_relaxed) + 1;
        if (health_.consecutive_failures != 0 && run >= health_.consecutive_failures && closed_permit) eject(n);
      } else {
        n.core.consecutive_failures.store(0, std::memory_order_relaxed);
      }
      if (health_.latency_factor > 0.0) {
        std::int64_t due = next_sweep_ns_.load(std::memory_order_relaxed);
        if (now >= due &&
            next_sweep_ns_.compare_exchange_strong(due, now + health_.interval.count(), std::memory_order_relaxed)) {
          try {
            sweep();
          } catch (...) {  // allocation failure: skip this sweep, the next one runs on time
          }
        }
      }
    }
  }

  // A load and a store, not a compare-and-swap loop: when two requests to one endpoint end at
  // the same moment, one of the two updates may be lost, which moves an average over many
  // requests by one sample's weight at most, while a locked instruction per request was a
  // tenth of a pick's cost.
  void update_ewma(detail::lb_endpoint_core& c, double rtt, std::int64_t now) const noexcept {
    const double cost = std::bit_cast<double>(c.ewma_bits.load(std::memory_order_relaxed));
    double next = rtt;
    if (cost != 0.0 && rtt <= cost) {
      const std::int64_t stamp = c.ewma_stamp_ns.load(std::memory_order_relaxed);
      const double td = static_cast<double>(std::max<std::int64_t>(0, now - stamp));
      const double w = detail::ewma_keep(td / ewma_decay_ns_);
      next = cost * w + rtt * (1.0 - w);
    }
    c.ewma_bits.store(std::bit_cast<std::uint64_t>(next), std::memory_order_relaxed);
    c.ewma_stamp_ns.store(now, std::memory_order_relaxed);
  }

  // Opens the endpoint's breaker (the transition listener does the accounting).
  void eject(node& n) noexcept {
    try {
      if (n.breaker.state() == breaker_state::closed) n.breaker.transition_to(breaker_state::open);
    } catch (...) {  // a listener's allocation failure: the endpoint stays as it was
    }
  }

  void on_transition(node& n, const state_transition& t) {
    using core = detail::lb_endpoint_core;
    const std::int64_t now = now_ns();
    if (t.to == breaker_state::open || t.to == breaker_state::forced_open) {
      n.core.consecutive_failures.store(0, std::memory_order_relaxed);
      const bool was = (n.core.flags.load(std::memory_order_relaxed) & core::ejected_flag) != 0;
      if (!was) {
        if (!n.member.load(std::memory_order_relaxed) || !reserve_ejection()) {
          // Over the ejection budget (or no longer a member): refuse, the window starts over.
          n.breaker.transition_to(breaker_state::closed);
          return;
        }
        n.core.flags.fetch_or(core::ejected_flag, std::memory_order_relaxed);
      }
      n.core.retry_at_ns.store(now + health_.base_ejection_time.count(), std::memory_order_relaxed);
    } else if (t.to == breaker_state::closed || t.to == breaker_state::disabled ||
               t.to == breaker_state::metrics_only) {
      if ((n.core.flags.fetch_and(~core::ejected_flag, std::memory_order_relaxed) & core::ejected_flag) != 0) {
        ejected_.fetch_sub(1, std::memory_order_relaxed);
        if (config_.slow_start_window.count() > 0) start_ramp(n, now);
      }
    }
  }

  // One more ejection if the budget allows it: at most max_ejection_percent of the members,
  // though one endpoint may always be ejected (as in Envoy).
  auto reserve_ejection() noexcept -> bool {
    const std::uint64_t members = size_.load(std::memory_order_relaxed);
    std::int64_t cur = ejected_.load(std::memory_order_relaxed);
    for (;;) {
      const bool allowed = cur <= 0 || static_cast<std::uint64_t>(cur + 1) * 100 <=
                                           std::uint64_t{health_.max_ejection_percent} * members;
      if (!allowed || health_.max_ejection_percent == 0) return false;
      if (ejected_.compare_exchange_weak(cur, cur + 1, std::memory_order_relaxed)) return true;
    }
  }

  void start_ramp(node& n, std::int64_t now) noexcept {
    n.core.ramp_start_ns.store(now, std::memory_order_relaxed);
    n.core.flags.fetch_or(detail::lb_endpoint_core::ramping_flag, std::memory_order_relaxed);
  }

  load_balancer_options config_;
  Picker picker_;
  Health health_;
  Clock clock_;
  [[no_unique_address]] Admission admission_;
  std::vector<std::unique_ptr<node>> kept_;  // every endpoint ever added (guarded by the write mutex)
  detail::snapshot_cell<snapshot> cell_;
  double ewma_decay_ns_;
  // The slow-start ramp's terms, worked out once (a pick reads them).
  std::int64_t ramp_window_ns_;
  double ramp_exponent_;
  double ramp_floor_;
  alignas(64) std::atomic<std::int64_t> ejected_{0};
  std::atomic<std::uint64_t> size_{0};
  std::atomic<std::int64_t> next_sweep_ns_{0};
  std::atomic<bool> picked_{false};  // slow start applies to endpoints added after the first pick
  // Written only by refused picks: a line of its own, away from what every pick reads.
  alignas(64) std::array<std::atomic<std::uint64_t>, 4> refused_{};
};

/// A backend's report of its own load (as in ORCA, which gRPC's weighted round robin reads).
struct load_report {
  double qps = 0;          ///< requests per second the backend served
  double utilization = 0;  ///< its utilization (CPU, or what the backend chooses), > 0; 1 = full
  double eps = 0;          ///< errors per second
};

/// How `load_report_weights` turns reports into weights (gRPC weighted round robin's options).
struct load_report_options {
  /// A backend's first reports count only after this long (a fresh backend's numbers are noisy).
  std::chrono::nanoseconds blackout = std::chrono::seconds(10);
  /// A backend that sent no report for this long goes back to the weight it had before.
  std::chrono::nanoseconds expiration = std::chrono::minutes(3);
  /// Errors count as this much utilization each, relative to the qps.
  double error_utilization_penalty = 1.0;
  /// A new weight is published only when it differs from the one in use by more than this
  /// share (publishing rebuilds the balancer's tables).
  double min_change = 0.1;
};

/// @brief Weights from server-reported load: each backend's weight becomes its capacity
/// estimate, `qps / (utilization + (eps / qps) * error_utilization_penalty)` (gRPC's weighted
/// round robin), once it has reported for `blackout`; one that stops reporting for
/// `expiration` goes back to the weight it had when its reports began.
///
/// Feeds any `load_balancer` through `set_weight` (a weight-aware picker then honours it):
/// `report` when a response carries a backend's load, `expire` now and then (or before each
/// report). Weights are whole numbers: an estimate below 1 counts as 1. Reports with zero
/// utilization or qps are ignored (the backend does not know its load).
///
/// **Thread safety:** none; report from one thread or under a lock (picks may run concurrently
/// on the balancer). Destroy it before the balancer.
/// @code
/// distkit::load_balancer<std::string, distkit::round_robin_picker> lb;
/// lb.add("10.0.0.1:80");
/// distkit::load_report_weights weights{lb};
/// // When a response from 10.0.0.1:80 carries its load:
/// weights.report("10.0.0.1:80", {.qps = 950, .utilization = 0.62}, std::chrono::steady_clock::now());
/// @endcode
template <class LoadBalancer>
class load_report_weights {
 public:
  using endpoint_type = typename LoadBalancer::endpoint_type;  // ordered by std::less

  /// @throws std::invalid_argument naming the option out of range.
  explicit load_report_weights(LoadBalancer& lb, load_report_options options = {}) : lb_(&lb), opts_(options) {
    constexpr std::string_view who = "load_report_weights";
    if (opts_.blackout.count() < 0) detail::throw_invalid_argument(who, "blackout", "must be >= 0 (ns)", 0);
    if (opts_.expiration.count() <= 0) detail::throw_invalid_argument(who, "expiration", "must be positive (ns)", 0);
    if (!(opts_.error_utilization_penalty >= 0) || !std::isfinite(opts_.error_utilization_penalty)) {
      detail::throw_invalid_argument(who, "error_utilization_penalty", "must be finite and >= 0",
                                     opts_.error_utilization_penalty);
    }
    if (!(opts_.min_change >= 0) || !std::isfinite(opts_.min_change)) {
      detail::throw_invalid_argument(who, "min_change", "must be finite and >= 0", opts_.min_change);
    }
  }

  /// Records `endpoint`'s load at `now`; publishes its new weight when it is out of blackout
  /// and the weight moved by more than `min_change`. Returns the weight in use afterwards.
  /// @throws std::invalid_argument naming `qps`, `utilization` or `eps` when negative or not
  ///         finite, or `endpoint` when it is not a member of the balancer.
  template <class TimePoint>
  auto report(const endpoint_type& endpoint, const load_report& r, TimePoint now) -> std::uint32_t {
    constexpr std::string_view who = "load_report_weights";
    const auto check = [&](const char* name, double v) {
      if (!(v >= 0) || !std::isfinite(v)) detail::throw_invalid_argument(who, name, "must be finite and >= 0", v);
    };
    check("qps", r.qps);
    check("utilization", r.utilization);
    check("eps", r.eps);
    const std::int64_t t = ns(now);
    const std::uint32_t current = lb_->weight(endpoint);
    if (r.qps == 0 || r.utilization == 0) return current;
    auto [it, fresh] = state_.try_emplace(endpoint);
    auto& st = it->second;
    if (fresh || t - st.last_ns > opts_.expiration.count()) {
      st.configured = fresh ? current : st.configured;
      st.since_ns = t;
    }
    st.last_ns = t;
    if (t - st.since_ns < opts_.blackout.count()) return current;
    const double capacity = r.qps / (r.utilization + (r.eps / r.qps) * opts_.error_utilization_penalty);
    const double clamped = std::clamp(capacity, 1.0, 1e9);
    const auto weight = static_cast<std::uint32_t>(std::llround(clamped));
    const double moved = std::abs(static_cast<double>(weight) - current) / static_cast<double>(current);
    if (moved > opts_.min_change) {
      lb_->set_weight(endpoint, weight);
      return weight;
    }
    return current;
  }

  /// Puts back the weight of every endpoint that sent no report for `expiration` by `now`
  /// (and forgets endpoints that left the balancer). Returns how many were put back.
  template <class TimePoint>
  auto expire(TimePoint now) -> std::size_t {
    const std::int64_t t = ns(now);
    std::size_t restored = 0;
    for (auto it = state_.begin(); it != state_.end();) {
      if (t - it->second.last_ns <= opts_.expiration.count()) {
        ++it;
        continue;
      }
      try {
        lb_->set_weight(it->first, it->second.configured);
        ++restored;
      } catch (const std::invalid_argument&) {
        // left the balancer: nothing to restore
      }
      it = state_.erase(it);
    }
    return restored;
  }

 private:
  struct endpoint_state {
    std::uint32_t configured = 1;  // the weight before its reports began
    std::int64_t since_ns = 0;     // when its current run of reports began
    std::int64_t last_ns = 0;      // its latest report
  };
  template <class TimePoint>
  static auto ns(TimePoint t) -> std::int64_t {
    return detail::saturating_ns(t.time_since_epoch());
  }

  LoadBalancer* lb_;
  load_report_options opts_;
  std::map<endpoint_type, endpoint_state> state_;
};

}  // namespace distkit::inline v0
