// SPDX-License-Identifier: MIT
// distkit/detail/ring_points.hpp: a sorted ring of hash points with a radix index for lookups.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "distkit/detail/mix.hpp"

namespace distkit::inline v0::detail {

/// Writes `owner` into `out[count]` unless it is already among `out[0..count)`; returns the new
/// count. Replica sets are small, so a linear check beats any set.
inline auto push_distinct(std::span<std::uint32_t> out, std::size_t count, std::uint32_t owner) noexcept
    -> std::size_t {
  // Branch-free: whether `owner` repeats is data-dependent and mispredicts half the time, so the
  // owner is always written to `out[count]` (count < out.size() by the caller's contract) and
  // the count advances only when it is new.
  bool seen = false;
  for (std::size_t i = 0; i < count; ++i) seen |= out[i] == owner;
  out[count] = owner;
  return count + static_cast<std::size_t>(!seen);
}

/// Collects distinct owners in visiting order. Up to 32 wanted owners it checks the ones already
/// taken linearly; beyond that it keeps a bitmap over the owner indices (one allocation).
class distinct_collector {
 public:
  distinct_collector(std::span<std::uint32_t> out, std::size_t owner_count)
      : out_(out), wanted_(std::min(out.size(), owner_count)) {
    if (wanted_ > 32) seen_.assign((owner_count + 63) / 64, 0);
  }
  /// Offers one owner; returns true once `wanted` distinct owners are collected.
  auto offer(std::uint32_t owner) -> bool {
    if (seen_.empty()) {
      count_ = push_distinct(out_, count_, owner);
    } else {
      std::uint64_t& word = seen_[owner / 64];
      const std::uint64_t bit = std::uint64_t{1} << (owner % 64);
      if ((word & bit) == 0) {
        word |= bit;
        out_[count_++] = owner;
      }
    }
    return count_ >= wanted_;
  }
  [[nodiscard]] auto done() const noexcept -> bool { return count_ >= wanted_; }
  [[nodiscard]] auto count() const noexcept -> std::size_t { return count_; }

 private:
  std::span<std::uint32_t> out_;
  std::size_t wanted_;
  std::size_t count_ = 0;
  std::vector<std::uint64_t> seen_;
};

/// Points on a ring of `Point` values (std::uint32_t or std::uint64_t), each owned by a member
/// index, kept as two parallel sorted arrays (the search touches only the point array).
///
/// The search: the points are hash values, so they are spread uniformly over the ring. A radix
/// index over the top `bits_` bits (about one bucket per two to four points) gives the range of
/// the array that can hold the answer; a short linear scan of that range finishes the search.
/// Expected cost: two dependent loads and about two comparisons, whatever the number of points,
/// instead of the log2(points) unpredictable branches of a binary search.
template <class Point>
class ring_points {
  static_assert(std::is_same_v<Point, std::uint32_t> || std::is_same_v<Point, std::uint64_t>);

 public:
  /// Takes (point, owner) pairs in any order; sorts them by point, ties by owner index.
  void assign(std::vector<std::pair<Point, std::uint32_t>> pairs) {
    std::sort(pairs.begin(), pairs.end());
    points_.resize(pairs.size());
    owners_.resize(pairs.size());
    for (std::size_t i = 0; i < pairs.size(); ++i) {
      points_[i] = pairs[i].first;
      owners_[i] = pairs[i].second;
    }
    const auto width = static_cast<unsigned>(std::bit_width(pairs.size()));
    bits_ = std::clamp(width > 2 ? width - 2 : 1U, 1U, 24U);
    shift_ = static_cast<unsigned>(std::numeric_limits<Point>::digits) - bits_;
    const std::size_t buckets = std::size_t{1} << bits_;
    bucket_.assign(buckets + 1, 0);
    std::size_t i = 0;
    for (std::size_t b = 0; b < buckets; ++b) {
      bucket_[b] = static_cast<std::uint32_t>(i);
      while (i < points_.size() && (points_[i] >> shift_) == b) ++i;
    }
    bucket_[buckets] = static_cast<std::uint32_t>(points_.size());
  }

  [[nodiscard]] auto size() const noexcept -> std::size_t { return points_.size(); }
  [[nodiscard]] auto point(std::size_t i) const noexcept -> Point { return points_[i]; }
  [[nodiscard]] auto owner(std::size_t i) const noexcept -> std::uint32_t { return owners_[i]; }

  /// The position of the first point >= `h`, wrapping to 0 past the last point.
  /// Precondition: at least one point.
  [[nodiscard]] auto position(Point h) const noexcept -> std::size_t {
    const std::size_t b = static_cast<std::size_t>(h >> shift_);
    std::size_t i = bucket_[b];
    const std::size_t end = bucket_[b + 1];
    while (i < end && points_[i] < h) ++i;
    return i == points_.size() ? 0 : i;
  }

  /// The owner of the first point >= `h` (wrapping).
  [[nodiscard]] auto owner_at(Point h) const noexcept -> std::uint32_t { return owners_[position(h)]; }

  /// Distinct owners met walking the ring clockwise from `h`, at most `out.size()` of them.
  auto walk(Point h, std::span<std::uint32_t> out, std::size_t owner_count) const -> std::size_t {
    if (out.empty() || points_.empty()) return 0;
    std::size_t i = position(h);
    // Fast path for small replica sets: most rings give n distinct owners in about n points.
    distinct_collector collect(out, owner_count);
    for (std::size_t step = 0; step < points_.size(); ++step) {
      if (collect.offer(owners_[i])) break;
      if (++i == points_.size()) i = 0;
    }
    return collect.count();
  }

 private:
  std::vector<Point> points_;
  std::vector<std::uint32_t> owners_;
  std::vector<std::uint32_t> bucket_{0, 0, 0};
  unsigned bits_ = 1;
  unsigned shift_ = std::numeric_limits<Point>::digits - 1;
};

/// Maps a 64-bit hash uniformly onto [0, range) with one multiplication (Lemire's reduction).
[[nodiscard]] inline auto reduce_range(std::uint64_t h, std::uint64_t range) noexcept -> std::uint64_t {
  __extension__ using uint128 = unsigned __int128;  // GCC and Clang; __extension__ silences -Wpedantic
  return static_cast<std::uint64_t>((static_cast<uint128>(h) * range) >> 64);
}

}  // namespace distkit::inline v0::detail
