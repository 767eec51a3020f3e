// SPDX-License-Identifier: MIT
// distkit/hash_ring.hpp: consistent hashing — a weighted virtual-node ring, a libmemcached
// ketama-compatible mode, jump, rendezvous and Maglev placement, replica sets, bounded loads,
// and an atomically published snapshot for lookups during membership changes.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "distkit/detail/error.hpp"
#include "distkit/detail/md5.hpp"
#include "distkit/detail/ring_points.hpp"
#include "distkit/hash.hpp"

namespace distkit::inline v0 {

/// @brief One member as a placement policy sees it: the node's identity bytes and its weight.
struct ring_member {
  std::string_view name;     ///< the node's bytes (`detail::key_bytes(node)`)
  std::uint32_t weight = 1;  ///< >= 1
};

/// @brief A placement algorithm: maps a key's 64-bit hash to a member index.
///
/// A placement is a copyable value that holds its built table. It must provide
/// - `p.build(members)`: rebuild for `std::span<const ring_member>` (at least one member);
///   may throw `std::invalid_argument` for members it cannot place (such as weights jump cannot
///   express), and must then leave `p` unchanged;
/// - `p.lookup(hash) noexcept -> std::uint32_t`: the member index for a key hash (const);
/// - `p.lookup_n(hash, out) -> std::size_t`: up to `out.size()` *distinct* member indices in
///   the placement's preference order (`out[0] == lookup(hash)`), returning how many it wrote.
/// Optional: `static constexpr bool remove_last_only = true;` when only the most recently added
/// member can be removed (jump).
template <class P>
concept placement = std::copy_constructible<P> && requires(P& p, const P& cp, std::span<const ring_member> members,
                                                           std::uint64_t h, std::span<std::uint32_t> out) {
  p.build(members);
  { cp.lookup(h) } noexcept -> std::same_as<std::uint32_t>;
  { cp.lookup_n(h, out) } -> std::same_as<std::size_t>;
};

namespace detail {
[[noreturn]] DISTKIT_COLD inline void throw_bad_placement_weight(std::string_view policy) {
  throw_invalid_argument("hash_ring", "weight", std::string("must be 1 with ") + std::string(policy) + " placement");
}

template <class P>
inline constexpr bool removes_last_only = [] {
  if constexpr (requires { P::remove_last_only; }) {
    return static_cast<bool>(P::remove_last_only);
  } else {
    return false;
  }
}();
}  // namespace detail

/// @brief Consistent hashing on a ring of weighted virtual nodes (the default placement).
///
/// Member `m` with weight `w` owns `points_per_weight * w` points; point `j` is
/// `XXH3_64bits_withSeed(name, j)`. A key goes to the owner of the first point >= its 64-bit
/// hash, wrapping past the top. Points are 64-bit, so collisions (ties go to the lower member
/// index) are practically absent and the placement does not depend on the order of `add` calls.
///
/// Trade-offs: adding or removing a member moves only the keys it gains or loses (the ideal
/// 1/N on average); weights are exact in expectation; replica sets are the next distinct owners
/// clockwise. Balance depends on the number of points: with 160 per member the busiest of 10
/// members carried 1.08x the mean over 1M keys in the tests (jump, rendezvous and Maglev stay
/// within 1.01x; see `bounded_load_ring` for a hard cap). Memory: 12 bytes per point plus the radix index.
///
/// **Complexity:** lookup O(1) expected (radix index on the top bits + a short scan); build
/// O(P log P) for P points.
class ring_placement {
 public:
  static constexpr std::uint32_t default_points_per_weight = 160;
  static constexpr std::size_t max_points = std::size_t{1} << 26;

  /// @throws std::invalid_argument if `points_per_weight` is 0.
  explicit ring_placement(std::uint32_t points_per_weight = default_points_per_weight)
      : points_per_weight_(points_per_weight) {
    if (points_per_weight == 0) {
      detail::throw_invalid_argument("ring_placement", "points_per_weight", "must be at least 1", points_per_weight);
    }
  }

  /// @throws std::invalid_argument if the members would need more than 2^26 points.
  void build(std::span<const ring_member> members) {
    std::size_t total = 0;
    for (const ring_member& m : members) total += std::size_t{m.weight} * points_per_weight_;
    if (total > max_points) {
      detail::throw_invalid_argument("ring_placement", "weight",
                                     "times points_per_weight must total at most 2^26 points", total);
    }
    std::vector<std::pair<std::uint64_t, std::uint32_t>> pairs;
    pairs.reserve(total);
    for (std::size_t i = 0; i < members.size(); ++i) {
      const std::string_view name = members[i].name;
      const std::size_t count = std::size_t{members[i].weight} * points_per_weight_;
      for (std::size_t j = 0; j < count; ++j) {
        pairs.emplace_back(XXH3_64bits_withSeed(name.data(), name.size(), j), static_cast<std::uint32_t>(i));
      }
    }
    points_.assign(std::move(pairs));
    members_ = members.size();
  }

  [[nodiscard]] auto lookup(std::uint64_t h) const noexcept -> std::uint32_t { return points_.owner_at(h); }
  auto lookup_n(std::uint64_t h, std::span<std::uint32_t> out) const -> std::size_t {
    return points_.walk(h, out, members_);
  }

  [[nodiscard]] auto points_per_weight() const noexcept -> std::uint32_t { return points_per_weight_; }
  /// The number of points on the ring.
  [[nodiscard]] auto point_count() const noexcept -> std::size_t { return points_.size(); }

 private:
  std::uint32_t points_per_weight_;
  std::size_t members_ = 0;
  detail::ring_points<std::uint64_t> points_;
};

/// @brief libmemcached's key hash for ketama: the first 4 bytes of MD5(key), little-endian
/// (`hashkit_md5`), as a 64-bit value below 2^32. Use it with `ketama_placement`.
///
/// Uses distkit's own MD5 (`detail/md5.hpp`, RFC 1321), so it needs no OpenSSL.
/// **Thread safety:** stateless. **Complexity:** O(key size); one MD5 block for keys < 56 bytes.
struct ketama_key_hash {
  static constexpr std::uint8_t id = 5;
  static constexpr std::string_view name = "ketama-md5";

  [[nodiscard]] static auto bytes(const void* data, std::size_t size) noexcept -> std::uint64_t {
    return detail::md5_words(data, size)[0];
  }
  template <byte_hashable Key>
  [[nodiscard]] auto operator()(const Key& key) const noexcept -> std::uint64_t {
    const std::string_view b = detail::key_bytes(key);
    return bytes(b.data(), b.size());
  }
};
static_assert(hasher<ketama_key_hash, std::string>);

/// @brief libmemcached's ketama continuum (`MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA` with
/// `MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED`), point for point. Use it with `ketama_key_hash`
/// (alias `ketama_ring<Node>`), and name members like servers: `"host"` or `"host:port"`.
///
/// What it reproduces of libmemcached 1.1.4 (`update_continuum`, `dispatch_host`), including
/// the quirks a compatible client must match:
/// - Point names are `"host-i"` when the port is 11211 (libmemcached's default) and
///   `"host:port-i"` otherwise, `i` counting from 0; a member named `"host:11211"` is therefore
///   hashed as `"host"`, exactly as libmemcached formats a server added with port 11211 or 0.
/// - Each name gives 4 points: the 4 little-endian 32-bit words of its MD5 digest.
/// - Points per server are computed in single precision, as libmemcached does:
///   `floor((float)(pct * 160 / 4 * (float)servers + 1e-10)) * 4` with
///   `pct = (float)weight / (float)total_weight`. The float rounding means equal weights do
///   not always give 160 points: for 8 of the server counts 1..100 `pct * 40 * servers` lands
///   just below 40 and every server gets 156. A server whose share rounds down to 0 gets no points and
///   never receives a key.
/// - Points are sorted by value; equal values keep server order (libmemcached's qsort is the
///   stable glibc merge sort), and a key goes to the first point >= its hash, wrapping to the
///   first point past the top.
/// - The key hash is `hashkit_md5` (first MD5 word, little-endian): `ketama_key_hash`.
/// - Server index = `add` order (libmemcached's, without `MEMCACHED_BEHAVIOR_SORT_HOSTS`).
///
/// - libmemcached itself aborts (an assertion in `update_continuum`) above 100 servers; this
///   placement has no such limit and simply continues the same scheme.
///
/// Not reproduced: the unweighted `MEMCACHED_BEHAVIOR_KETAMA` mode (100 points per server
/// hashed with the distribution hash), the Spymemcached point format, auto-ejected hosts.
///
/// Trade-offs: the 32-bit points collide among large server sets, and the float share gives
/// unequal weights a point count off by up to 4 from the exact share; both are kept for
/// compatibility. Prefer `ring_placement` when you do not need to agree with libmemcached.
///
/// **Complexity:** lookup O(1) expected after the key's MD5; build O(P log P), one MD5 per 4 points.
class ketama_placement {
 public:
  /// The number of points libmemcached gives a server of weight `weight` among `servers`
  /// servers of total weight `total_weight`.
  [[nodiscard]] static auto points_for(std::uint32_t weight, std::uint64_t total_weight, std::uint32_t servers) noexcept
      -> std::uint32_t {
    // Each operation is kept in float, in libmemcached's order; only the final addition of
    // 1e-10 is in double (it cannot change a float of this size, but is kept for fidelity).
    const float pct = static_cast<float>(weight) / static_cast<float>(total_weight);
    float scaled = pct * 160.0F;
    scaled = scaled / 4.0F;
    scaled = scaled * static_cast<float>(servers);
    const auto with_epsilon = static_cast<float>(static_cast<double>(scaled) + 0.0000000001);
    return static_cast<std::uint32_t>(std::floor(with_epsilon)) * 4U;
  }

  /// The string libmemcached hashes for point group `index` of a server named `name`.
  [[nodiscard]] static auto point_name(std::string_view name, std::uint32_t index) -> std::string {
    constexpr std::string_view default_port = ":11211";
    if (name.size() > default_port.size() && name.substr(name.size() - default_port.size()) == default_port) {
      name.remove_suffix(default_port.size());
    }
    std::string out(name);
    out += '-';
    out += std::to_string(index);
    return out;
  }

  void build(std::span<const ring_member> members) {
    std::uint64_t total_weight = 0;
    for (const ring_member& m : members) total_weight += m.weight;
    const auto servers = static_cast<std::uint32_t>(members.size());
    std::vector<std::pair<std::uint32_t, std::uint32_t>> pairs;
    pairs.reserve(members.size() * 160);
    for (std::size_t i = 0; i < members.size(); ++i) {
      const std::uint32_t groups = points_for(members[i].weight, total_weight, servers) / 4;
      for (std::uint32_t g = 0; g < groups; ++g) {
        const std::string point = point_name(members[i].name, g);
        const std::array<std::uint32_t, 4> words = detail::md5_words(point.data(), point.size());
        for (const std::uint32_t w : words) pairs.emplace_back(w, static_cast<std::uint32_t>(i));
      }
    }
    // Sorting (value, server index) pairs is the stable sort by value libmemcached performs.
    points_.assign(std::move(pairs));
    members_ = members.size();
  }

  [[nodiscard]] auto lookup(std::uint64_t h) const noexcept -> std::uint32_t {
    return points_.owner_at(static_cast<std::uint32_t>(h));
  }
  auto lookup_n(std::uint64_t h, std::span<std::uint32_t> out) const -> std::size_t {
    return points_.walk(static_cast<std::uint32_t>(h), out, members_);
  }
  /// The number of points on the continuum.
  [[nodiscard]] auto point_count() const noexcept -> std::size_t { return points_.size(); }

 private:
  std::size_t members_ = 0;
  detail::ring_points<std::uint32_t> points_;
};

/// @brief Jump consistent hash (Lamping & Veach, 2014): members are buckets 0..n-1 in `add` order.
///
/// Trade-offs: no table at all (O(ln n) time, O(1) memory), perfect balance in expectation and
/// the minimal movement (growing from n to n+1 buckets moves 1/(n+1) of the keys, all to the
/// new bucket). But it has no names on the ring: only the most recently added member can be
/// removed (removing another would renumber the buckets), and it has no weights (every weight
/// must be 1). Replica sets come from re-hashing the key: member k of the set is the first new
/// bucket of `jump(mix(hash + k·φ))`, falling back to the next bucket index in order. So a set
/// of k costs k jumps (about 3x a lookup for k = 3), the price of spreading a failed bucket's
/// keys over all the others rather than onto one neighbour.
///
/// **Complexity:** lookup O(ln n), `lookup_n` O(k ln n); no memory beyond the member count.
class jump_placement {
 public:
  static constexpr bool remove_last_only = true;

  /// The bucket in [0, buckets) for a 64-bit key (the published algorithm, verbatim in behaviour).
  [[nodiscard]] static auto jump(std::uint64_t key, std::uint32_t buckets) noexcept -> std::uint32_t {
    std::int64_t b = -1;
    std::int64_t j = 0;
    while (j < static_cast<std::int64_t>(buckets)) {
      b = j;
      key = key * 2862933555777941757ULL + 1;
      j = static_cast<std::int64_t>(static_cast<double>(b + 1) * (static_cast<double>(std::int64_t{1} << 31) /
                                                                  static_cast<double>((key >> 33) + 1)));
    }
    return static_cast<std::uint32_t>(b);
  }

  /// @throws std::invalid_argument if a weight is not 1.
  void build(std::span<const ring_member> members) {
    for (const ring_member& m : members) {
      if (m.weight != 1) detail::throw_bad_placement_weight("jump");
    }
    buckets_ = static_cast<std::uint32_t>(members.size());
  }
  [[nodiscard]] auto lookup(std::uint64_t h) const noexcept -> std::uint32_t { return jump(h, buckets_); }
  auto lookup_n(std::uint64_t h, std::span<std::uint32_t> out) const -> std::size_t {
    const std::size_t wanted = std::min<std::size_t>(out.size(), buckets_);
    if (wanted == 0) return 0;
    if (wanted == 1) {
      out[0] = jump(h, buckets_);
      return 1;
    }
    // Candidate k is jump(key_k) with key_0 = h and key_k = mix(h + k·φ); the first `wanted`
    // distinct candidates are the set. A bounded number of tries, then the remaining buckets in
    // index order, so the call always ends and always returns distinct buckets. The first
    // candidates are computed before any is compared, so their chains of dependent divisions
    // overlap in the core instead of running one after another.
    std::array<std::uint32_t, overlapped> first{};
    const std::size_t ahead = std::min(wanted, overlapped);
    for (std::size_t k = 0; k < ahead; ++k) first[k] = jump(k == 0 ? h : candidate_key(h, k), buckets_);
    std::size_t count = 0;
    for (std::size_t k = 0; k < ahead; ++k) count = detail::push_distinct(out, count, first[k]);
    const std::size_t tries = 4 * wanted + 16;
    for (std::size_t k = ahead; k <= tries && count < wanted; ++k) {
      count = detail::push_distinct(out, count, jump(candidate_key(h, k), buckets_));
    }
    for (std::uint32_t b = (out[0] + 1) % buckets_; count < wanted; b = (b + 1) % buckets_) {
      count = detail::push_distinct(out, count, b);
    }
    return count;
  }

 private:
  static constexpr std::size_t overlapped = 4;  // candidates computed before any comparison

  [[nodiscard]] static auto candidate_key(std::uint64_t h, std::size_t k) noexcept -> std::uint64_t {
    return detail::mix64(h + k * 0x9e3779b97f4a7c15ULL);
  }

  std::uint32_t buckets_ = 0;
};

/// @brief Weighted rendezvous (highest random weight) hashing.
///
/// Each member gets a score per key, `-weight / ln(u)` with `u` uniform in (0, 1) derived
/// from the key hash and the member's name; the highest score wins (with equal weights the
/// largest `u` wins, and no logarithm is taken). Replica sets are the n highest scores.
///
/// Trade-offs: exact weights and the minimal movement for any membership change (a key moves
/// only if it moves to the added member, or from the removed one), any member removable, tiny
/// memory — but O(n) per lookup, so it suits tens of members, not thousands.
///
/// **Complexity:** lookup O(n); `lookup_n` O(n + k²) (O(n·k) up to 64 members, where k passes
/// of a branch-free maximum beat a mispredicting insertion).
class rendezvous_placement {
 public:
  void build(std::span<const ring_member> members) {
    seeds_.resize(members.size());
    weights_.resize(members.size());
    equal_weights_ = true;
    for (std::size_t i = 0; i < members.size(); ++i) {
      seeds_[i] = XXH3_64bits(members[i].name.data(), members[i].name.size());
      weights_[i] = static_cast<double>(members[i].weight);
      equal_weights_ = equal_weights_ && members[i].weight == members[0].weight;
    }
  }

  [[nodiscard]] auto lookup(std::uint64_t h) const noexcept -> std::uint32_t {
    std::uint32_t best = 0;
    lookup_n(h, std::span<std::uint32_t>(&best, 1));
    return best;
  }

  auto lookup_n(std::uint64_t h, std::span<std::uint32_t> out) const -> std::size_t {
    const std::size_t wanted = std::min(out.size(), seeds_.size());
    if (wanted == 0) return 0;
    // Ranking by the uniform draw and by the score agree when the weights are equal.
    if (equal_weights_) return top(out.first(wanted), [&](std::size_t i) { return draw(h, i); });
    return top(out.first(wanted), [&](std::size_t i) { return score(h, i); });
  }

 private:
  [[nodiscard]] auto draw(std::uint64_t h, std::size_t i) const noexcept -> std::uint64_t {
    return detail::mix64(h ^ seeds_[i]);
  }
  [[nodiscard]] auto score(std::uint64_t h, std::size_t i) const noexcept -> double {
    // u in (0, 1): the top 53 bits plus one half, scaled; never 0 or 1, so ln(u) < 0.
    const double u = (static_cast<double>(draw(h, i) >> 11) + 0.5) * 0x1.0p-53;
    return -weights_[i] / std::log(u);
  }

  // The out.size() members of highest score, highest first, ties to the lower index (as
  // `lookup` breaks them). Small sets keep a sorted run of the best so far (no allocation).
  template <class Score>
  auto top(std::span<std::uint32_t> out, Score score_of) const -> std::size_t {
    using score_t = decltype(score_of(std::size_t{0}));
    const std::size_t k = out.size();
    const std::size_t n = seeds_.size();
    if (n <= 64) {
      // Score every member once, then take the best k times: each pass is a branch-free
      // maximum over a few dozen values, cheaper than insertions that mispredict.
      std::array<score_t, 64> scores{};
      for (std::size_t i = 0; i < n; ++i) scores[i] = score_of(i);
      std::uint64_t taken = 0;
      for (std::size_t r = 0; r < k; ++r) {
        std::size_t best = n;
        for (std::size_t i = 0; i < n; ++i) {
          const bool free = ((taken >> i) & 1U) == 0;
          const bool better = best == n || scores[i] > scores[best];
          best = free && better ? i : best;
        }
        taken |= std::uint64_t{1} << best;
        out[r] = static_cast<std::uint32_t>(best);
      }
      return k;
    }
    if (k <= 16) {
      // Larger memberships: score a block of members at a time (a loop the compiler can
      // vectorize), then keep a sorted run of the best k; past the first few blocks a score
      // rarely beats the k-th best, so the test is well predicted.
      std::array<score_t, 16> best{};
      std::array<score_t, 64> block{};
      std::size_t count = 0;
      for (std::size_t base = 0; base < n; base += block.size()) {
        const std::size_t m = std::min(block.size(), n - base);
        for (std::size_t i = 0; i < m; ++i) block[i] = score_of(base + i);
        for (std::size_t i = 0; i < m; ++i) {
          const score_t s = block[i];
          if (count == k && !(s > best[k - 1])) continue;
          std::size_t pos = count < k ? count++ : k - 1;
          for (; pos > 0 && s > best[pos - 1]; --pos) {
            best[pos] = best[pos - 1];
            out[pos] = out[pos - 1];
          }
          best[pos] = s;
          out[pos] = static_cast<std::uint32_t>(base + i);
        }
      }
      return k;
    }
    std::vector<std::pair<score_t, std::uint32_t>> scored(n);
    for (std::size_t i = 0; i < n; ++i) scored[i] = {score_of(i), static_cast<std::uint32_t>(i)};
    std::partial_sort(
        scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(k), scored.end(),
        [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
    for (std::size_t i = 0; i < k; ++i) out[i] = scored[i].second;
    return k;
  }

  std::vector<std::uint64_t> seeds_;
  std::vector<double> weights_;
  bool equal_weights_ = true;
};

/// @brief Maglev hashing (Eisenbud et al., NSDI 2016): a lookup table filled from each
/// member's permutation of the slots, taking turns.
///
/// The table size M is a prime >= 100·n, so every member holds within 1% of its share of
/// slots. By default it is the smallest prime above max(65536, bit_ceil(100·n)) — 65537 up to
/// 655 members, as in the paper — and stays fixed while members come and go: changing M
/// remaps nearly every key, so it only grows when 100·n crosses a power of two (pass an
/// explicit prime to pin it). Weights give a member `weight` turns per round of the fill.
///
/// Trade-offs: the fastest lookup (one multiply and one load) and near-perfect balance; but
/// membership changes are only *nearly* minimal (a few percent of keys move between members
/// that stayed, on top of the ideal 1/N), a rebuild is O(M log M), and the table costs 6 bytes
/// per slot. Replica sets are the next distinct members in table order; for sets of up to 3 the
/// build records, per slot, how far ahead the 2nd and 3rd distinct members sit (2 of the 6
/// bytes), so `lookup_n` reads three slots of one cache line instead of walking and comparing.
///
/// **Complexity:** lookup O(1); build O(M log M) expected.
class maglev_placement {
 public:
  /// @param table_size 0 for automatic (smallest prime >= 100·members), else a prime >= the
  /// member count, checked at `build`.
  /// @throws std::invalid_argument if `table_size` is not 0 and not a prime, or too large.
  explicit maglev_placement(std::size_t table_size = 0) : requested_size_(table_size) {
    if (table_size != 0 && (!is_prime(table_size) || table_size > max_table_size)) {
      detail::throw_invalid_argument("maglev_placement", "table_size", "must be 0 or a prime below 2^31", table_size);
    }
  }
  static constexpr std::size_t max_table_size = std::size_t{1} << 31;

  /// The automatic table size for `members` members: the smallest prime above
  /// `max(65536, bit_ceil(100 · members))`. It is a function of the member count alone (so
  /// clients with the same members agree) that changes only when 100 · members crosses a power
  /// of two above 65536, because every change of size remaps nearly every key.
  [[nodiscard]] static auto automatic_table_size(std::size_t members) noexcept -> std::size_t {
    std::size_t m = std::max<std::size_t>(65536, std::bit_ceil(100 * std::max<std::size_t>(members, 1))) + 1;
    while (!is_prime(m)) ++m;
    return m;
  }

  [[nodiscard]] static auto is_prime(std::size_t n) noexcept -> bool {
    if (n < 2) return false;
    for (std::size_t d = 2; d * d <= n; ++d) {
      if (n % d == 0) return false;
    }
    return true;
  }

  /// @throws std::invalid_argument if the table size is smaller than the member count.
  void build(std::span<const ring_member> members) {
    std::size_t m = requested_size_;
    if (m == 0) {
      m = automatic_table_size(members.size());
    } else if (m < members.size()) {
      detail::throw_invalid_argument("maglev_placement", "table_size", "must be at least the member count", m);
    }
    const std::size_t n = members.size();
    std::vector<std::uint64_t> offset(n);
    std::vector<std::uint64_t> skip(n);
    std::vector<std::uint64_t> next(n, 0);
    for (std::size_t i = 0; i < n; ++i) {
      const std::string_view name = members[i].name;
      offset[i] = XXH3_64bits_withSeed(name.data(), name.size(), 0x6d61676c6576ULL) % m;
      skip[i] = XXH3_64bits_withSeed(name.data(), name.size(), 0x736b6970ULL) % (m - 1) + 1;
    }
    std::vector<std::uint32_t> table(m, std::numeric_limits<std::uint32_t>::max());
    std::size_t filled = 0;
    while (filled < m) {
      for (std::size_t i = 0; i < n && filled < m; ++i) {
        for (std::uint32_t turn = 0; turn < members[i].weight && filled < m; ++turn) {
          std::uint64_t slot = (offset[i] + next[i] * skip[i]) % m;
          while (table[slot] != std::numeric_limits<std::uint32_t>::max()) {
            ++next[i];
            slot = (offset[i] + next[i] * skip[i]) % m;
          }
          table[slot] = static_cast<std::uint32_t>(i);
          ++next[i];
          ++filled;
        }
      }
    }
    hops_ = replica_hops(table);
    table_ = std::move(table);
    members_ = n;
  }

  [[nodiscard]] auto lookup(std::uint64_t h) const noexcept -> std::uint32_t {
    return table_[detail::reduce_range(h, table_.size())];
  }
  auto lookup_n(std::uint64_t h, std::span<std::uint32_t> out) const -> std::size_t {
    if (out.empty() || table_.empty()) return 0;
    const std::size_t m = table_.size();
    std::size_t slot = detail::reduce_range(h, m);
    const std::size_t wanted = std::min(out.size(), members_);
    if (wanted <= 3) {  // the recorded hops: no walk, no comparisons
      const hop next = hops_[slot];
      out[0] = table_[slot];
      if (wanted == 1) return 1;
      if (next.second != 0 && (wanted == 2 || next.third != 0)) {
        const auto ahead = [&](std::size_t d) { return slot + d < m ? slot + d : slot + d - m; };
        out[1] = table_[ahead(next.second)];
        if (wanted == 3) out[2] = table_[ahead(next.third)];
        return wanted;
      }
    }
    detail::distinct_collector collect(out, members_);
    for (std::size_t step = 0; step < m; ++step) {
      if (collect.offer(table_[slot])) break;
      if (++slot == m) slot = 0;
    }
    return collect.count();
  }
  /// The number of slots in the lookup table.
  [[nodiscard]] auto table_size() const noexcept -> std::size_t { return table_.size(); }

 private:
  // How many slots ahead of a slot its 2nd and 3rd distinct members sit (0: none within 255).
  struct hop {
    std::uint8_t second = 0;
    std::uint8_t third = 0;
  };

  static auto replica_hops(const std::vector<std::uint32_t>& table) -> std::vector<hop> {
    const std::size_t m = table.size();
    std::vector<hop> hops(m);
    for (std::size_t s = 0; s < m; ++s) {
      const std::uint32_t first = table[s];
      std::uint32_t second = first;
      std::size_t slot = s;
      for (std::size_t d = 1; d <= std::numeric_limits<std::uint8_t>::max() && d < m; ++d) {
        if (++slot == m) slot = 0;
        const std::uint32_t owner = table[slot];
        if (owner == first || (hops[s].second != 0 && owner == second)) continue;
        if (hops[s].second == 0) {
          hops[s].second = static_cast<std::uint8_t>(d);
          second = owner;
        } else {
          hops[s].third = static_cast<std::uint8_t>(d);
          break;
        }
      }
    }
    return hops;
  }

  std::size_t requested_size_;
  std::size_t members_ = 0;
  std::vector<std::uint32_t> table_;
  std::vector<hop> hops_;
};

static_assert(placement<ring_placement>);
static_assert(placement<ketama_placement>);
static_assert(placement<jump_placement>);
static_assert(placement<rendezvous_placement>);
static_assert(placement<maglev_placement>);

/// @brief A node that can join a hash ring: copyable, comparable, and hashed by its bytes
/// (strings such as `"10.0.0.1:11211"`, integers, padding-free structs).
template <class Node>
concept ring_node = std::copy_constructible<Node> && std::equality_comparable<Node> && byte_hashable<Node>;

namespace detail {

/// A read-only random-access iterator over nodes held by pointer (the ring's members, a
/// replica set): it yields `const Node&`.
template <class Node>
class node_iterator {
 public:
  using iterator_concept = std::random_access_iterator_tag;
  using iterator_category = std::random_access_iterator_tag;
  using value_type = Node;
  using difference_type = std::ptrdiff_t;
  using pointer = const Node*;
  using reference = const Node&;

  node_iterator() = default;
  explicit node_iterator(const Node* const* at) noexcept : at_(at) {}

  [[nodiscard]] auto operator*() const noexcept -> const Node& { return **at_; }
  [[nodiscard]] auto operator->() const noexcept -> const Node* { return *at_; }
  [[nodiscard]] auto operator[](difference_type n) const noexcept -> const Node& { return *at_[n]; }
  auto operator++() noexcept -> node_iterator& {
    ++at_;
    return *this;
  }
  auto operator++(int) noexcept -> node_iterator {
    node_iterator before = *this;
    ++at_;
    return before;
  }
  auto operator--() noexcept -> node_iterator& {
    --at_;
    return *this;
  }
  auto operator--(int) noexcept -> node_iterator {
    node_iterator before = *this;
    --at_;
    return before;
  }
  auto operator+=(difference_type n) noexcept -> node_iterator& {
    at_ += n;
    return *this;
  }
  auto operator-=(difference_type n) noexcept -> node_iterator& {
    at_ -= n;
    return *this;
  }
  [[nodiscard]] friend auto operator+(node_iterator it, difference_type n) noexcept -> node_iterator { return it += n; }
  [[nodiscard]] friend auto operator+(difference_type n, node_iterator it) noexcept -> node_iterator { return it += n; }
  [[nodiscard]] friend auto operator-(node_iterator it, difference_type n) noexcept -> node_iterator { return it -= n; }
  [[nodiscard]] friend auto operator-(const node_iterator& a, const node_iterator& b) noexcept -> difference_type {
    return a.at_ - b.at_;
  }
  [[nodiscard]] friend auto operator==(const node_iterator& a, const node_iterator& b) noexcept -> bool {
    return a.at_ == b.at_;
  }
  [[nodiscard]] friend auto operator<=>(const node_iterator& a, const node_iterator& b) noexcept {
    return a.at_ <=> b.at_;
  }

 private:
  const Node* const* at_ = nullptr;
};

}  // namespace detail

/// @brief The replica set of a key: up to n distinct nodes of a `hash_ring`, primary first, in
/// the placement's preference order, as references to the ring's nodes rather than copies,
/// so `nodes_for` costs the walk and nothing more (no allocation for up to 8 nodes).
///
/// The nodes it refers to live as long as the ring that produced it: a ring keeps every node it
/// has held, so a replica set stays valid and unchanged across later `add`, `remove` and
/// `set_weight` calls on that ring (or on copies of it), and becomes invalid only when the ring
/// is destroyed or assigned to. To keep the nodes beyond that, convert it: it converts
/// implicitly to `std::vector<Node>` (`std::vector<std::string> r = ring.nodes_for(key, 3);`),
/// or call `to_vector()`. It compares equal to a `std::vector<Node>` of the same nodes in order.
///
/// A read-only random-access range of `const Node&` (copy it into a vector to reorder it).
///
/// **Thread safety:** a value; reading it while the ring changes is safe.
/// **Complexity:** element access O(1); conversion to a vector O(n) copies.
template <class Node>
class replica_set {
 public:
  using value_type = Node;
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;
  using reference = const Node&;
  using const_reference = const Node&;
  using iterator = detail::node_iterator<Node>;
  using const_iterator = iterator;
  static constexpr std::size_t inline_capacity = 8;

  replica_set() = default;

  [[nodiscard]] auto size() const noexcept -> std::size_t { return size_; }
  [[nodiscard]] auto empty() const noexcept -> bool { return size_ == 0; }
  [[nodiscard]] auto operator[](std::size_t i) const noexcept -> const Node& { return *slots()[i]; }
  /// @throws std::out_of_range if `i >= size()`.
  [[nodiscard]] auto at(std::size_t i) const -> const Node& {
    if (i >= size_) detail::throw_out_of_range("replica_set", "index", i, size_);
    return (*this)[i];
  }
  [[nodiscard]] auto front() const noexcept -> const Node& { return (*this)[0]; }
  [[nodiscard]] auto back() const noexcept -> const Node& { return (*this)[size_ - 1]; }
  [[nodiscard]] auto begin() const noexcept -> iterator { return iterator(slots()); }
  [[nodiscard]] auto end() const noexcept -> iterator { return iterator(slots() + size_); }

  /// Copies the nodes out.
  [[nodiscard]] auto to_vector() const -> std::vector<Node> { return std::vector<Node>(begin(), end()); }
  // NOLINTNEXTLINE(google-explicit-constructor): `std::vector<Node> r = ring.nodes_for(k, n)` is the point
  operator std::vector<Node>() const { return to_vector(); }

  [[nodiscard]] friend auto operator==(const replica_set& a, const replica_set& b) -> bool {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }
  [[nodiscard]] friend auto operator==(const replica_set& a, const std::vector<Node>& b) -> bool {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }

 private:
  template <ring_node, class, placement>
  friend class hash_ring;

  // Room for `capacity` nodes; the ring fills `slots()` and sets the size.
  explicit replica_set(std::size_t capacity) {
    if (capacity > inline_capacity) heap_.resize(capacity);
  }
  [[nodiscard]] auto slots() noexcept -> const Node** { return heap_.empty() ? inline_.data() : heap_.data(); }
  [[nodiscard]] auto slots() const noexcept -> const Node* const* {
    return heap_.empty() ? inline_.data() : heap_.data();
  }

  std::size_t size_ = 0;
  std::array<const Node*, inline_capacity> inline_{};
  std::vector<const Node*> heap_;  // only when more than inline_capacity nodes are asked for
};

/// @brief A consistent-hash ring: which node owns a key, and which n distinct nodes hold its
/// replicas, with a pluggable placement algorithm.
///
/// The ring is a value: mutations (`add`, `remove`, `set_weight`) rebuild the placement table
/// and leave the ring unchanged if they throw. To change membership while other threads look
/// keys up, use `concurrent_hash_ring`, which publishes immutable rings.
///
/// Nodes are stored once each and never move: the reference `node_for` returns and the
/// `replica_set` `nodes_for` returns stay valid across later changes, until the ring (and every
/// copy of it, which share the stored nodes) is destroyed or assigned. A removed node's copy is
/// kept and reused if it is added again, so the memory grows with the number of distinct nodes
/// ever added, not with the number of changes.
///
/// @tparam Node a `ring_node`: what the ring hands out (a server address, a shard id).
/// @tparam Hash a `hasher` for keys; default `xxh3_hash`. `ketama_placement` needs
///         `ketama_key_hash` to agree with libmemcached (see `ketama_ring`).
/// @tparam Placement a `placement`; default `ring_placement` (160 virtual nodes per weight).
///
/// **Thread safety:** const member functions may run concurrently; mutations need exclusive
/// access (as for standard containers).
/// **Complexity:** `node_for` is the placement's lookup plus one hash (O(1) expected for the
/// ring, ketama and Maglev); `nodes_for(key, k)` adds the placement's walk for k nodes (about k
/// points for the ring); `add`/`remove`/`set_weight` rebuild in O(P log P) and find nodes in O(n).
///
/// @code
/// distkit::hash_ring<std::string> ring;
/// ring.add("cache-a:11211");
/// ring.add("cache-b:11211", 2);  // twice the keys
/// const std::string& owner = ring.node_for("user:42");
/// std::vector<std::string> replicas = ring.nodes_for("user:42", 2);  // distinct, ring order
/// for (const std::string& node : ring.nodes_for("user:43", 2)) std::cout << node << '\n';  // no copies
/// @endcode
template <ring_node Node, class Hash = xxh3_hash, placement Placement = ring_placement>
class hash_ring {
 public:
  using node_type = Node;
  using hasher_type = Hash;
  using placement_type = Placement;
  using const_iterator = detail::node_iterator<Node>;
  static constexpr std::uint32_t max_weight = std::numeric_limits<std::uint32_t>::max();

  explicit hash_ring(Placement policy = Placement{}, Hash hash = Hash{})
      : placement_(std::move(policy)), hash_(std::move(hash)) {}

  /// Adds `node` with `weight` (relative share of keys).
  /// @throws std::invalid_argument if `node` is already present ("node"), or `weight` is not in
  /// [1, 2^32 - 1] ("weight"), or the placement rejects the weight.
  void add(const Node& node, std::int64_t weight = 1) {
    check_weight(weight);
    if (find(node) != npos) detail::throw_invalid_argument("hash_ring", "node", "is already in the ring");
    kept_nodes keep(kept_);
    std::vector<const Node*> nodes = nodes_;
    std::vector<std::uint32_t> weights = weights_;
    nodes.push_back(keep.get(node));
    weights.push_back(static_cast<std::uint32_t>(weight));
    keep.reserve();
    commit(std::move(nodes), std::move(weights));
    keep.commit();
  }

  /// Adds several (node, weight) members with one rebuild, all or nothing (libmemcached's
  /// `memcached_server_push` for a server list).
  /// @throws std::invalid_argument as `add` for any member, or if a node appears twice.
  void add(std::span<const std::pair<Node, std::int64_t>> members) {
    kept_nodes keep(kept_);
    std::vector<const Node*> nodes = nodes_;
    std::vector<std::uint32_t> weights = weights_;
    for (const auto& member : members) {
      check_weight(member.second);
      for (const Node* p : nodes) {
        if (*p == member.first) detail::throw_invalid_argument("hash_ring", "node", "is already in the ring");
      }
      nodes.push_back(keep.get(member.first));
      weights.push_back(static_cast<std::uint32_t>(member.second));
    }
    keep.reserve();
    commit(std::move(nodes), std::move(weights));
    keep.commit();
  }

  /// Removes `node`; its keys move to the nodes that follow it, other keys stay put.
  /// @throws std::invalid_argument if `node` is not in the ring ("node"), or the placement can
  /// only remove the last node added (jump) and `node` is not it.
  void remove(const Node& node) {
    const std::size_t i = find(node);
    if (i == npos) detail::throw_invalid_argument("hash_ring", "node", "is not in the ring");
    if constexpr (detail::removes_last_only<Placement>) {
      if (i + 1 != nodes_.size()) {
        detail::throw_invalid_argument(
            "hash_ring", "node", "must be the last node added: this placement (jump) can only remove the last bucket");
      }
    }
    std::vector<const Node*> nodes = nodes_;
    std::vector<std::uint32_t> weights = weights_;
    nodes.erase(nodes.begin() + static_cast<std::ptrdiff_t>(i));
    weights.erase(weights.begin() + static_cast<std::ptrdiff_t>(i));
    commit(std::move(nodes), std::move(weights));
  }

  /// Changes the weight of `node`.
  /// @throws std::invalid_argument as `add` for the weight, or if `node` is not in the ring.
  void set_weight(const Node& node, std::int64_t weight) {
    check_weight(weight);
    const std::size_t i = find(node);
    if (i == npos) detail::throw_invalid_argument("hash_ring", "node", "is not in the ring");
    std::vector<std::uint32_t> weights = weights_;
    weights[i] = static_cast<std::uint32_t>(weight);
    commit(nodes_, std::move(weights));
  }

  /// Removes every node (replica sets taken before stay valid: the ring keeps the nodes).
  void clear() noexcept {
    nodes_.clear();
    weights_.clear();
  }

  /// The index (in iteration order) of the node that owns `key`.
  /// @throws std::logic_error if the ring is empty.
  template <byte_hashable Key>
    requires hasher<Hash, Key>
  [[nodiscard]] auto index_for(const Key& key) const -> std::size_t {
    if (DISTKIT_UNLIKELY(nodes_.empty())) detail::throw_logic_error("hash_ring", "lookup on an empty ring");
    return placement_.lookup(hash_(key));
  }

  /// The node that owns `key`.
  /// @throws std::logic_error if the ring is empty.
  template <byte_hashable Key>
    requires hasher<Hash, Key>
  [[nodiscard]] auto node_for(const Key& key) const -> const Node& {
    return *nodes_[index_for(key)];
  }

  /// The node that owns `key`, or nullptr if the ring is empty.
  template <byte_hashable Key>
    requires hasher<Hash, Key>
  [[nodiscard]] auto try_node_for(const Key& key) const noexcept -> const Node* {
    if (nodes_.empty()) return nullptr;
    return nodes_[placement_.lookup(hash_(key))];
  }

  /// Writes the indices of up to `out.size()` distinct nodes for `key` in the placement's
  /// preference order (ring order for the ring and ketama; `out[0]` is `index_for(key)`), and
  /// returns how many it wrote: `min(out.size(), size())`, or fewer when some nodes own no
  /// point (a ketama server whose share rounds to 0). Allocation-free for up to 32 nodes.
  template <byte_hashable Key>
    requires hasher<Hash, Key>
  auto indices_for(const Key& key, std::span<std::uint32_t> out) const -> std::size_t {
    if (nodes_.empty()) return 0;
    return placement_.lookup_n(hash_(key), out);
  }

  /// Up to `n` distinct nodes for `key` (the replica set), primary first; see `indices_for`.
  /// `n` larger than `size()` gives every node once; `n == 0` gives none. The result refers to
  /// this ring's nodes (valid until the ring changes) and converts to `std::vector<Node>`.
  template <byte_hashable Key>
    requires hasher<Hash, Key>
  [[nodiscard]] auto nodes_for(const Key& key, std::size_t n) const -> replica_set<Node> {
    const std::size_t wanted = std::min(n, nodes_.size());
    replica_set<Node> out(wanted);
    const Node** slots = out.slots();
    std::array<std::uint32_t, replica_set<Node>::inline_capacity> small;  // uninitialised: written before read
    std::vector<std::uint32_t> large;
    std::span<std::uint32_t> indices(small.data(), wanted);
    if (wanted > small.size()) {
      large.resize(wanted);
      indices = large;
    }
    out.size_ = indices_for(key, indices);
    for (std::size_t i = 0; i < out.size_; ++i) slots[i] = nodes_[indices[i]];
    return out;
  }

  [[nodiscard]] auto size() const noexcept -> std::size_t { return nodes_.size(); }
  [[nodiscard]] auto empty() const noexcept -> bool { return nodes_.empty(); }
  [[nodiscard]] auto contains(const Node& node) const noexcept -> bool { return find(node) != npos; }
  /// The node at `index` (iteration order: the order of `add`, minus removed nodes).
  [[nodiscard]] auto node_at(std::size_t index) const -> const Node& { return *nodes_.at(index); }
  /// The weight of `node`. @throws std::invalid_argument if `node` is not in the ring.
  [[nodiscard]] auto weight_of(const Node& node) const -> std::uint32_t {
    const std::size_t i = find(node);
    if (i == npos) detail::throw_invalid_argument("hash_ring", "node", "is not in the ring");
    return weights_[i];
  }
  [[nodiscard]] auto weight_at(std::size_t index) const -> std::uint32_t { return weights_.at(index); }
  [[nodiscard]] auto begin() const noexcept -> const_iterator { return const_iterator(nodes_.data()); }
  [[nodiscard]] auto end() const noexcept -> const_iterator { return const_iterator(nodes_.data() + nodes_.size()); }
  [[nodiscard]] auto placement_policy() const noexcept -> const Placement& { return placement_; }
  [[nodiscard]] auto hash_function() const noexcept -> const Hash& { return hash_; }

 private:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  static void check_weight(std::int64_t weight) {
    if (weight < 1 || weight > static_cast<std::int64_t>(max_weight)) {
      detail::throw_invalid_argument("hash_ring", "weight", "must be in [1, 2^32 - 1]", weight);
    }
  }

  [[nodiscard]] auto find(const Node& node) const noexcept -> std::size_t {
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (*nodes_[i] == node) return i;
    }
    return npos;
  }

  // Builds the new placement before touching any member, so a throw leaves the ring as it was.
  void commit(std::vector<const Node*> nodes, std::vector<std::uint32_t> weights) {
    Placement next = placement_;
    if (!nodes.empty()) {
      std::vector<ring_member> members(nodes.size());
      for (std::size_t i = 0; i < nodes.size(); ++i) members[i] = {detail::key_bytes(*nodes[i]), weights[i]};
      next.build(members);
    }
    placement_ = std::move(next);
    nodes_ = std::move(nodes);
    weights_ = std::move(weights);
  }

  // Every node the ring has held, each allocated once and never moved, so `node_for` references
  // and replica sets stay valid across changes; shared (immutable) between copies of the ring.
  // A node added again after its removal is found here and reused, so this grows only with
  // the number of distinct nodes ever added.
  class kept_nodes {
   public:
    explicit kept_nodes(std::vector<std::shared_ptr<const Node>>& kept) : kept_(kept) {}
    // The kept copy of `node`, creating it (not yet kept) if this ring never held it.
    auto get(const Node& node) -> const Node* {
      for (const auto& p : kept_) {
        if (*p == node) return p.get();
      }
      for (const auto& p : fresh_) {
        if (*p == node) return p.get();
      }
      fresh_.push_back(std::make_shared<const Node>(node));
      return fresh_.back().get();
    }
    void commit() noexcept {
      for (auto& p : fresh_) kept_.push_back(std::move(p));  // capacity reserved: cannot throw
    }
    void reserve() { kept_.reserve(kept_.size() + fresh_.size()); }  // before the ring changes

   private:
    std::vector<std::shared_ptr<const Node>>& kept_;
    std::vector<std::shared_ptr<const Node>> fresh_;
  };

  std::vector<const Node*> nodes_;  // the members, in iteration order
  std::vector<std::uint32_t> weights_;
  std::vector<std::shared_ptr<const Node>> kept_;
  Placement placement_;
  [[no_unique_address]] Hash hash_;
};

/// @brief A ring that places keys on the same servers as libmemcached's weighted ketama
/// (`MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA` + `MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED`):
/// nodes are `"host"` or `"host:port"` strings added in libmemcached's server order.
template <ring_node Node = std::string>
using ketama_ring = hash_ring<Node, ketama_key_hash, ketama_placement>;

/// @brief A hash ring that many threads read while membership changes: every change builds a
/// new immutable `hash_ring` and publishes it atomically, so a lookup sees the ring before or
/// after a change, never a half-built one.
///
/// For the fastest lookups take a `snapshot()` and query it: a held snapshot is a plain
/// `const hash_ring&`, touching no shared counter. `node_for` on this class takes the current
/// snapshot on each call and returns the node by value.
///
/// Publication: the current ring is a `std::shared_ptr<const hash_ring>` guarded by a mutex that
/// is held only to copy or swap that pointer (a few nanoseconds); the new ring is built outside
/// it, and an old ring is freed outside it by whoever drops the last reference. (libstdc++ 12's
/// `std::atomic<std::shared_ptr>` would avoid the lock, but ThreadSanitizer reports races inside
/// it, so the TSan leg could not vouch for it.)
///
/// **Thread safety:** every member function may be called concurrently; writers serialize on
/// their own mutex and never make a reader wait for a rebuild.
/// **Complexity:** each change copies the membership and rebuilds the placement, O(P log P).
///
/// @code
/// distkit::concurrent_hash_ring<std::string> shards;
/// shards.add("db-1");
/// auto ring = shards.snapshot();            // std::shared_ptr<const hash_ring<std::string>>
/// const std::string& db = ring->node_for("order:7");
/// @endcode
template <ring_node Node, class Hash = xxh3_hash, placement Placement = ring_placement>
class concurrent_hash_ring {
 public:
  using ring_type = hash_ring<Node, Hash, Placement>;

  explicit concurrent_hash_ring(Placement policy = Placement{}, Hash hash = Hash{})
      : current_(std::make_shared<const ring_type>(std::move(policy), std::move(hash))) {}

  /// The current ring; it stays valid and unchanged for as long as it is held.
  [[nodiscard]] auto snapshot() const -> std::shared_ptr<const ring_type> {
    const std::lock_guard<std::mutex> lock(publish_mutex_);
    return current_;
  }

  /// The node that owns `key` in the current ring. @throws std::logic_error if it is empty.
  template <byte_hashable Key>
    requires hasher<Hash, Key>
  [[nodiscard]] auto node_for(const Key& key) const -> Node {
    return snapshot()->node_for(key);
  }
  template <byte_hashable Key>
    requires hasher<Hash, Key>
  [[nodiscard]] auto nodes_for(const Key& key, std::size_t n) const -> std::vector<Node> {
    return snapshot()->nodes_for(key, n);
  }
  [[nodiscard]] auto size() const -> std::size_t { return snapshot()->size(); }

  /// As `hash_ring::add`, published atomically. @throws as `hash_ring::add`.
  void add(const Node& node, std::int64_t weight = 1) {
    update([&](ring_type& r) { r.add(node, weight); });
  }
  /// As `hash_ring::remove`, published atomically. @throws as `hash_ring::remove`.
  void remove(const Node& node) {
    update([&](ring_type& r) { r.remove(node); });
  }
  /// As `hash_ring::set_weight`, published atomically. @throws as `hash_ring::set_weight`.
  void set_weight(const Node& node, std::int64_t weight) {
    update([&](ring_type& r) { r.set_weight(node, weight); });
  }
  /// Applies several changes to a copy and publishes them as one new ring (all or nothing).
  template <class Change>
  void update(Change&& change) {
    const std::lock_guard<std::mutex> write_lock(write_mutex_);
    auto next = std::make_shared<ring_type>(*snapshot());
    std::forward<Change>(change)(*next);
    std::shared_ptr<const ring_type> previous(std::move(next));
    {
      const std::lock_guard<std::mutex> lock(publish_mutex_);
      current_.swap(previous);
    }
    // `previous` (the old ring) is released here, outside the publication lock.
  }

 private:
  mutable std::mutex publish_mutex_;  // guards current_: held only to copy or swap the pointer
  std::shared_ptr<const ring_type> current_;
  std::mutex write_mutex_;  // serializes writers
};

/// @brief Consistent hashing with bounded loads (Mirrokni, Thorup & Zadimoghaddam, 2018; the
/// scheme HAProxy and Vimeo use): each assignment goes to the first node in the key's
/// preference order whose load is below its cap, `ceil((1 + epsilon) · (assigned + 1) · w / W)`
/// for a node of weight w out of total weight W.
///
/// Guarantee: no node ever carries more than `ceil((1 + epsilon) · m · w / W)` of the m
/// assignments held when it received its last one; with equal weights, no node above
/// `ceil((1 + epsilon) · mean)`. Keys keep their node as long as it has room, so movement stays
/// close to the underlying placement's (the paper bounds the extra moves by O(1/epsilon^2)).
/// The price: a key's node depends on the loads, so two clients agree only if they share the
/// load counts, and `acquire` walks past full nodes.
///
/// **Thread safety:** none; guard it externally (loads are shared mutable state).
/// **Complexity:** `acquire` is a lookup, plus a walk of the preference order past full nodes.
///
/// @code
/// distkit::bounded_load_ring<std::string> lb{0.25};
/// lb.add("backend-1"); lb.add("backend-2");
/// std::size_t b = lb.acquire("session:9");  // index of the backend that takes it
/// lb.release(b);                            // when the session ends
/// @endcode
template <ring_node Node, class Hash = xxh3_hash, placement Placement = ring_placement>
class bounded_load_ring {
 public:
  using ring_type = hash_ring<Node, Hash, Placement>;

  /// @throws std::invalid_argument if `epsilon` is not in (0, 100] ("epsilon").
  explicit bounded_load_ring(double epsilon = 0.25, Placement policy = Placement{}, Hash hash = Hash{})
      : epsilon_(epsilon), ring_(std::move(policy), std::move(hash)) {
    if (!(epsilon > 0.0 && epsilon <= 100.0)) {
      detail::throw_invalid_argument("bounded_load_ring", "epsilon", "must be in (0, 100]", epsilon);
    }
  }

  /// Adds a node with no load. @throws as `hash_ring::add`.
  void add(const Node& node, std::int64_t weight = 1) {
    ring_.add(node, weight);
    loads_.push_back(0);
    total_weight_ += static_cast<std::uint64_t>(weight);
  }
  /// Removes a node; the assignments it held are dropped from the total (re-`acquire` those
  /// keys). @throws as `hash_ring::remove`.
  void remove(const Node& node) {
    std::size_t i = 0;
    while (i < ring_.size() && !(ring_.node_at(i) == node)) ++i;
    const std::uint32_t w = i < ring_.size() ? ring_.weight_at(i) : 0;
    ring_.remove(node);  // throws for an unknown node, before anything changed
    total_weight_ -= w;
    total_ -= loads_[i];
    loads_.erase(loads_.begin() + static_cast<std::ptrdiff_t>(i));
  }

  /// Assigns `key` to a node with room and counts it there; returns the node's index.
  /// @throws std::logic_error if the ring is empty.
  template <byte_hashable Key>
    requires hasher<Hash, Key>
  auto acquire(const Key& key) -> std::size_t {
    const std::size_t i = peek(key);
    ++loads_[i];
    ++total_;
    return i;
  }

  /// The node `acquire(key)` would choose now, without counting it.
  /// @throws std::logic_error if the ring is empty.
  template <byte_hashable Key>
    requires hasher<Hash, Key>
  [[nodiscard]] auto peek(const Key& key) const -> std::size_t {
    const std::size_t first = ring_.index_for(key);
    if (loads_[first] < capacity(first)) return first;
    // Widen the preference list geometrically; nodes the placement never reaches (a ketama
    // server with no points) come last, so some node with room is always found.
    std::vector<std::uint32_t> order;
    for (std::size_t want = 4;; want *= 2) {
      order.assign(std::min(want, ring_.size()), 0);
      order.resize(ring_.indices_for(key, order));
      for (const std::uint32_t i : order) {
        if (loads_[i] < capacity(i)) return i;
      }
      if (want >= ring_.size()) break;
    }
    for (std::size_t i = 0; i < ring_.size(); ++i) {
      if (loads_[i] < capacity(i)) return i;
    }
    return first;  // unreachable: the caps sum to more than the current total
  }

  /// Ends one assignment on node `index`. @throws std::invalid_argument if it has none.
  void release(std::size_t index) {
    if (index >= loads_.size() || loads_[index] == 0) {
      detail::throw_invalid_argument("bounded_load_ring", "index", "must name a node with a load", index);
    }
    --loads_[index];
    --total_;
  }

  /// The cap for node `index` when the next assignment arrives.
  [[nodiscard]] auto capacity(std::size_t index) const -> std::uint64_t {
    const double share = static_cast<double>(ring_.weight_at(index)) / static_cast<double>(total_weight_);
    return static_cast<std::uint64_t>(std::ceil((1.0 + epsilon_) * static_cast<double>(total_ + 1) * share));
  }
  [[nodiscard]] auto load(std::size_t index) const -> std::uint64_t { return loads_.at(index); }
  [[nodiscard]] auto total_load() const noexcept -> std::uint64_t { return total_; }
  [[nodiscard]] auto epsilon() const noexcept -> double { return epsilon_; }
  [[nodiscard]] auto ring() const noexcept -> const ring_type& { return ring_; }

 private:
  double epsilon_;
  ring_type ring_;
  std::vector<std::uint64_t> loads_;
  std::uint64_t total_ = 0;
  std::uint64_t total_weight_ = 0;
};

}  // namespace distkit::inline v0
