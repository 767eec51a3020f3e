// SPDX-License-Identifier: MIT
// distkit/rate_limiter.hpp: per-key rate limits (sliding log, sliding counter, GCRA, fixed window).
//
// A `rate_limiter<Algorithm, Clock, Store>` answers "may this key spend `cost` now?" with a
// `decision` (allowed, remaining, retry_after, reset_after, limit). The in-process store is
// sharded (no global lock) and evicts idle keys, so memory follows the keys that are active.
// The Redis store (distkit/redis/rate_limiter_store.hpp) shares one limit across processes.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <ranges>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "distkit/clock.hpp"
#include "distkit/detail/error.hpp"
#include "distkit/detail/rate_limiter_table.hpp"
#include "distkit/detail/saturating_time.hpp"
#include "distkit/hash.hpp"

namespace distkit::inline v0 {

/// @brief A rate limit: at most `limit` units of cost in any `window`.
///
/// `limit` must be in [1, 2^31 - 1]; `window` in [`limit` ns, 2^53 ns] (about 104 days), so that
/// every algorithm has at least one nanosecond per unit.
struct rate_limit {
  std::uint64_t limit = 0;
  std::chrono::nanoseconds window{0};
};

/// @brief Why a request was refused.
enum class refusal : std::uint8_t {
  none,                ///< allowed
  rate_limited,        ///< the key's limit is spent for now; see `retry_after`
  cost_exceeds_limit,  ///< the cost is larger than the limit: it can never be allowed
  store_unavailable,   ///< the shared store did not answer; `allowed` is the configured failure mode
};

/// @brief The answer to one `try_acquire`.
///
/// `remaining`: units still available right after this decision. `retry_after`: zero when
/// allowed; otherwise the wait until the same request would be allowed if nothing else came in
/// (`nanoseconds::max()` when it never can). `reset_after`: the wait until the key is back to
/// its full limit. `limit`: the configured limit.
struct [[nodiscard]] decision {
  bool allowed = false;
  std::uint64_t remaining = 0;
  std::chrono::nanoseconds retry_after{0};
  std::chrono::nanoseconds reset_after{0};
  std::uint64_t limit = 0;
  refusal reason = refusal::none;

  explicit operator bool() const noexcept { return allowed; }
};

/// @brief A validated `rate_limit` in the integer form the algorithms use (nanoseconds).
struct limit_params {
  std::uint64_t limit = 1;
  std::int64_t window = 1;    ///< ns
  std::int64_t interval = 1;  ///< ns per unit (GCRA's emission interval): window / limit, rounded down
  std::int64_t tau = 1;       ///< interval * limit: GCRA's burst window (<= window)

  /// Checks `r` and derives the integer form.
  /// @throws std::invalid_argument naming `limit` or `window`.
  static auto from(const rate_limit& r, std::string_view component = "rate_limiter") -> limit_params {
    constexpr std::uint64_t max_limit = (std::uint64_t{1} << 31) - 1;
    constexpr std::int64_t max_window = std::int64_t{1} << 53;
    if (r.limit < 1 || r.limit > max_limit) {
      detail::throw_invalid_argument(component, "limit", "must be in [1, 2^31 - 1]", r.limit);
    }
    const std::int64_t w = r.window.count();
    if (w < static_cast<std::int64_t>(r.limit) || w > max_window) {
      detail::throw_invalid_argument(component, "window", "must be in [limit ns, 2^53 ns]", w);
    }
    limit_params p;
    p.limit = r.limit;
    p.window = w;
    p.interval = w / static_cast<std::int64_t>(r.limit);
    p.tau = p.interval * static_cast<std::int64_t>(r.limit);
    return p;
  }
};

namespace detail {
inline constexpr std::int64_t never = std::numeric_limits<std::int64_t>::min();

__extension__ using uint128 = unsigned __int128;

[[nodiscard]] constexpr auto floor_to(std::int64_t t, std::int64_t w) noexcept -> std::int64_t {
  std::int64_t q = t / w;
  if (t % w != 0 && t < 0) --q;
  return q * w;
}

/// `n / d` for a quotient known to fit in 64 bits: one hardware division on x86-64 instead of
/// the library's general 128-bit routine (several times slower).
[[nodiscard]] inline auto divide_to_u64(uint128 n, std::uint64_t d) noexcept -> std::uint64_t {
  DISTKIT_ASSERT(d != 0 && (n >> 64) < d);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  std::uint64_t quotient = 0;
  std::uint64_t remainder = 0;
  __asm__("divq %[d]"
          : "=a"(quotient), "=d"(remainder)
          : [d] "r"(d), "a"(static_cast<std::uint64_t>(n)), "d"(static_cast<std::uint64_t>(n >> 64)));
  return quotient;
#else
  return static_cast<std::uint64_t>(n / d);
#endif
}

[[nodiscard]] constexpr auto ns(std::int64_t n) noexcept -> std::chrono::nanoseconds {
  return std::chrono::nanoseconds(n);
}
}  // namespace detail

/// @brief A window algorithm: how one key's state answers a request.
///
/// Requires: `typename A::state` (default-constructible = a key never seen; movable);
/// `A::name` (convertible to `std::string_view`);
/// `A::acquire(state&, const limit_params&, std::int64_t now_ns, std::uint64_t cost) -> decision`
/// (called with `cost <= limit` and `now_ns` within +-2^62; a `now_ns` earlier than the key's last
/// update counts as that time; GCRA, which keeps no update time, counts a `now_ns` earlier than
/// `tat - tau` (the earliest time its state can have been written) as that time);
/// `A::idle(const state&, const limit_params&, std::int64_t now_ns) -> bool`: true when the
/// state is equivalent to a fresh one (the key can be evicted without changing any answer).
template <class A>
concept window_algorithm = std::default_initializable<typename A::state> && std::movable<typename A::state> &&
                           requires(typename A::state& s, const typename A::state& cs, const limit_params& p,
                                    std::int64_t now, std::uint64_t cost) {
                             { A::name } -> std::convertible_to<std::string_view>;
                             { A::acquire(s, p, now, cost) } -> std::same_as<decision>;
                             { A::idle(cs, p, now) } -> std::same_as<bool>;
                           };

/// @brief Exact sliding window: keeps the timestamp of every admitted unit for one window.
///
/// Allows a request iff the units admitted in (now - window, now] plus its cost fit the limit:
/// never more than `limit` in any window. Memory per active key: up to `limit` timestamps
/// (8 bytes each), grown on demand; an idle key holds none.
struct sliding_window_log {
  static constexpr std::string_view name = "sliding_window_log";

  struct state {
    std::unique_ptr<std::int64_t[]> ring;  // admitted timestamps, oldest at `head`
    std::uint32_t head = 0;
    std::uint32_t size = 0;
    std::uint32_t cap = 0;

    [[nodiscard]] auto at(std::uint32_t i) const noexcept -> std::int64_t {
      std::uint32_t j = head + i;
      if (j >= cap) j -= cap;
      return ring[j];
    }
    [[nodiscard]] auto newest() const noexcept -> std::int64_t { return at(size - 1); }
  };

  static auto acquire(state& s, const limit_params& p, std::int64_t now, std::uint64_t cost) -> decision {
    if (s.size > 0 && now < s.newest()) now = s.newest();  // keep the ring sorted
    const std::int64_t horizon = now - p.window;
    while (s.size > 0 && s.ring[s.head] <= horizon) {
      if (++s.head == s.cap) s.head = 0;
      --s.size;
    }
    decision d;
    d.limit = p.limit;
    if (s.size + cost <= p.limit) {
      if (cost > 0) push(s, now, static_cast<std::uint32_t>(cost), p.limit);
      d.allowed = true;
      d.remaining = p.limit - s.size;
    } else {
      // The request fits once the (size + cost - limit) oldest units have left the window.
      const auto k = static_cast<std::uint32_t>(s.size + cost - p.limit);
      d.reason = refusal::rate_limited;
      d.remaining = p.limit - s.size;
      d.retry_after = detail::ns(s.at(k - 1) + p.window - now);
    }
    d.reset_after = s.size == 0 ? detail::ns(0) : detail::ns(s.newest() + p.window - now);
    return d;
  }

  [[nodiscard]] static auto idle(const state& s, const limit_params& p, std::int64_t now) noexcept -> bool {
    return s.size == 0 || s.newest() <= now - p.window;
  }

  /// Heap bytes held by one key's state (for `stats()`).
  [[nodiscard]] static auto heap_bytes(const state& s) noexcept -> std::size_t {
    return std::size_t{s.cap} * sizeof(std::int64_t);
  }

 private:
  static void push(state& s, std::int64_t now, std::uint32_t cost, std::uint64_t limit) {
    if (s.size + cost > s.cap) {
      std::uint64_t want = std::max<std::uint64_t>({std::uint64_t{4}, std::uint64_t{s.cap} * 2, s.size + cost});
      const auto new_cap = static_cast<std::uint32_t>(std::min<std::uint64_t>(want, limit));
      auto fresh = std::make_unique<std::int64_t[]>(new_cap);
      for (std::uint32_t i = 0; i < s.size; ++i) fresh[i] = s.at(i);
      s.ring = std::move(fresh);
      s.head = 0;
      s.cap = new_cap;
    }
    std::uint32_t j = s.head + s.size;
    if (j >= s.cap) j -= s.cap;
    for (std::uint32_t i = 0; i < cost; ++i) {
      s.ring[j] = now;
      if (++j == s.cap) j = 0;
    }
    s.size += cost;
  }
};

/// @brief Cloudflare's sliding-window counter: two counters per key, O(1) memory.
///
/// Estimates the units in the sliding window as `previous * (window - elapsed) / window +
/// current`, where `current` counts the fixed window that holds `now` and `previous` the one
/// before (events assumed spread evenly over it), and allows a request iff the estimate plus
/// its cost fits the limit. Error vs the exact count of the same traffic: between
/// `-previous * elapsed / window` and `+previous * (window - elapsed) / window`.
struct sliding_window_counter {
  static constexpr std::string_view name = "sliding_window_counter";

  struct state {
    std::int64_t start = detail::never;  // start of the current fixed window
    std::uint32_t previous = 0;
    std::uint32_t current = 0;
  };

  static auto acquire(state& s, const limit_params& p, std::int64_t now, std::uint64_t cost) noexcept -> decision {
    using detail::uint128;
    const std::int64_t w = p.window;
    const auto uw = static_cast<std::uint64_t>(w);
    // The window start: the key's own while `now` stays in its window (the common case: no
    // division, no roll), the next one after it, else a fresh multiple of the window.
    std::uint64_t elapsed = static_cast<std::uint64_t>(now) - static_cast<std::uint64_t>(s.start);
    std::int64_t ws = s.start;
    if (DISTKIT_UNLIKELY(s.start == detail::never || elapsed >= uw)) {
      if (s.start != detail::never && now < s.start) now = s.start;
      if (s.start != detail::never && now - s.start < 2 * w) {
        ws = s.start + (now - s.start < w ? 0 : w);
      } else {
        ws = detail::floor_to(now, w);
      }
      roll(s, ws, w);
      elapsed = static_cast<std::uint64_t>(now - ws);
    }
    decision d;
    d.limit = p.limit;
    // In units of (cost * ns): admitted iff previous * (w - elapsed) + (current + cost) * w <=
    // limit * w, i.e. the carried-over weight fits the room left in this window.
    const uint128 carried = uint128{s.previous} * (uw - elapsed);
    const bool fits = s.current + cost <= p.limit;
    const uint128 room = fits ? uint128{p.limit - s.current - cost} * uw : 0;
    if (DISTKIT_LIKELY(fits && carried <= room)) {
      s.current += static_cast<std::uint32_t>(cost);
      d.allowed = true;
      // floor((room - carried) / w): exactly limit - current when nothing carries over.
      d.remaining = carried == 0 ? p.limit - s.current : detail::divide_to_u64(room - carried, uw);
    } else {
      d.reason = refusal::rate_limited;
      const uint128 budget = uint128{p.limit} * uw;
      const uint128 used = carried + uint128{s.current} * uw;
      d.remaining = used >= budget ? 0 : detail::divide_to_u64(budget - used, uw);
      if (fits) {
        // Wait inside this window until previous's weight has decayed enough:
        // the least e with previous * (w - e) <= (limit - current - cost) * w.
        const auto e = static_cast<std::int64_t>(uw - static_cast<std::uint64_t>(room / s.previous));
        d.retry_after = detail::ns(e - static_cast<std::int64_t>(elapsed));
      } else {
        // Wait for the next window, where previous' = current.
        const uint128 next_room = uint128{p.limit - cost} * uw;
        const auto e = static_cast<std::int64_t>(uw - static_cast<std::uint64_t>(next_room / s.current));
        d.retry_after = detail::ns(w + e - static_cast<std::int64_t>(elapsed));
      }
    }
    const std::int64_t left = w - static_cast<std::int64_t>(elapsed);  // until this window ends
    d.reset_after = s.current > 0 ? detail::ns(left + w) : s.previous > 0 ? detail::ns(left) : detail::ns(0);
    return d;
  }

  [[nodiscard]] static auto idle(const state& s, const limit_params& p, std::int64_t now) noexcept -> bool {
    if (s.start == detail::never) return true;
    const std::int64_t age = now - s.start;
    return age >= 2 * p.window || (s.current == 0 && age >= p.window);
  }

 private:
  static void roll(state& s, std::int64_t ws, std::int64_t w) noexcept {
    if (s.start == ws) return;
    s.previous = (s.start != detail::never && ws - s.start == w) ? s.current : 0;
    s.current = 0;
    s.start = ws;
  }
};

/// @brief GCRA (generic cell rate algorithm): one timestamp per key.
///
/// Equivalent to a token bucket of `limit` tokens refilled one every `window / limit` (rounded
/// down to whole ns): a burst of `limit` is allowed at once, then one unit per interval.
/// The state is the theoretical arrival time (TAT) of the next unit.
struct gcra {
  static constexpr std::string_view name = "gcra";

  struct state {
    std::int64_t tat = detail::never;
  };

  static auto acquire(state& s, const limit_params& p, std::int64_t now, std::uint64_t cost) noexcept -> decision {
    // An admission at time t leaves tat <= t + tau, so the state was written at tat - tau or
    // later: an older `now` counts as that time (else `tat - now` passes tau and `remaining`
    // goes negative).
    std::int64_t tat = now;
    if (s.tat > now) {  // never written (detail::never) is below every now
      tat = s.tat;
      if (DISTKIT_UNLIKELY(now < tat - p.tau)) now = tat - p.tau;
    }
    const std::int64_t new_tat = tat + static_cast<std::int64_t>(cost) * p.interval;
    const std::int64_t allow_at = new_tat - p.tau;
    decision d;
    d.limit = p.limit;
    if (now < allow_at) {
      d.reason = refusal::rate_limited;
      d.retry_after = detail::ns(allow_at - now);
      d.remaining = static_cast<std::uint64_t>((p.tau - (tat - now)) / p.interval);
      d.reset_after = detail::ns(tat - now);
    } else {
      s.tat = new_tat;
      d.allowed = true;
      d.remaining = static_cast<std::uint64_t>((p.tau - (new_tat - now)) / p.interval);
      d.reset_after = detail::ns(new_tat - now);
    }
    return d;
  }

  [[nodiscard]] static auto idle(const state& s, const limit_params&, std::int64_t now) noexcept -> bool {
    return s.tat <= now;
  }
};

/// @brief Fixed window: one counter per key, reset at each multiple of `window`.
///
/// The documented baseline: up to `2 * limit` can pass within one window's length around a
/// boundary (the end of one window plus the start of the next).
struct fixed_window {
  static constexpr std::string_view name = "fixed_window";

  struct state {
    std::int64_t start = detail::never;
    std::uint32_t count = 0;
  };

  static auto acquire(state& s, const limit_params& p, std::int64_t now, std::uint64_t cost) noexcept -> decision {
    if (s.start != detail::never && now < s.start) now = s.start;
    const std::int64_t ws = detail::floor_to(now, p.window);
    if (s.start != ws) {
      s.start = ws;
      s.count = 0;
    }
    decision d;
    d.limit = p.limit;
    if (s.count + cost <= p.limit) {
      s.count += static_cast<std::uint32_t>(cost);
      d.allowed = true;
    } else {
      d.reason = refusal::rate_limited;
      d.retry_after = detail::ns(ws + p.window - now);
    }
    d.remaining = p.limit - s.count;
    d.reset_after = s.count > 0 ? detail::ns(ws + p.window - now) : detail::ns(0);
    return d;
  }

  [[nodiscard]] static auto idle(const state& s, const limit_params& p, std::int64_t now) noexcept -> bool {
    return s.start == detail::never || now - s.start >= p.window;
  }
};

static_assert(window_algorithm<sliding_window_log>);
static_assert(window_algorithm<sliding_window_counter>);
static_assert(window_algorithm<gcra>);
static_assert(window_algorithm<fixed_window>);

/// @brief Memory and key counts of a store.
struct limiter_stats {
  std::size_t keys = 0;      ///< keys held (active, or idle and not yet swept)
  std::size_t capacity = 0;  ///< slots allocated over all shards
  std::size_t bytes = 0;     ///< slot bytes + per-key heap bytes (the log's timestamps)
  std::size_t shards = 0;
};

/// @brief Where a rate limiter keeps its per-key state.
///
/// Requires `s.try_acquire(std::string_view key_bytes, std::uint64_t cost, std::int64_t now_ns)
/// -> decision` (called with `cost <= limit`) and `s.policy() -> const rate_limit&`.
/// Optional: `s.stats() -> limiter_stats`, `s.evict_idle(now_ns) -> std::size_t`.
template <class S>
concept limiter_store = requires(S& s, const S& cs, std::string_view key, std::uint64_t cost, std::int64_t now) {
  { s.try_acquire(key, cost, now) } -> std::same_as<decision>;
  { cs.policy() } -> std::convertible_to<const rate_limit&>;
};

namespace detail {
/// Keys a batch can take: a random-access range of byte-hashable keys held in memory (elements
/// are lvalues, so the bytes of each stay valid while the batch is decided).
template <class Keys>
concept batch_keys = std::ranges::random_access_range<const Keys> &&
                     std::is_lvalue_reference_v<std::ranges::range_reference_t<const Keys>> &&
                     byte_hashable<std::ranges::range_value_t<Keys>>;
/// The shape of the key accessor a store's `try_acquire_many` is given (for detection only).
struct key_at_signature {
  auto operator()(std::size_t i) const -> std::string_view;
};
}  // namespace detail

/// @brief Options of the in-process store.
struct local_store_options {
  /// Number of independently locked shards; a power of two in [1, 65536]. More shards, less
  /// contention between threads working on different keys: with 256, two threads deciding for
  /// random keys rarely want the same shard's cache line at once (benchmarks/RESULTS.md compares
  /// 64 and 256 shards on 2 threads). Each shard costs ~640 bytes when empty.
  std::size_t shards = 256;
};

/// @brief The in-process store: power-of-two shards, each an open-addressing table of
/// `{128-bit key fingerprint, state}` slots behind its own spin lock.
///
/// Idle keys (whose state equals a fresh one) are dropped lazily: every slot is swept before a
/// table grows, a slot per four operations is swept for keys idle a whole window (a key that
/// has just gone quiet often comes back), and a table shrinks when mostly empty, so memory
/// follows the active keys. `evict_idle()` sweeps everything at once (for a process whose
/// traffic stops). `try_acquire_many` prefetches the slots of the next keys of a batch while
/// it decides the current ones.
///
/// @tparam Algorithm models `window_algorithm`.
/// @throws std::invalid_argument (constructor) naming `limit`, `window` or `shards`.
/// **Thread safety:** all members may be called concurrently.
/// **Complexity:** O(1) expected per `try_acquire` (the log: O(cost) amortized).
template <window_algorithm Algorithm>
class local_store {
 public:
  using state_type = typename Algorithm::state;
  using table_type = detail::probe_table<state_type>;
  /// Bytes one key occupies in its slot (fingerprint + state), excluding load-factor slack.
  static constexpr std::size_t bytes_per_key = sizeof(typename table_type::slot);

  explicit local_store(rate_limit limit, local_store_options options = {})
      : policy_(limit), params_(limit_params::from(limit)) {
    if (options.shards < 1 || options.shards > 65536 || (options.shards & (options.shards - 1)) != 0) {
      detail::throw_invalid_argument("rate_limiter", "shards", "must be a power of two in [1, 65536]", options.shards);
    }
    shard_mask_ = options.shards - 1;
    shards_ = std::make_unique<shard[]>(options.shards);
  }

  [[nodiscard]] auto policy() const noexcept -> const rate_limit& { return policy_; }
  [[nodiscard]] auto params() const noexcept -> const limit_params& { return params_; }

  // Always inlined: the limiter calls it twice (the decision, and the key's figures for a cost
  // above the limit), and g++ then stops inlining it into the hot path (+1-2 ns per decision).
  DISTKIT_ALWAYS_INLINE auto try_acquire(std::string_view key, std::uint64_t cost, std::int64_t now) -> decision {
    now = detail::clamp_time(now);
    const detail::fingerprint fp = detail::make_fingerprint(key.data(), key.size());
    // Ask for the slot's lines before taking the lock: when another thread last held the lock,
    // its line comes from that core, and the two misses then overlap instead of adding up
    // (two threads gain, one thread is unchanged: benchmarks/RESULTS.md, "Rate limiter").
    table_type::prefetch(shard_of(fp).published, fp);
    return decide(fp, cost, now);
  }

  /// `out[i] = try_acquire(key_at(i), cost, now)` for i in [0, out.size()), in order, with the
  /// table lines of the key `ahead` places later prefetched as each key is decided: on tables
  /// larger than the cache the misses overlap instead of following one another. One key staged
  /// per decision, not a burst per group: staging 16 keys at once (48 prefetches) measured
  /// slower than bursts of 8, while this steady flow measured as fast as the best burst
  /// (benchmarks/RESULTS.md, "Rate limiter").
  template <class KeyAt>
  void try_acquire_many(KeyAt key_at, std::uint64_t cost, std::int64_t now, std::span<decision> out) {
    constexpr std::size_t ahead = 16;
    now = detail::clamp_time(now);
    const std::size_t count = out.size();
    std::array<detail::fingerprint, ahead> fps{};
    const auto stage = [&](std::size_t i) {
      const std::string_view key = key_at(i);
      detail::fingerprint& f = fps[i % ahead];
      f = detail::make_fingerprint(key.data(), key.size());
      shard& sh = shard_of(f);
      detail::prefetch(&sh.lock, true);  // another thread may hold the line
      table_type::prefetch(sh.published, f);
    };
    const std::size_t primed = std::min(ahead, count);
    for (std::size_t i = 0; i < primed; ++i) stage(i);
    for (std::size_t i = 0; i < count; ++i) {
      const detail::fingerprint f = fps[i % ahead];
      if (i + ahead < count) stage(i + ahead);
      out[i] = decide(f, cost, now);
    }
  }

  /// Drops every idle key now and shrinks mostly empty shards. Returns the keys dropped.
  auto evict_idle(std::int64_t now) -> std::size_t {
    now = detail::clamp_time(now);
    std::size_t dropped = 0;
    const auto idle = [&](const state_type& s) noexcept { return Algorithm::idle(s, params_, now); };
    for (std::size_t i = 0; i <= shard_mask_; ++i) {
      std::lock_guard<detail::spin_lock> guard(shards_[i].lock);
      dropped += shards_[i].table.sweep_all(idle);
    }
    return dropped;
  }

  [[nodiscard]] auto stats() const -> limiter_stats {
    limiter_stats st;
    st.shards = shard_mask_ + 1;
    for (std::size_t i = 0; i <= shard_mask_; ++i) {
      std::lock_guard<detail::spin_lock> guard(shards_[i].lock);
      st.keys += shards_[i].table.size();
      st.capacity += shards_[i].table.capacity();
      if constexpr (requires(const state_type& s) { Algorithm::heap_bytes(s); }) {
        shards_[i].table.for_each([&](const state_type& s) { st.bytes += Algorithm::heap_bytes(s); });
      }
    }
    st.bytes += st.capacity * bytes_per_key;
    return st;
  }

 private:
  // Two cache lines. The first holds the table's address, read without the lock by every
  // thread that prefetches for this shard and written only when the table is rebuilt; the
  // second holds what a decision writes (the lock, the counter, the table's header). With both
  // on one line, two threads batching over random keys measured slower than one.
  struct shard {
    alignas(64) detail::table_address published;
    alignas(64) mutable detail::spin_lock lock;
    std::uint32_t ops = 0;
    table_type table{published};
  };
  static_assert(sizeof(shard) == 128);

  auto shard_of(const detail::fingerprint& fp) noexcept -> shard& { return shards_[(fp.hi >> 40) & shard_mask_]; }

  // Inlined into both paths: a call plus the copy of the returned decision are a measurable
  // part of a batched decision when the table is in cache (benchmarks/RESULTS.md).
  DISTKIT_ALWAYS_INLINE auto decide(const detail::fingerprint& fp, std::uint64_t cost, std::int64_t now) -> decision {
    shard& sh = shard_of(fp);
    const auto idle = [&](const state_type& s) noexcept { return Algorithm::idle(s, params_, now); };
    // The incremental sweep drops keys idle for a whole window already (idle as of a window
    // ago): a key that has only just gone quiet is likely to come back, and dropping it at once
    // would make its next request pay an insert. Memory stays bounded all the same, because a
    // table never grows before a full sweep has dropped every idle key.
    const std::int64_t stale_before = now - params_.window;
    const auto stale = [&](const state_type& s) noexcept { return Algorithm::idle(s, params_, stale_before); };
    std::lock_guard<detail::spin_lock> guard(sh.lock);
    decision d = Algorithm::acquire(sh.table.find_or_insert(fp, idle, stale), params_, now, cost);
    if ((++sh.ops & 63U) == 0) sh.table.sweep_some(16, stale);  // 1 slot per 4 operations
    return d;
  }

  rate_limit policy_;
  limit_params params_;
  std::size_t shard_mask_ = 0;
  std::unique_ptr<shard[]> shards_;
};

static_assert(limiter_store<local_store<gcra>>);

/// @brief What a limiter tells its metrics policy: every decision it returns. The hook is
/// `noexcept` and runs on the decision path.
template <class M>
concept limiter_metrics_policy = requires(M& m, const decision& d) {
  { m.on_decision(d) } noexcept;
};

/// @brief The default metrics policy: records nothing and takes no space, so a limiter without
/// metrics compiles to what it was without the policy. `distkit/metrics/rate_limiter.hpp` has
/// the policy that feeds a `metrics_registry`.
struct limiter_no_metrics {
  static void on_decision(const decision& /*d*/) noexcept {}
};

/// @brief A per-key rate limiter.
///
/// @tparam Algorithm  models `window_algorithm`: `sliding_window_log` (exact), `sliding_window_counter`,
///                    `gcra` or `fixed_window`.
/// @tparam Clock      models `time_source` (default: `steady_time`; tests use `manual_clock`).
/// @tparam Store      models `limiter_store` (default: `local_store<Algorithm>`, in-process;
///                    `redis_store<Algorithm>` shares the limit across processes).
/// @tparam Metrics    models `limiter_metrics_policy` (default `limiter_no_metrics`, which costs
///                    nothing; `limiter_registry_metrics` counts decisions by outcome and reason).
///
/// Keys are any `byte_hashable` value (strings, string_views, integers, byte spans); the
/// in-process store identifies a key of up to 8 bytes exactly (a one-to-one fingerprint) and a
/// longer key by the 128-bit XXH3 of its bytes.
///
/// @throws std::invalid_argument (constructor) naming `limit`, `window` or `shards`.
/// **Thread safety:** all members may be called concurrently.
/// **Complexity:** `try_acquire` is O(1) expected (the log: O(cost) amortized).
///
/// @code
/// distkit::rate_limiter<distkit::gcra> limiter{{.limit = 100, .window = std::chrono::seconds(1)}};
/// if (auto d = limiter.try_acquire("client-42"); !d) reply_429(d.retry_after);
/// @endcode
template <window_algorithm Algorithm, time_source Clock = steady_time, limiter_store Store = local_store<Algorithm>,
          limiter_metrics_policy Metrics = limiter_no_metrics>
class rate_limiter {
 public:
  using algorithm_type = Algorithm;
  using clock_type = Clock;
  using store_type = Store;
  using time_point = typename Clock::time_point;

  /// Builds the store from the limit (the in-process store with default options).
  explicit rate_limiter(rate_limit limit, Clock clock = Clock{}, Metrics metrics = Metrics{})
    requires std::constructible_from<Store, rate_limit>
      : store_(limit), clock_(std::move(clock)), metrics_(std::move(metrics)) {}

  /// Takes a configured store (shard count, a Redis connection...).
  explicit rate_limiter(Store store, Clock clock = Clock{}, Metrics metrics = Metrics{})
      : store_(std::move(store)), clock_(std::move(clock)), metrics_(std::move(metrics)) {}

  /// Asks to spend `cost` units of `key`'s limit now (reads the clock once).
  template <byte_hashable Key>
  auto try_acquire(const Key& key, std::uint64_t cost = 1) -> decision {
    return try_acquire(key, cost, clock_.now());
  }

  /// Asks to spend `cost` units of `key`'s limit at `now` (for callers that already read the
  /// clock; a `now` earlier than the key's last update counts as that time; times beyond
  /// +-2^62 ns count as those bounds). A cost above the limit is refused with
  /// `refusal::cost_exceeds_limit` and changes nothing; its `remaining` and `reset_after` are
  /// the key's own (as redis-cell answers), `retry_after` is `nanoseconds::max()`.
  // Always inlined, with the store's decision inside it: left to the compiler, g++ -O3 calls
  // it out of line once the store's path is inlined into it (+1 ns on a 10 ns decision).
  template <byte_hashable Key>
  DISTKIT_ALWAYS_INLINE auto try_acquire(const Key& key, std::uint64_t cost, time_point now) -> decision {
    if constexpr (std::is_same_v<Metrics, limiter_no_metrics>) {
      if (DISTKIT_UNLIKELY(cost > store_.policy().limit)) return refuse_cost(detail::key_bytes(key), to_ns(now));
      return store_.try_acquire(detail::key_bytes(key), cost, to_ns(now));
    } else {
      return decide(detail::key_bytes(key), cost, to_ns(now));
    }
  }

  /// Decides a batch of requests, each of `cost`, at one clock reading: `out[i]` is what
  /// `try_acquire(keys[i], cost)` would return, the calls made in order (a key repeated in the
  /// batch sees its earlier requests). Returns how many were allowed. With the in-process
  /// store, the next keys' table slots are prefetched while the current ones are decided, so a
  /// batch over many cold keys costs a fraction of a cache miss per decision.
  /// @throws std::invalid_argument naming `out` if `out.size() != keys.size()`.
  template <std::ranges::random_access_range Keys>
    requires detail::batch_keys<Keys>
  auto try_acquire_many(const Keys& keys, std::span<decision> out, std::uint64_t cost = 1) -> std::size_t {
    return try_acquire_many(keys, out, cost, clock_.now());
  }

  /// As above, at the caller's `now`.
  template <std::ranges::random_access_range Keys>
    requires detail::batch_keys<Keys>
  auto try_acquire_many(const Keys& keys, std::span<decision> out, std::uint64_t cost, time_point now) -> std::size_t {
    const auto count = static_cast<std::size_t>(std::ranges::size(keys));
    if (out.size() != count) {
      detail::throw_invalid_argument("rate_limiter", "out",
                                     "must have one decision per key (" + std::to_string(count) + ")", out.size());
    }
    const auto first = std::ranges::begin(keys);
    if (DISTKIT_UNLIKELY(cost > store_.policy().limit)) {
      for (std::size_t i = 0; i < count; ++i) out[i] = try_acquire(first[static_cast<std::ptrdiff_t>(i)], cost, now);
      return 0;
    }
    const std::int64_t t = to_ns(now);
    if constexpr (requires(detail::key_at_signature key_at) { store_.try_acquire_many(key_at, cost, t, out); }) {
      store_.try_acquire_many([&](std::size_t i) { return detail::key_bytes(first[static_cast<std::ptrdiff_t>(i)]); },
                              cost, t, out);
    } else {
      for (std::size_t i = 0; i < count; ++i) {
        out[i] = store_.try_acquire(detail::key_bytes(first[static_cast<std::ptrdiff_t>(i)]), cost, t);
      }
    }
    for (const decision& d : out) metrics_.on_decision(d);
    return static_cast<std::size_t>(std::count_if(out.begin(), out.end(), [](const decision& d) { return d.allowed; }));
  }

  /// Drops every idle key now (in-process store). Returns the keys dropped.
  auto evict_idle() -> std::size_t
    requires requires(Store& s) { s.evict_idle(std::int64_t{}); }
  {
    return store_.evict_idle(to_ns(clock_.now()));
  }

  /// Key count and memory of the store.
  [[nodiscard]] auto stats() const -> limiter_stats
    requires requires(const Store& s) { s.stats(); }
  {
    return store_.stats();
  }

  [[nodiscard]] auto policy() const noexcept -> const rate_limit& { return store_.policy(); }
  [[nodiscard]] auto store() noexcept -> Store& { return store_; }
  [[nodiscard]] auto clock() const noexcept -> const Clock& { return clock_; }

 private:
  static auto to_ns(time_point t) noexcept -> std::int64_t { return detail::saturating_ns(t.time_since_epoch()); }

  // A decision passed to the metrics policy. Its own function with one named result, so the
  // result is built in the caller's slot (with several return statements g++ copies it).
  DISTKIT_ALWAYS_INLINE auto decide(std::string_view key, std::uint64_t cost, std::int64_t now) -> decision {
    decision d =
        DISTKIT_LIKELY(cost <= store_.policy().limit) ? store_.try_acquire(key, cost, now) : refuse_cost(key, now);
    metrics_.on_decision(d);
    return d;
  }

  // A cost above the limit: the key's figures from a request of cost 0 (which changes no
  // answer), refused. A store that cannot answer gives no figures.
  DISTKIT_COLD auto refuse_cost(std::string_view key, std::int64_t now) -> decision {
    decision d = store_.try_acquire(key, 0, now);
    if (d.reason == refusal::store_unavailable) d.remaining = 0;
    d.allowed = false;
    d.limit = store_.policy().limit;
    d.reason = refusal::cost_exceeds_limit;
    d.retry_after = std::chrono::nanoseconds::max();
    return d;
  }

  Store store_;
  [[no_unique_address]] Clock clock_;
  [[no_unique_address]] Metrics metrics_;
};

/// @brief HTTP response fields for a decision, per RFC 9110 (`Retry-After`) and the IETF
/// httpapi draft "RateLimit header fields for HTTP" (`RateLimit-Policy`, `RateLimit`).
struct rate_limit_headers {
  int status = 200;         ///< 200 allowed; 429 refused by the limit; 503 store unavailable
  std::string retry_after;  ///< `Retry-After` value (whole seconds, rounded up); empty when not sent
  std::string policy;       ///< `RateLimit-Policy` value, e.g. `"default";q=100;w=60`
  std::string ratelimit;    ///< `RateLimit` value, e.g. `"default";r=0;t=12`
};

/// @brief Formats `d` (from a limiter configured with `policy`) as HTTP response fields.
///
/// `name` is the policy identifier (a Structured Fields string; quotes and backslashes are
/// escaped). Seconds are rounded up, so a client that waits them is never early.
/// `Retry-After` is omitted when allowed, and when the cost exceeds the limit (no wait helps).
[[nodiscard]] inline auto format_headers(const decision& d, const rate_limit& policy, std::string_view name = "default")
    -> rate_limit_headers {
  const auto ceil_seconds = [](std::chrono::nanoseconds t) -> std::int64_t {
    if (t.count() <= 0) return 0;
    return (t.count() + 999'999'999) / 1'000'000'000;
  };
  std::string quoted = "\"";
  for (const char c : name) {
    if (c == '"' || c == '\\') quoted.push_back('\\');
    quoted.push_back(c);
  }
  quoted.push_back('"');
  rate_limit_headers h;
  h.status = d.allowed ? 200 : (d.reason == refusal::store_unavailable ? 503 : 429);
  h.policy = quoted + ";q=" + std::to_string(policy.limit) + ";w=" + std::to_string(ceil_seconds(policy.window));
  h.ratelimit = quoted + ";r=" + std::to_string(d.remaining) + ";t=" + std::to_string(ceil_seconds(d.reset_after));
  if (!d.allowed && d.reason != refusal::cost_exceeds_limit) {
    h.retry_after = std::to_string(std::max<std::int64_t>(1, ceil_seconds(d.retry_after)));
  }
  return h;
}

}  // namespace distkit::inline v0
