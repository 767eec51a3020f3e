// SPDX-License-Identifier: MIT
// distkit/metrics.hpp: counters, gauges and log-linear histograms that stay cheap on hot paths,
// grouped in labelled families and written in the Prometheus text format 0.0.4 or OpenMetrics.
//
// How the hot path stays cheap:
//   * every thread that records claims one of a fixed number of shard slots (at most 64) the
//     first time it records anything, and keeps it until it exits. A slot is owned by one thread
//     at a time, so a counter's shard for that slot is updated with a plain load and store (no
//     locked instruction, no contention); a scrape sums the shards. A thread that finds every
//     slot taken records into one shared cell with an atomic add (correct, only slower).
//   * a slot released by an exiting thread is handed to the next thread with release/acquire
//     ordering, so its count carries on: nothing is lost when threads come and go.
//   * histograms keep one bucket array per slot that recorded, allocated on that slot's first
//     record, in HdrHistogram's log-linear layout: values below 128 exactly, then 64 buckets per
//     power of two, so a bucket's midpoint is within 1/128 (0.79%) of every value in it.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "distkit/detail/error.hpp"

namespace distkit::inline v0 {

namespace detail {

// The most shard slots any metric has (one bit each in the ownership word).
inline constexpr std::size_t metric_max_slots = 64;
// A thread that has not asked for a slot yet, and one that found none (it uses the shared cell).
inline constexpr int metric_slot_unassigned = -2;
inline constexpr int metric_slot_none = -1;

// The number of shard slots: twice the hardware threads rounded up to a power of two, between 4
// and 64. Computed once; every metric has this many shards.
inline auto metric_slot_count() noexcept -> std::size_t {
  static const std::size_t count = [] {
    const std::size_t hw = std::max<std::size_t>(1, std::thread::hardware_concurrency());
    return std::clamp<std::size_t>(std::bit_ceil(2 * hw), 4, metric_max_slots);
  }();
  return count;
}

// Bit i set: slot i is owned by a live thread.
inline constinit std::atomic<std::uint64_t> metric_slots_owned{0};
// This thread's slot (trivially destructible, so reading it is one TLS load).
inline constinit thread_local int metric_slot = metric_slot_unassigned;

// Gives the slot back when its thread exits; later records from this thread's remaining
// thread-local destructors go to the shared cells.
struct metric_slot_owner {
  int index = metric_slot_none;
  metric_slot_owner() = default;
  metric_slot_owner(const metric_slot_owner&) = delete;
  auto operator=(const metric_slot_owner&) -> metric_slot_owner& = delete;
  ~metric_slot_owner() {
    if (index >= 0) {
      metric_slot = metric_slot_none;
      metric_slots_owned.fetch_and(~(std::uint64_t{1} << static_cast<unsigned>(index)), std::memory_order_release);
    }
  }
};

DISTKIT_COLD inline auto claim_metric_slot() noexcept -> int {
  thread_local metric_slot_owner owner;
  const std::size_t count = metric_slot_count();
  const std::uint64_t usable = count >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << count) - 1;
  std::uint64_t owned = metric_slots_owned.load(std::memory_order_acquire);
  for (;;) {
    const std::uint64_t free = ~owned & usable;
    if (free == 0) {
      metric_slot = metric_slot_none;
      return metric_slot_none;
    }
    const int index = std::countr_zero(free);
    // Acquire: the previous owner's stores to this slot's shards happen before ours.
    if (metric_slots_owned.compare_exchange_weak(owned, owned | (std::uint64_t{1} << static_cast<unsigned>(index)),
                                                 std::memory_order_acq_rel, std::memory_order_acquire)) {
      owner.index = index;
      metric_slot = index;
      return index;
    }
  }
}

// This thread's shard slot, claimed on first use; metric_slot_none when all are taken.
DISTKIT_ALWAYS_INLINE inline auto metric_slot_index() noexcept -> int {
  const int index = metric_slot;
  if (DISTKIT_LIKELY(index != metric_slot_unassigned)) return index;
  return claim_metric_slot();
}

// Only the owning thread writes a slot's cell: a relaxed load and store, no locked instruction.
template <class T>
DISTKIT_ALWAYS_INLINE inline void owner_add(std::atomic<T>& cell, T n) noexcept {
  cell.store(cell.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

struct alignas(64) metric_cell_u64 {
  std::atomic<std::uint64_t> value{0};
};
struct alignas(64) metric_cell_f64 {
  std::atomic<double> value{0.0};
};

inline auto is_name_start(char c) noexcept -> bool {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
inline auto is_name_char(char c) noexcept -> bool { return is_name_start(c) || (c >= '0' && c <= '9'); }
inline auto is_valid_name(std::string_view s) noexcept -> bool {
  return !s.empty() && is_name_start(s.front()) && std::all_of(s.begin() + 1, s.end(), is_name_char);
}

inline auto is_valid_utf8(std::string_view s) noexcept -> bool {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t extra = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      i += 1;
      continue;
    } else if ((c & 0xE0U) == 0xC0U) {
      extra = 1;
      cp = c & 0x1FU;
    } else if ((c & 0xF0U) == 0xE0U) {
      extra = 2;
      cp = c & 0x0FU;
    } else if ((c & 0xF8U) == 0xF0U) {
      extra = 3;
      cp = c & 0x07U;
    } else {
      return false;
    }
    if (i + extra >= s.size()) return false;
    for (std::size_t k = 1; k <= extra; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0U) != 0x80U) return false;
      cp = (cp << 6) | (d & 0x3FU);
    }
    static constexpr std::array<std::uint32_t, 4> smallest{0, 0x80, 0x800, 0x10000};
    if (cp < smallest[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += extra + 1;
  }
  return true;
}

inline auto ends_with(std::string_view s, std::string_view suffix) noexcept -> bool {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Shortest text that reads back as the same double; +Inf, -Inf and NaN as the formats spell them.
inline void append_double(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    std::array<char, 32> buf{};
    const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), v);
    out.append(buf.data(), r.ptr);
  }
}

inline void append_u64(std::string& out, std::uint64_t v) {
  std::array<char, 24> buf{};
  const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  out.append(buf.data(), r.ptr);
}

inline void append_label_value(std::string& out, std::string_view v) {
  for (const char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

}  // namespace detail

/// @brief One label of an exemplar: a trace or request id, say, naming the sample behind a count.
struct exemplar_label {
  std::string_view name;
  std::string_view value;
};

/// @brief An exemplar as it is exposed: its label set rendered (`{trace_id="ab12"}`), its value
/// in exposed units (a histogram's seconds, a counter's increment) and its Unix time in seconds,
/// if one was given.
struct exemplar_sample {
  std::string labels;
  double value = 0.0;
  std::optional<double> timestamp;
};

namespace detail {

inline auto is_exemplar_label_name(std::string_view s) noexcept -> bool {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

// Renders and checks an exemplar's label set: names as Prometheus label names, values valid
// UTF-8, and at most 128 code points of names and values together (OpenMetrics 1.0).
inline auto render_exemplar(std::initializer_list<exemplar_label> labels) -> std::string {
  std::size_t code_points = 0;
  std::string out = "{";
  for (const exemplar_label& l : labels) {
    if (!is_exemplar_label_name(l.name)) {
      throw_invalid_argument("exemplar", "labels", "names must match [a-zA-Z_][a-zA-Z0-9_]*, got " + std::string(l.name));
    }
    if (!is_valid_utf8(l.value)) throw_invalid_argument("exemplar", "labels", "values must be valid UTF-8");
    for (const std::string_view part : {l.name, l.value}) {
      for (const char c : part) code_points += (static_cast<unsigned char>(c) & 0xC0U) != 0x80U ? 1 : 0;
    }
    if (out.size() > 1) out += ',';
    out += l.name;
    out += "=\"";
    append_label_value(out, l.value);
    out += '"';
  }
  if (code_points > 128) {
    throw_invalid_argument("exemplar", "labels", "names and values must total at most 128 code points", code_points);
  }
  out += '}';
  return out;
}

// ` # {labels} value [timestamp]`, the tail OpenMetrics puts on a sample line.
inline void append_exemplar(std::string& out, const exemplar_sample& e) {
  out += " # ";
  out += e.labels;
  out += ' ';
  append_double(out, e.value);
  if (e.timestamp) {
    out += ' ';
    append_double(out, *e.timestamp);
  }
}

}  // namespace detail

/// @brief Which text format a registry writes.
enum class exposition_format : std::uint8_t {
  prometheus,   ///< Prometheus text format 0.0.4 (`text/plain; version=0.0.4`)
  openmetrics,  ///< OpenMetrics 1.0 text (`application/openmetrics-text; version=1.0.0`), ends in `# EOF`
};

/// @brief A monotonically increasing count, sharded per thread and summed when read.
///
/// `inc` is a thread-local load and store (no locked instruction) for the first
/// `detail::metric_slot_count()` threads that record at once; further threads share one
/// atomic cell. Memory: one 64-byte cell per slot (4 to 64 slots: twice the hardware threads).
/// **Thread safety:** every member may be called concurrently; `value()` is a sum of relaxed
/// reads, so it sees every increment that happened before it and possibly some concurrent ones.
class counter {
 public:
  counter() : cells_(std::make_unique<detail::metric_cell_u64[]>(detail::metric_slot_count())) {}
  counter(const counter&) = delete;
  auto operator=(const counter&) -> counter& = delete;

  /// Adds `n` (default 1).
  DISTKIT_ALWAYS_INLINE void inc(std::uint64_t n = 1) noexcept {
    const int slot = detail::metric_slot_index();
    if (DISTKIT_LIKELY(slot >= 0)) {
      detail::owner_add(cells_[static_cast<std::size_t>(slot)].value, n);
    } else {
      shared_.value.fetch_add(n, std::memory_order_relaxed);
    }
  }

  /// Adds `n` and keeps `exemplar` (with `n` as its value) as the counter's exemplar, replacing
  /// the previous one. OpenMetrics output shows it on the `_total` line; the 0.0.4 text format
  /// has no exemplars. Takes a lock and allocates: for sampled requests, not every increment.
  /// `unix_seconds` is the exemplar's time (none: the scraper uses the scrape's).
  /// @throws std::invalid_argument naming `labels` for a bad label name, invalid UTF-8 or more
  ///         than 128 code points of names and values (OpenMetrics' limit); nothing is added.
  void inc(std::uint64_t n, std::initializer_list<exemplar_label> exemplar,
           std::optional<double> unix_seconds = std::nullopt) {
    exemplar_sample e{detail::render_exemplar(exemplar), static_cast<double>(n), unix_seconds};
    inc(n);
    const std::lock_guard lock(exemplar_mutex_);
    exemplar_ = std::move(e);
  }

  /// The sum of every shard.
  [[nodiscard]] auto value() const noexcept -> std::uint64_t {
    std::uint64_t sum = shared_.value.load(std::memory_order_relaxed);
    for (std::size_t i = 0, n = detail::metric_slot_count(); i < n; ++i) {
      sum += cells_[i].value.load(std::memory_order_relaxed);
    }
    return sum;
  }

  /// The latest exemplar, if any.
  [[nodiscard]] auto exemplar() const -> std::optional<exemplar_sample> {
    const std::lock_guard lock(exemplar_mutex_);
    return exemplar_;
  }

 private:
  std::unique_ptr<detail::metric_cell_u64[]> cells_;
  detail::metric_cell_u64 shared_;
  mutable std::mutex exemplar_mutex_;
  std::optional<exemplar_sample> exemplar_;
};

/// @brief A value that goes up and down: a base set by `set` plus per-thread deltas from
/// `add`/`sub`, summed when read.
///
/// `add` and `sub` cost what `counter::inc` costs. `set(v)` makes the value `v` as of that
/// moment (a concurrent `add` counts either before or after it). Values are doubles: integers up
/// to 2^53 are exact.
/// **Thread safety:** every member may be called concurrently.
class gauge {
 public:
  gauge() : cells_(std::make_unique<detail::metric_cell_f64[]>(detail::metric_slot_count())) {}
  gauge(const gauge&) = delete;
  auto operator=(const gauge&) -> gauge& = delete;

  DISTKIT_ALWAYS_INLINE void add(double v) noexcept {
    const int slot = detail::metric_slot_index();
    if (DISTKIT_LIKELY(slot >= 0)) {
      detail::owner_add(cells_[static_cast<std::size_t>(slot)].value, v);
    } else {
      shared_.value.fetch_add(v, std::memory_order_relaxed);
    }
  }
  DISTKIT_ALWAYS_INLINE void sub(double v) noexcept { add(-v); }
  DISTKIT_ALWAYS_INLINE void inc() noexcept { add(1.0); }
  DISTKIT_ALWAYS_INLINE void dec() noexcept { add(-1.0); }

  /// Sets the value (cold compared with `add`: it reads every shard).
  void set(double v) noexcept {
    std::lock_guard lock(set_mutex_);  // two concurrent sets would otherwise both subtract the shards
    base_.store(v - shard_sum(), std::memory_order_relaxed);
  }

  [[nodiscard]] auto value() const noexcept -> double { return base_.load(std::memory_order_relaxed) + shard_sum(); }

 private:
  [[nodiscard]] auto shard_sum() const noexcept -> double {
    double sum = shared_.value.load(std::memory_order_relaxed);
    for (std::size_t i = 0, n = detail::metric_slot_count(); i < n; ++i) {
      sum += cells_[i].value.load(std::memory_order_relaxed);
    }
    return sum;
  }

  std::unique_ptr<detail::metric_cell_f64[]> cells_;
  detail::metric_cell_f64 shared_;
  std::atomic<double> base_{0.0};
  std::mutex set_mutex_;
};

/// @brief How a histogram records and how it is exposed.
struct histogram_options {
  /// The largest value told apart; a larger value is counted as this one (its `_sum` stays
  /// exact). The bucket array per recording thread is 8 bytes x (64 x (log2(max_value) - 5)):
  /// 16 KiB for the default 2^36 - 1 (68.7 s in nanoseconds).
  std::uint64_t max_value = (std::uint64_t{1} << 36) - 1;
  /// Recorded units per exposed unit: 1e9 to record nanoseconds into a `_seconds` metric.
  double units_per_exposed = 1.0;
  /// The exposed `le` bounds, in exposed units, strictly increasing. Each is moved to the
  /// nearest top of an internal bucket (by at most 1/128 of it, 0.79%) and written as moved, so
  /// every exposed count is exact. The default is Prometheus's (5 ms to 10 s for seconds).
  std::vector<double> buckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
};

/// @brief The log-linear bucket layout shared by histograms and their snapshots.
///
/// Values 0-127 have a bucket each; above, each power of two [2^e, 2^(e+1)) is split into 64
/// equal buckets. A bucket's midpoint (`bucket_value`) is within 1/128 of every value in it.
struct log_linear_layout {
  static constexpr unsigned sub_bucket_bits = 6;
  static constexpr std::uint64_t exact_below = std::uint64_t{2} << sub_bucket_bits;  // 128
  /// The bound on |bucket_value(bucket_of(v)) - v| / v.
  static constexpr double relative_error = 1.0 / static_cast<double>(exact_below);

  [[nodiscard]] static constexpr auto bucket_of(std::uint64_t v) noexcept -> std::size_t {
    if (v < exact_below) return static_cast<std::size_t>(v);
    const unsigned shift = static_cast<unsigned>(std::bit_width(v)) - 1 - sub_bucket_bits;
#if defined(DISTKIT_METRICS_MUTATION_WRONG_BUCKET)
    // Test-only mutation: the index is off by one bucket above the exact range.
    return static_cast<std::size_t>((std::uint64_t{shift} << sub_bucket_bits) + (v >> shift)) + 1;
#else
    return static_cast<std::size_t>((std::uint64_t{shift} << sub_bucket_bits) + (v >> shift));
#endif
  }
  /// The smallest value of bucket `i`.
  [[nodiscard]] static constexpr auto bucket_lower(std::size_t i) noexcept -> std::uint64_t {
    if (i < exact_below) return i;
    const unsigned shift = static_cast<unsigned>(i >> sub_bucket_bits) - 1;
    return ((std::uint64_t{i} & ((std::uint64_t{1} << sub_bucket_bits) - 1)) | (std::uint64_t{1} << sub_bucket_bits))
           << shift;
  }
  /// The largest value of bucket `i`.
  [[nodiscard]] static constexpr auto bucket_upper(std::size_t i) noexcept -> std::uint64_t {
    if (i < exact_below) return i;
    const unsigned shift = static_cast<unsigned>(i >> sub_bucket_bits) - 1;
    return bucket_lower(i) + ((std::uint64_t{1} << shift) - 1);
  }
  /// The value reported for bucket `i`: its midpoint.
  [[nodiscard]] static constexpr auto bucket_value(std::size_t i) noexcept -> std::uint64_t {
    if (i < exact_below) return i;
    const unsigned shift = static_cast<unsigned>(i >> sub_bucket_bits) - 1;
    return bucket_lower(i) + (std::uint64_t{1} << (shift - 1));
  }
};

/// @brief The counts of a histogram at one moment; mergeable, and answers quantiles.
struct histogram_snapshot {
  std::vector<std::uint64_t> buckets;  ///< count per log-linear bucket
  std::uint64_t count = 0;             ///< values recorded
  std::uint64_t sum = 0;               ///< their sum (wraps past 2^64)

  /// Adds `other`'s counts (any max_value: the layout is the same).
  void merge(const histogram_snapshot& other) {
    if (other.buckets.size() > buckets.size()) buckets.resize(other.buckets.size(), 0);
    for (std::size_t i = 0; i < other.buckets.size(); ++i) buckets[i] += other.buckets[i];
    count += other.count;
    sum += other.sum;
  }

  /// The value of rank ceil(q * count) (at least 1) in sorted order, within
  /// `log_linear_layout::relative_error` of it (values above max_value count as max_value).
  /// 0 when empty.
  /// @throws std::invalid_argument naming `q` if it is not in [0, 1].
  [[nodiscard]] auto quantile(double q) const -> std::uint64_t {
    if (!(q >= 0.0 && q <= 1.0)) detail::throw_invalid_argument("histogram_snapshot", "q", "must be in [0, 1]", q);
    if (count == 0) return 0;
    auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count)));
    rank = std::clamp<std::uint64_t>(rank, 1, count);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets.size(); ++i) {
      seen += buckets[i];
      if (seen >= rank) return log_linear_layout::bucket_value(i);
    }
    return log_linear_layout::bucket_value(buckets.empty() ? 0 : buckets.size() - 1);
  }

  /// The number of recorded values <= the top of the bucket holding `v` (exact when `v` is a
  /// bucket's `bucket_upper`).
  [[nodiscard]] auto count_at_most(std::uint64_t v) const noexcept -> std::uint64_t {
    const std::size_t last = log_linear_layout::bucket_of(v);
    std::uint64_t n = 0;
    for (std::size_t i = 0; i <= last && i < buckets.size(); ++i) n += buckets[i];
    return n;
  }
};

/// @brief A distribution of unsigned integer values (nanoseconds, bytes...) in log-linear
/// buckets: quantiles within 1/128 (0.79%) relative error, mergeable snapshots, exposed as a
/// Prometheus histogram with configurable `le` bounds.
///
/// `observe` is a bucket index (a count-leading-zeros and a shift) and two thread-local load +
/// store pairs; the first record of a thread allocates its bucket array (if that fails, it
/// records into the shared array with atomic adds).
/// **Thread safety:** every member may be called concurrently.
class histogram {
 public:
  /// @throws std::invalid_argument naming `max_value`, `units_per_exposed` or `buckets`.
  explicit histogram(const histogram_options& options = {})
      : max_(options.max_value),
        size_((validate(options), log_linear_layout::bucket_of(options.max_value) + 1)),
        units_(options.units_per_exposed),
        shards_(std::make_unique<std::atomic<std::atomic<std::uint64_t>*>[]>(detail::metric_slot_count())),
        shared_(std::make_unique<std::atomic<std::uint64_t>[]>(size_ + 1)) {
    for (const double bound : options.buckets) {
      const double raw = std::floor(bound * units_);
      const std::uint64_t v = raw >= static_cast<double>(max_) ? max_ : static_cast<std::uint64_t>(std::max(raw, 0.0));
      // The nearest bucket top: the top of v's bucket, or the one just below the bucket.
      const std::size_t b = log_linear_layout::bucket_of(v);
      std::uint64_t top = log_linear_layout::bucket_upper(b);
      const std::uint64_t below = log_linear_layout::bucket_lower(b);
      if (below > 0 && v - (below - 1) < top - v) top = below - 1;
      if (bounds_.empty() || bounds_.back() < top) bounds_.push_back(top);
    }
  }
  histogram(const histogram&) = delete;
  auto operator=(const histogram&) -> histogram& = delete;
  ~histogram() {
    for (std::size_t i = 0, n = detail::metric_slot_count(); i < n; ++i) {
      delete[] shards_[i].load(std::memory_order_acquire);
    }
  }

  /// Records `v` (a value above max_value counts as max_value in the buckets).
  DISTKIT_ALWAYS_INLINE void observe(std::uint64_t v) noexcept {
    const std::size_t b = log_linear_layout::bucket_of(std::min(v, max_));
    const int slot = detail::metric_slot_index();
    if (DISTKIT_LIKELY(slot >= 0)) {
      std::atomic<std::uint64_t>* shard = shards_[static_cast<std::size_t>(slot)].load(std::memory_order_relaxed);
      if (DISTKIT_UNLIKELY(shard == nullptr)) shard = make_shard(static_cast<std::size_t>(slot));
      if (DISTKIT_LIKELY(shard != nullptr)) {
        detail::owner_add(shard[b], std::uint64_t{1});
        detail::owner_add(shard[size_], v);
        return;
      }
    }
    shared_[b].fetch_add(1, std::memory_order_relaxed);
    shared_[size_].fetch_add(v, std::memory_order_relaxed);
  }

  /// Records a duration in nanoseconds (negative counts as 0).
  template <class Rep, class Period>
  void observe(std::chrono::duration<Rep, Period> d) noexcept {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
    observe(ns < 0 ? std::uint64_t{0} : static_cast<std::uint64_t>(ns));
  }

  /// Records `v` and keeps `exemplar` as the exemplar of the exposed bucket `v` falls in (the
  /// first `le` at or above it, else `+Inf`), replacing that bucket's previous one. OpenMetrics
  /// output shows it on the bucket's line; the 0.0.4 text format has no exemplars. Takes a lock
  /// and allocates: for sampled requests (a trace id on a slow one), not every record.
  /// `unix_seconds` is the exemplar's time (none: the scraper uses the scrape's).
  /// @throws std::invalid_argument naming `labels` for a bad label name, invalid UTF-8 or more
  ///         than 128 code points of names and values (OpenMetrics' limit); nothing is recorded.
  void observe(std::uint64_t v, std::initializer_list<exemplar_label> exemplar,
               std::optional<double> unix_seconds = std::nullopt) {
    exemplar_sample e{detail::render_exemplar(exemplar), static_cast<double>(v) / units_, unix_seconds};
    observe(v);
    const std::uint64_t clamped = std::min(v, max_);
    const auto at = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), clamped) - bounds_.begin());
    const std::lock_guard lock(exemplar_mutex_);
    if (exemplars_.empty()) exemplars_.resize(bounds_.size() + 1);
    exemplars_[at] = std::move(e);
  }

  /// As above, for a duration in nanoseconds (negative counts as 0).
  template <class Rep, class Period>
  void observe(std::chrono::duration<Rep, Period> d, std::initializer_list<exemplar_label> exemplar,
               std::optional<double> unix_seconds = std::nullopt) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
    observe(ns < 0 ? std::uint64_t{0} : static_cast<std::uint64_t>(ns), exemplar, unix_seconds);
  }

  /// The exemplar of exposed bucket `i` (`bounds()` order, `bounds().size()` for `+Inf`), if any.
  [[nodiscard]] auto exemplar(std::size_t i) const -> std::optional<exemplar_sample> {
    const std::lock_guard lock(exemplar_mutex_);
    if (i >= exemplars_.size()) return std::nullopt;
    return exemplars_[i];
  }

  /// Adds a snapshot's counts (from another histogram, another process...) into this one.
  void merge(const histogram_snapshot& other) noexcept {
    for (std::size_t i = 0; i < other.buckets.size(); ++i) {
      if (other.buckets[i] != 0) shared_[std::min(i, size_ - 1)].fetch_add(other.buckets[i], std::memory_order_relaxed);
    }
    shared_[size_].fetch_add(other.sum, std::memory_order_relaxed);
  }

  /// The sum of every shard.
  [[nodiscard]] auto snapshot() const -> histogram_snapshot {
    histogram_snapshot s;
    s.buckets.assign(size_, 0);
    add_shard(s, shared_.get());
    for (std::size_t i = 0, n = detail::metric_slot_count(); i < n; ++i) {
      if (const auto* shard = shards_[i].load(std::memory_order_acquire)) add_shard(s, shard);
    }
    return s;
  }

  /// The exposed `le` bounds, in recorded units (each the top of a bucket).
  [[nodiscard]] auto bounds() const noexcept -> std::span<const std::uint64_t> { return bounds_; }
  [[nodiscard]] auto units_per_exposed() const noexcept -> double { return units_; }
  [[nodiscard]] auto max_value() const noexcept -> std::uint64_t { return max_; }

  /// @throws std::invalid_argument naming `max_value`, `units_per_exposed` or `buckets`.
  static void validate(const histogram_options& o) {
    if (o.max_value < 1) detail::throw_invalid_argument("histogram", "max_value", "must be at least 1", o.max_value);
    if (!(o.units_per_exposed > 0.0) || !std::isfinite(o.units_per_exposed)) {
      detail::throw_invalid_argument("histogram", "units_per_exposed", "must be finite and > 0", o.units_per_exposed);
    }
    for (std::size_t i = 0; i < o.buckets.size(); ++i) {
      if (!std::isfinite(o.buckets[i]) || (i > 0 && !(o.buckets[i] > o.buckets[i - 1]))) {
        detail::throw_invalid_argument("histogram", "buckets", "must be finite and strictly increasing", o.buckets[i]);
      }
    }
  }

 private:
  DISTKIT_COLD auto make_shard(std::size_t slot) noexcept -> std::atomic<std::uint64_t>* {
    auto* shard = new (std::nothrow) std::atomic<std::uint64_t>[size_ + 1]();
    if (shard != nullptr) shards_[slot].store(shard, std::memory_order_release);
    return shard;
  }

  void add_shard(histogram_snapshot& s, const std::atomic<std::uint64_t>* shard) const noexcept {
    for (std::size_t i = 0; i < size_; ++i) {
      const std::uint64_t n = shard[i].load(std::memory_order_relaxed);
      s.buckets[i] += n;
      s.count += n;
    }
    s.sum += shard[size_].load(std::memory_order_relaxed);
  }

  std::uint64_t max_;
  std::size_t size_;  // buckets; index size_ of a shard is its sum
  double units_;
  std::vector<std::uint64_t> bounds_;
  std::unique_ptr<std::atomic<std::atomic<std::uint64_t>*>[]> shards_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> shared_;
  mutable std::mutex exemplar_mutex_;
  std::vector<std::optional<exemplar_sample>> exemplars_;  // per exposed bucket, +Inf last
};

/// @brief The type of a metric family.
enum class metric_type : std::uint8_t { counter, gauge, histogram };

/// @brief One child of a family as read by `metrics_registry::collect()`.
struct collected_metric {
  std::vector<std::string> label_values;  ///< in the order of the family's label names
  double value = 0.0;                     ///< counter or gauge
  /// Histogram: (`le` bound in exposed units, cumulative count), ending with (+inf, count).
  std::vector<std::pair<double, std::uint64_t>> buckets;
  double sum = 0.0;         ///< histogram: sum of values, in exposed units
  std::uint64_t count = 0;  ///< histogram: values recorded
};

/// @brief A family as read by `metrics_registry::collect()`: for adapters to other systems.
struct collected_family {
  std::string name;  ///< as registered (a counter's ends in `_total`)
  std::string help;
  metric_type type = metric_type::counter;
  std::vector<std::string> label_names;
  std::vector<collected_metric> metrics;  ///< sorted by label values
};

namespace detail {

using metric_kind = metric_type;

inline auto kind_name(metric_kind k) noexcept -> std::string_view {
  switch (k) {
    case metric_kind::counter:
      return "counter";
    case metric_kind::gauge:
      return "gauge";
    case metric_kind::histogram:
      return "histogram";
  }
  return "untyped";
}

class metric_family_base {
 public:
  metric_family_base(metric_kind kind, std::string name, std::string help, std::vector<std::string> labels)
      : kind_(kind), name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels)) {}
  metric_family_base(const metric_family_base&) = delete;
  auto operator=(const metric_family_base&) -> metric_family_base& = delete;
  virtual ~metric_family_base() = default;

  [[nodiscard]] auto kind() const noexcept -> metric_kind { return kind_; }
  [[nodiscard]] auto name() const noexcept -> const std::string& { return name_; }
  [[nodiscard]] auto help() const noexcept -> const std::string& { return help_; }
  [[nodiscard]] auto label_names() const noexcept -> const std::vector<std::string>& { return labels_; }

  void write(std::string& out, exposition_format format) const {
    // OpenMetrics names a counter family without `_total`; its samples keep it.
    const std::string_view family = format == exposition_format::openmetrics && kind_ == metric_kind::counter
                                        ? std::string_view(name_).substr(0, name_.size() - 6)
                                        : std::string_view(name_);
    out += "# HELP ";
    out += family;
    out += ' ';
    for (const char c : help_) {
      if (c == '\\') {
        out += "\\\\";
      } else if (c == '\n') {
        out += "\\n";
      } else if (c == '"' && format == exposition_format::openmetrics) {
        out += "\\\"";
      } else {
        out += c;
      }
    }
    out += "\n# TYPE ";
    out += family;
    out += ' ';
    out += kind_name(kind_);
    out += '\n';
    write_samples(out, format);
  }

 protected:
  // `{a="x",b="y"` (no closing brace) for the label values, or "" without labels.
  void open_labels(std::string& out, const std::vector<std::string>& values) const {
    for (std::size_t i = 0; i < labels_.size(); ++i) {
      out += i == 0 ? "{" : ",";
      out += labels_[i];
      out += "=\"";
      append_label_value(out, values[i]);
      out += '"';
    }
  }
  void sample(std::string& out, std::string_view suffix, const std::vector<std::string>& values) const {
    out += name_;
    out += suffix;
    open_labels(out, values);
    if (!labels_.empty()) out += '}';
    out += ' ';
  }

  virtual void write_samples(std::string& out, exposition_format format) const = 0;

 public:
  /// Appends this family's children to `out.metrics` (name, help, type and labels are set by
  /// the registry).
  virtual void collect_samples(collected_family& out) const = 0;

 protected:
  auto check_values(std::span<const std::string_view> values) const -> std::vector<std::string> {
    if (values.size() != labels_.size()) {
      throw_invalid_argument(
          "metric_family", "label_values",
          "must have one value per label name of " + name_ + " (" + std::to_string(labels_.size()) + ")",
          values.size());
    }
    std::vector<std::string> out;
    out.reserve(values.size());
    for (const std::string_view v : values) {
      if (!is_valid_utf8(v)) throw_invalid_argument("metric_family", "label_values", "must be valid UTF-8");
      out.emplace_back(v);
    }
    return out;
  }

 private:
  metric_kind kind_;
  std::string name_;
  std::string help_;
  std::vector<std::string> labels_;
};

}  // namespace detail

/// @brief The metrics of one name and its label names, one child per label-value tuple.
///
/// `with(values)` returns the child for those values, created on first use; the reference stays
/// valid as long as the registry, so a hot path looks it up once and keeps it.
/// **Thread safety:** `with` may be called concurrently (it takes a mutex; keep its result).
template <class Metric>
class metric_family final : public detail::metric_family_base {
 public:
  metric_family(detail::metric_kind kind, std::string name, std::string help, std::vector<std::string> labels,
                histogram_options options)
      : metric_family_base(kind, std::move(name), std::move(help), std::move(labels)), options_(std::move(options)) {}

  /// The child for `values` (one per label name, in order).
  /// @throws std::invalid_argument naming `label_values` on a wrong count or invalid UTF-8.
  auto with(std::initializer_list<std::string_view> values) -> Metric& {
    return with(std::span<const std::string_view>(values.begin(), values.size()));
  }
  auto with(std::span<const std::string_view> values) -> Metric& {
    std::vector<std::string> key = check_values(values);
    std::lock_guard lock(mutex_);
    auto it = children_.find(key);
    if (it == children_.end()) {
      std::unique_ptr<Metric> child;
      if constexpr (std::is_same_v<Metric, histogram>) {
        child = std::make_unique<Metric>(options_);
      } else {
        child = std::make_unique<Metric>();
      }
      it = children_.emplace(std::move(key), std::move(child)).first;
    }
    return *it->second;
  }

 private:
  void write_samples(std::string& out, exposition_format format) const override {
    std::lock_guard lock(mutex_);
    const bool exemplars = format == exposition_format::openmetrics;
    for (const auto& [values, child] : children_) {
      if constexpr (std::is_same_v<Metric, counter>) {
        sample(out, "", values);
        detail::append_u64(out, child->value());
        if (exemplars) {
          if (const auto e = child->exemplar()) detail::append_exemplar(out, *e);
        }
        out += '\n';
      } else if constexpr (std::is_same_v<Metric, gauge>) {
        sample(out, "", values);
        detail::append_double(out, child->value());
        out += '\n';
      } else {
        const collected_metric m = collect_child(values, *child);
        for (std::size_t i = 0; i < m.buckets.size(); ++i) {
          write_bucket(out, values, m.buckets[i].first, m.buckets[i].second,
                       exemplars ? child->exemplar(i) : std::nullopt);
        }
        sample(out, "_sum", values);
        detail::append_double(out, m.sum);
        out += '\n';
        sample(out, "_count", values);
        detail::append_u64(out, m.count);
        out += '\n';
      }
    }
  }

 public:
  void collect_samples(collected_family& out) const override {
    std::lock_guard lock(mutex_);
    for (const auto& [values, child] : children_) out.metrics.push_back(collect_child(values, *child));
  }

 private:
  static auto collect_child(const std::vector<std::string>& values, const Metric& child) -> collected_metric {
    collected_metric m;
    m.label_values = values;
    if constexpr (std::is_same_v<Metric, histogram>) {
      const histogram_snapshot s = child.snapshot();
      const double units = child.units_per_exposed();
      std::uint64_t cumulative = 0;
      std::size_t next = 0;
      for (const std::uint64_t bound : child.bounds()) {
        const std::size_t last = log_linear_layout::bucket_of(bound);
        for (; next <= last && next < s.buckets.size(); ++next) cumulative += s.buckets[next];
        m.buckets.emplace_back(static_cast<double>(bound) / units, cumulative);
      }
      m.buckets.emplace_back(std::numeric_limits<double>::infinity(), s.count);
      m.sum = static_cast<double>(s.sum) / units;
      m.count = s.count;
    } else {
      m.value = static_cast<double>(child.value());
    }
    return m;
  }

  void write_bucket(std::string& out, const std::vector<std::string>& values, double le, std::uint64_t n,
                    const std::optional<exemplar_sample>& exemplar) const {
    out += name();
    out += "_bucket";
    open_labels(out, values);
    out += label_names().empty() ? "{le=\"" : ",le=\"";
    detail::append_double(out, le);
    out += "\"} ";
    detail::append_u64(out, n);
    if (exemplar) detail::append_exemplar(out, *exemplar);
    out += '\n';
  }

  histogram_options options_;
  mutable std::mutex mutex_;
  std::map<std::vector<std::string>, std::unique_ptr<Metric>> children_;
};

/// @brief A family whose values are read by functions when the registry is scraped: for figures
/// a component already keeps (a pool's task counts, a queue's depth), so recording them costs
/// nothing on the hot path. `T` is `std::uint64_t` for a counter family, `double` for a gauge.
///
/// `add(values, read)` registers a child and returns a handle that removes it when destroyed;
/// destroy it before whatever `read` reads, and before the registry.
/// **Thread safety:** `add`, handle destruction and scrapes may run concurrently; `read` runs
/// on the scraping thread, under the family's lock.
template <class T>
class callback_family final : public detail::metric_family_base {
 public:
  using reader = std::function<T()>;

  /// Removes its child from the family when destroyed (or on `reset()`).
  class handle {
   public:
    handle() = default;
    handle(handle&& other) noexcept
        : family_(std::exchange(other.family_, nullptr)), id_(std::exchange(other.id_, 0)) {}
    auto operator=(handle&& other) noexcept -> handle& {
      if (this != &other) {
        reset();
        family_ = std::exchange(other.family_, nullptr);
        id_ = std::exchange(other.id_, 0);
      }
      return *this;
    }
    handle(const handle&) = delete;
    auto operator=(const handle&) -> handle& = delete;
    ~handle() { reset(); }
    void reset() noexcept {
      if (auto* f = std::exchange(family_, nullptr)) f->remove(id_);
    }

   private:
    friend class callback_family;
    handle(callback_family* family, std::uint64_t id) noexcept : family_(family), id_(id) {}
    callback_family* family_ = nullptr;
    std::uint64_t id_ = 0;
  };

  callback_family(detail::metric_kind kind, std::string name, std::string help, std::vector<std::string> labels,
                  const histogram_options& /*unused*/)
      : metric_family_base(kind, std::move(name), std::move(help), std::move(labels)) {}

  /// Registers `read` as the child for `values`.
  /// @throws std::invalid_argument naming `label_values` (wrong count, invalid UTF-8, or a
  ///         child with these values already registered) or `read` (empty).
  [[nodiscard]] auto add(std::initializer_list<std::string_view> values, reader read) -> handle {
    std::vector<std::string> key = check_values(std::span<const std::string_view>(values.begin(), values.size()));
    if (!read) detail::throw_invalid_argument("callback_family", "read", "must not be empty");
    std::lock_guard lock(mutex_);
    for (const auto& [id, child] : children_) {
      if (child.first == key) {
        detail::throw_invalid_argument("callback_family", "label_values", "are already registered in " + name());
      }
    }
    const std::uint64_t id = ++next_id_;
    children_.emplace(id, std::make_pair(std::move(key), std::move(read)));
    return handle(this, id);
  }

 private:
  void remove(std::uint64_t id) noexcept {
    std::lock_guard lock(mutex_);
    children_.erase(id);
  }

  void write_samples(std::string& out, exposition_format /*format*/) const override {
    std::lock_guard lock(mutex_);
    std::vector<const std::pair<std::vector<std::string>, reader>*> sorted;
    sorted.reserve(children_.size());
    for (const auto& [id, child] : children_) sorted.push_back(&child);
    std::sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
    for (const auto* child : sorted) {
      sample(out, "", child->first);
      if constexpr (std::is_same_v<T, std::uint64_t>) {
        detail::append_u64(out, child->second());
      } else {
        detail::append_double(out, static_cast<double>(child->second()));
      }
      out += '\n';
    }
  }

  void collect_samples(collected_family& out) const override {
    std::lock_guard lock(mutex_);
    for (const auto& [id, child] : children_) {
      collected_metric m;
      m.label_values = child.first;
      m.value = static_cast<double>(child.second());
      out.metrics.push_back(std::move(m));
    }
    std::sort(out.metrics.begin(), out.metrics.end(),
              [](const collected_metric& a, const collected_metric& b) { return a.label_values < b.label_values; });
  }

  mutable std::mutex mutex_;
  std::uint64_t next_id_ = 0;
  std::map<std::uint64_t, std::pair<std::vector<std::string>, reader>> children_;
};

/// @brief Owns metric families and writes them in the Prometheus text format or OpenMetrics.
///
/// Names follow Prometheus's conventions, checked on registration: `[a-zA-Z_][a-zA-Z0-9_]*`
/// (no colons: they belong to recording rules), counters end in `_total`, gauges and histograms
/// do not end in `_total`, `_bucket`, `_count`, `_sum` or `_created`; label names match the
/// same pattern, do not start with `__`, are distinct, and are not `le` (nor `quantile`).
/// Registering a name again with the same type, help and label names returns the same family;
/// anything else throws.
/// **Thread safety:** every member may be called concurrently. A scrape reads each metric
/// without stopping writers.
///
/// @code
/// distkit::metrics_registry registry;
/// auto& requests = registry.counter_family("distkit_example_requests_total", "Requests served.", {"code"});
/// requests.with({"200"}).inc();
/// std::string text = registry.to_prometheus();
/// @endcode
class metrics_registry {
 public:
  static constexpr std::string_view prometheus_content_type = "text/plain; version=0.0.4; charset=utf-8";
  static constexpr std::string_view openmetrics_content_type =
      "application/openmetrics-text; version=1.0.0; charset=utf-8";

  metrics_registry() = default;
  metrics_registry(const metrics_registry&) = delete;
  auto operator=(const metrics_registry&) -> metrics_registry& = delete;

  /// @throws std::invalid_argument naming `name`, `help` or `label_names`.
  auto counter_family(std::string_view name, std::string_view help, std::initializer_list<std::string_view> labels = {})
      -> metric_family<counter>& {
    return add<metric_family<counter>>(detail::metric_kind::counter, name, help, labels, {});
  }
  auto gauge_family(std::string_view name, std::string_view help, std::initializer_list<std::string_view> labels = {})
      -> metric_family<gauge>& {
    return add<metric_family<gauge>>(detail::metric_kind::gauge, name, help, labels, {});
  }
  auto histogram_family(std::string_view name, std::string_view help,
                        std::initializer_list<std::string_view> labels = {}, histogram_options options = {})
      -> metric_family<histogram>& {
    return add<metric_family<histogram>>(detail::metric_kind::histogram, name, help, labels, std::move(options));
  }

  /// A counter family read by functions at scrape time (see `callback_family`).
  auto counter_callback_family(std::string_view name, std::string_view help,
                               std::initializer_list<std::string_view> labels = {}) -> callback_family<std::uint64_t>& {
    return add<callback_family<std::uint64_t>>(detail::metric_kind::counter, name, help, labels, {});
  }
  /// A gauge family read by functions at scrape time (see `callback_family`).
  auto gauge_callback_family(std::string_view name, std::string_view help,
                             std::initializer_list<std::string_view> labels = {}) -> callback_family<double>& {
    return add<callback_family<double>>(detail::metric_kind::gauge, name, help, labels, {});
  }

  /// An unlabelled counter (the single child of its family).
  auto make_counter(std::string_view name, std::string_view help) -> counter& {
    return counter_family(name, help).with({});
  }
  auto make_gauge(std::string_view name, std::string_view help) -> gauge& { return gauge_family(name, help).with({}); }
  auto make_histogram(std::string_view name, std::string_view help, histogram_options options = {}) -> histogram& {
    return histogram_family(name, help, {}, std::move(options)).with({});
  }

  /// Appends every family, sorted by name, in `format`.
  void write(std::string& out, exposition_format format) const {
    std::lock_guard lock(mutex_);
    for (const auto& [name, family] : families_) family->write(out, format);
    if (format == exposition_format::openmetrics) out += "# EOF\n";
  }
  /// Reads every family, sorted by name, as values (for adapters to other metrics systems).
  [[nodiscard]] auto collect() const -> std::vector<collected_family> {
    std::lock_guard lock(mutex_);
    std::vector<collected_family> out;
    out.reserve(families_.size());
    for (const auto& [name, family] : families_) {
      collected_family f;
      f.name = family->name();
      f.help = family->help();
      f.type = family->kind();
      f.label_names = family->label_names();
      family->collect_samples(f);
      out.push_back(std::move(f));
    }
    return out;
  }

  [[nodiscard]] auto to_prometheus() const -> std::string {
    std::string out;
    write(out, exposition_format::prometheus);
    return out;
  }
  [[nodiscard]] auto to_openmetrics() const -> std::string {
    std::string out;
    write(out, exposition_format::openmetrics);
    return out;
  }

 private:
  template <class Family>
  auto add(detail::metric_kind kind, std::string_view name, std::string_view help,
           std::initializer_list<std::string_view> labels, histogram_options options) -> Family& {
    check_name(kind, name);
    if (help.empty()) detail::throw_invalid_argument("metrics_registry", "help", "must not be empty", name);
    if (!detail::is_valid_utf8(help)) detail::throw_invalid_argument("metrics_registry", "help", "must be valid UTF-8");
    if constexpr (std::is_same_v<Family, metric_family<histogram>>) histogram::validate(options);
    std::vector<std::string> label_names;
    for (const std::string_view l : labels) {
      if (!detail::is_valid_name(l) || l.starts_with("__")) {
        detail::throw_invalid_argument("metrics_registry", "label_names",
                                       "must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __", l);
      }
      if (l == "le" || l == "quantile") {
        detail::throw_invalid_argument("metrics_registry", "label_names", "must not be le or quantile (reserved)", l);
      }
      if (std::find(label_names.begin(), label_names.end(), l) != label_names.end()) {
        detail::throw_invalid_argument("metrics_registry", "label_names", "must be distinct", l);
      }
      label_names.emplace_back(l);
    }
    std::lock_guard lock(mutex_);
    auto it = families_.find(name);
    if (it != families_.end()) {
      auto* same = dynamic_cast<Family*>(it->second.get());
      if (same == nullptr || same->help() != help || same->label_names() != label_names) {
        detail::throw_invalid_argument("metrics_registry", "name",
                                       "is already registered with another type, help or label names", name);
      }
      return *same;
    }
    auto family = std::make_unique<Family>(kind, std::string(name), std::string(help), std::move(label_names),
                                           std::move(options));
    auto& ref = *family;
    families_.emplace(std::string(name), std::move(family));
    return ref;
  }

  static void check_name(detail::metric_kind kind, std::string_view name) {
    if (!detail::is_valid_name(name)) {
      detail::throw_invalid_argument("metrics_registry", "name", "must match [a-zA-Z_][a-zA-Z0-9_]*", name);
    }
    if (kind == detail::metric_kind::counter) {
      if (!detail::ends_with(name, "_total") || name.size() == 6) {
        detail::throw_invalid_argument("metrics_registry", "name", "of a counter must end in _total", name);
      }
      return;
    }
    for (const std::string_view suffix : {"_total", "_bucket", "_count", "_sum", "_created"}) {
      if (detail::ends_with(name, suffix)) {
        detail::throw_invalid_argument("metrics_registry", "name",
                                       "of a gauge or histogram must not end in _total, _bucket, _count, _sum or "
                                       "_created",
                                       name);
      }
    }
  }

  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<detail::metric_family_base>, std::less<>> families_;
};

}  // namespace distkit::inline v0
