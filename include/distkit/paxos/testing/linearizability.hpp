// SPDX-License-Identifier: MIT
// distkit/paxos/testing/linearizability.hpp: a linearizability checker (Wing & Gong's search as
// refined by Lowe and by Porcupine) with per-partition checking, a bounded cache of visited
// configurations, and key-value and register models. A testing tool: not part of distkit/paxos.hpp.
//
// The search, per partition (P-compositionality: operations of different partitions never
// constrain each other, so each partition is linearizable on its own or the history is not):
//   * the history is a doubly linked list of call and return entries in time order. A
//     configuration is the set of operations linearized so far and the model state after them;
//     the operations that may come next are those whose call entry precedes the first remaining
//     return entry (nothing still unlinearized returned before they were called);
//   * taking an operation removes ("lifts") its two entries from the list in O(1), and undoing it
//     puts them back in reverse order (dancing links), so backtracking costs no copying;
//   * every configuration entered is remembered (bitset of linearized operations, state), so a
//     configuration reached again by a different order is not searched twice. The bitset's hash
//     is kept incrementally (one random word per operation, xored in and out), and a cache entry
//     stores only the bitset's words between the first not-full word and the last non-zero one;
//   * an operation that only observes (a read, a failed compare-and-set: the model's
//     `read_only`) and succeeds now is taken now without trying the alternatives: any
//     linearization from here can be rewritten to take it first, because it leaves every state
//     as it finds it and nothing unlinearized had to precede it. This removes the branching on
//     reads, the bulk of most histories;
//   * partitions are searched round-robin in slices of steps, so one partition whose search is
//     long does not hide another that fails quickly.
// Memory is the list (O(n)), the DFS stack (O(n) entries) and the cache, whose bytes are
// charged against a limit; a full cache stops growing (the search stays exact, only slower).
#pragma once

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "distkit/clock.hpp"
#include "distkit/hash.hpp"

namespace distkit::inline v0::paxos::testing {

/// The time of the return of an operation that never completed: it may take effect at any
/// point after its call, or never.
inline constexpr std::uint64_t pending_return = std::numeric_limits<std::uint64_t>::max();

/// @brief One operation of a history.
///
/// `call` <= `ret` in a common time base; `ret == pending_return` for an operation with no known
/// outcome (its `output` should then say "unknown"). Operation `a` precedes `b` in real time when
/// `a.ret < b.call`, or `a.ret == b.call` unless both are instantaneous (`call == ret`): an
/// operation that returned at t precedes one invoked at t, and instantaneous operations at the
/// same t are concurrent.
template <class Input, class Output>
struct history_op {
  std::uint64_t client = 0;
  Input input{};
  Output output{};
  std::uint64_t call = 0;
  std::uint64_t ret = pending_return;
};

/// @brief A sequential specification the checker searches against.
///
/// Requires types `M::state`, `M::input`, `M::output`; `M::init() -> state`;
/// `M::step(const state&, const input&, const output&) -> std::optional<state>` (the state
/// after the operation, or nullopt when the output is impossible from `state`);
/// `M::hash(const state&) -> uint64_t`; `state == state`; and
/// `M::partition(const input&) -> std::string` (operations of different partitions are
/// independent, so each partition is checked alone).
///
/// Optional: `M::read_only(const input&, const output&) -> bool`, true only when `step` with
/// these arguments returns either nullopt or the state it was given, from every state (a read,
/// a failed compare-and-set). The checker then takes such an operation as soon as it may and
/// succeeds, without branching; a model that says `true` wrongly makes the checker wrong.
template <class M>
concept linearizability_model =
    requires(const typename M::state& s, const typename M::input& in, const typename M::output& out) {
      { M::init() } -> std::same_as<typename M::state>;
      { M::step(s, in, out) } -> std::same_as<std::optional<typename M::state>>;
      { M::hash(s) } -> std::convertible_to<std::uint64_t>;
      { s == s } -> std::convertible_to<bool>;
      { M::partition(in) } -> std::convertible_to<std::string>;
    };

/// The verdict of a check.
enum class check_verdict : std::uint8_t {
  linearizable,
  not_linearizable,
  unknown,  ///< the step or time budget ran out before every partition was decided
};

/// @brief Limits of one check. Every limit is exact: the check never takes more steps, and its
/// cache never holds more bytes, than allowed.
struct check_options {
  /// Search steps over all partitions (one step: one model step tried, or one backtrack)
  /// before the check answers `unknown`. Must be > 0.
  std::uint64_t max_steps = 50'000'000;
  /// Bytes of the caches of visited configurations (entries, tables, cached states' storage).
  /// When full, the cache stops growing and the search continues without it: still exact, but
  /// it may revisit configurations. 0 disables the cache.
  std::size_t max_cache_bytes = std::size_t{256} << 20;
  /// Wall time before the check answers `unknown` (zero: no time limit). Read from the clock
  /// passed to `check_linearizability` between slices of at most `slice_steps` steps.
  std::chrono::nanoseconds time_limit{0};
  /// Steps a partition runs before the next partition's turn. Must be > 0.
  std::uint64_t slice_steps = 4096;
};

/// The result of `check_linearizability`.
struct check_result {
  check_verdict verdict = check_verdict::linearizable;
  /// The partition found not linearizable, or (verdict `unknown`) the first one left undecided.
  std::string failed_partition;
  std::uint64_t states_explored = 0;    ///< configurations entered (each cached once)
  std::uint64_t steps = 0;              ///< search steps taken over all partitions
  std::size_t peak_cache_bytes = 0;     ///< the most bytes the caches held at once
  std::uint64_t cache_misses_full = 0;  ///< configurations not cached because the cache was full
  [[nodiscard]] auto ok() const noexcept -> bool { return verdict == check_verdict::linearizable; }
};

namespace internal {

inline auto lin_mix(std::uint64_t x) noexcept -> std::uint64_t {
  // splitmix64's finalizer: a bijection that spreads every input bit over the word.
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ULL;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBULL;
  x ^= x >> 31;
  return x;
}

/// The bytes one check's caches may still take, shared by its partitions.
struct cache_meter {
  std::size_t limit = 0;
  std::size_t used = 0;
  std::size_t peak = 0;
  auto try_charge(std::size_t bytes) noexcept -> bool {
    if (bytes > limit - used) return false;
    used += bytes;
    peak = std::max(peak, used);
    return true;
  }
  void release(std::size_t bytes) noexcept { used -= bytes; }
};

/// Heap bytes owned by a cached state: its `capacity()` for a container-like state, else none.
template <class S>
auto owned_bytes(const S& s) noexcept -> std::size_t {
  if constexpr (requires {
                  { s.capacity() } -> std::convertible_to<std::size_t>;
                  typename S::value_type;
                }) {
    return static_cast<std::size_t>(s.capacity()) * sizeof(typename S::value_type);
  } else {
    return 0;
  }
}

template <class M>
auto is_read_only(const typename M::input& in, const typename M::output& out) -> bool {
  if constexpr (requires {
                  { M::read_only(in, out) } -> std::convertible_to<bool>;
                }) {
    return M::read_only(in, out);
  } else {
    return false;
  }
}

/// The search over one partition, resumable: `run` takes at most a given number of steps.
template <linearizability_model M>
class partition_search {
 public:
  using state_t = typename M::state;
  using op_t = history_op<typename M::input, typename M::output>;
  enum class status : std::uint8_t { running, linearizable, not_linearizable };

  partition_search(const std::vector<const op_t*>& ops, cache_meter& meter) : meter_(meter), ops_(ops), st_(M::init()) {
    const std::size_t n = ops_.size();
    if (n > (std::numeric_limits<std::uint32_t>::max() - 2) / 2)
      throw std::invalid_argument(
          "distkit::paxos::testing::check_linearizability: partition size must be < 2^31, got " + std::to_string(n));
    read_only_.resize(n);
    for (std::size_t i = 0; i < n; ++i) read_only_[i] = is_read_only<M>(ops_[i]->input, ops_[i]->output);
    build_list();
    bits_.assign((n + 63) / 64, 0);
    frames_.reserve(n);
  }
  partition_search(const partition_search&) = delete;
  auto operator=(const partition_search&) -> partition_search& = delete;
  ~partition_search() { meter_.release(charged_); }

  /// Searches for at most `max_steps` steps; adds the steps taken to `steps`.
  auto run(std::uint64_t max_steps, std::uint64_t& steps) -> status {
    std::uint64_t left = max_steps;
    while (true) {
      if (next_[0] == 0) return status::linearizable;  // every operation linearized
      if (failed_) return status::not_linearizable;
      if (left == 0) return status::running;
      --left;
      ++steps;
      if (entering_) {
        entering_ = false;
        if (take_read_only()) continue;
        cur_ = next_[0];
        continue;
      }
      const std::uint32_t e = cur_;
      if (!is_call(e)) {  // the first remaining return: nothing else may come next
        backtrack();
        continue;
      }
      const std::uint32_t i = op_of(e);
      cur_ = next_[e];
      if (read_only_[i]) continue;  // tried when this configuration was entered: it failed
      auto ns = M::step(st_, ops_[i]->input, ops_[i]->output);
      if (!ns) continue;
      set_bit(i);
      if (!visit(*ns)) {
        clear_bit(i);
        continue;
      }
      frames_.push_back(frame{i, false});
      saved_.push_back(std::move(st_));
      st_ = std::move(*ns);
      lift(i);
      entering_ = true;
    }
  }

  [[nodiscard]] auto explored() const noexcept -> std::uint64_t { return explored_; }
  [[nodiscard]] auto misses_full() const noexcept -> std::uint64_t { return misses_full_; }

 private:
  struct frame {
    std::uint32_t op;
    bool forced;  // a read-only operation taken without alternatives: its parent fails with it
  };
  struct cache_entry {
    std::uint64_t hash;
    std::uint32_t state;  // index into states_
    std::uint32_t lo;     // first bitset word stored
    std::uint32_t words;  // number of words stored
    std::uint32_t at;     // their offset in arena_
  };

  static auto is_call(std::uint32_t node) noexcept -> bool { return (node & 1U) == 1U; }
  static auto op_of(std::uint32_t node) noexcept -> std::uint32_t { return (node - 1) / 2; }
  static auto call_of(std::uint32_t op) noexcept -> std::uint32_t { return 2 * op + 1; }
  static auto ret_of(std::uint32_t op) noexcept -> std::uint32_t { return 2 * op + 2; }

  // Node 0 is the head of a circular list; op i has call node 2i+1 and return node 2i+2.
  void build_list() {
    const std::size_t n = ops_.size();
    struct event {
      std::uint64_t time;
      std::uint8_t rank;    // at equal times: returns, instantaneous calls, their returns, calls
      std::uint32_t entry;  // the list node (not named `node`: paxos::node is a class template)
    };
    std::vector<event> events;
    events.reserve(2 * n);
    for (std::size_t k = 0; k < n; ++k) {
      const auto i = static_cast<std::uint32_t>(k);
      const op_t& op = *ops_[k];
      const bool instant = op.call == op.ret;
      events.push_back({op.call, static_cast<std::uint8_t>(instant ? 1 : 3), call_of(i)});
      events.push_back({op.ret, static_cast<std::uint8_t>(instant ? 2 : 0), ret_of(i)});
    }
    std::sort(events.begin(), events.end(), [](const event& a, const event& b) {
      if (a.time != b.time) return a.time < b.time;
      if (a.rank != b.rank) return a.rank < b.rank;
      return a.entry < b.entry;
    });
    next_.assign(2 * n + 1, 0);
    prev_.assign(2 * n + 1, 0);
    std::uint32_t last = 0;
    for (const auto& ev : events) {
      next_[last] = ev.entry;
      prev_[ev.entry] = last;
      last = ev.entry;
    }
    next_[last] = 0;
    prev_[0] = last;
  }

  void unlink(std::uint32_t x) noexcept {
    next_[prev_[x]] = next_[x];
    prev_[next_[x]] = prev_[x];
  }
  void relink(std::uint32_t x) noexcept {
    next_[prev_[x]] = x;
    prev_[next_[x]] = x;
  }
  void lift(std::uint32_t op) noexcept {
    unlink(call_of(op));
    unlink(ret_of(op));
  }
  void unlift(std::uint32_t op) noexcept {
    relink(ret_of(op));
    relink(call_of(op));
  }

  void set_bit(std::uint32_t i) noexcept {
    const std::uint32_t w = i / 64;
    bits_[w] |= std::uint64_t{1} << (i % 64);
    zobrist_ ^= lin_mix(i + 0x9E3779B97F4A7C15ULL);
    hi_ = std::max(hi_, w + 1);
    while (lo_ < bits_.size() && bits_[lo_] == ~std::uint64_t{0}) ++lo_;
  }
  void clear_bit(std::uint32_t i) noexcept {
    const std::uint32_t w = i / 64;
    bits_[w] &= ~(std::uint64_t{1} << (i % 64));
    zobrist_ ^= lin_mix(i + 0x9E3779B97F4A7C15ULL);
    lo_ = std::min(lo_, w);
    while (hi_ > 0 && bits_[hi_ - 1] == 0) --hi_;
  }

  // Looks for a read-only operation that may come next and succeeds from the current state, and
  // takes it (or, when the configuration it leads to was searched already, fails this one).
  auto take_read_only() -> bool {
    for (std::uint32_t e = next_[0]; e != 0 && is_call(e); e = next_[e]) {
      const std::uint32_t i = op_of(e);
      if (!read_only_[i]) continue;
      auto ns = M::step(st_, ops_[i]->input, ops_[i]->output);
      if (!ns) continue;
      set_bit(i);
      if (!visit(st_)) {
        clear_bit(i);
        backtrack();  // the only child worth searching was searched: this configuration fails
        return true;
      }
      frames_.push_back(frame{i, true});
      lift(i);
      entering_ = true;
      return true;
    }
    return false;
  }

  // Undoes the last taken operation and resumes with the entry after it; a forced one fails its
  // parent configuration too, so undoing goes on.
  void backtrack() {
    while (true) {
      if (frames_.empty()) {
        failed_ = true;
        return;
      }
      const frame f = frames_.back();
      frames_.pop_back();
      clear_bit(f.op);
      unlift(f.op);
      if (f.forced) continue;
      st_ = std::move(saved_.back());
      saved_.pop_back();
      cur_ = next_[call_of(f.op)];
      return;
    }
  }

  // Grows `v` to hold `more` more elements, charging the meter for the new capacity.
  template <class T>
  auto make_room(std::vector<T>& v, std::size_t more) -> bool {
    if (v.size() + more <= v.capacity()) return true;
    const std::size_t cap = std::max({v.capacity() * 2, v.size() + more, std::size_t{16}});
    const std::size_t bytes = (cap - v.capacity()) * sizeof(T);
    if (!meter_.try_charge(bytes)) return false;
    charged_ += bytes;
    v.reserve(cap);
    return true;
  }

  // Finds the state's index in states_, or nullopt.
  auto find_state(const state_t& s, std::uint64_t h) const -> std::optional<std::uint32_t> {
    if (state_slots_.empty()) return std::nullopt;
    const std::size_t mask = state_slots_.size() - 1;
    for (std::size_t p = h & mask;; p = (p + 1) & mask) {
      const std::uint32_t id = state_slots_[p];
      if (id == 0) return std::nullopt;
      if (state_hashes_[id - 1] == h && states_[id - 1] == s) return id - 1;
    }
  }

  auto find_entry(std::uint64_t h, std::uint32_t state) const -> bool {
    if (slots_.empty()) return false;
    const std::uint32_t lo = lo_;
    const std::uint32_t words = hi_ > lo_ ? hi_ - lo_ : 0;
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t p = h & mask;; p = (p + 1) & mask) {
      const std::uint32_t id = slots_[p];
      if (id == 0) return false;
      const cache_entry& c = entries_[id - 1];
      if (c.hash == h && c.state == state && c.lo == lo && c.words == words &&
          std::equal(bits_.begin() + lo, bits_.begin() + lo + words, arena_.begin() + c.at))
        return true;
    }
  }

  // Rebuilds an open-addressing table of 1-based ids at twice the size, if the meter allows.
  template <class HashOf>
  auto grow_table(std::vector<std::uint32_t>& slots, std::size_t count, HashOf hash_of) -> bool {
    if ((count + 1) * 2 <= slots.size()) return true;
    const std::size_t size = std::max<std::size_t>(slots.size() * 2, 64);
    const std::size_t bytes = size * sizeof(std::uint32_t);
    if (!meter_.try_charge(bytes)) return false;
    std::vector<std::uint32_t> table(size, 0);
    for (std::uint32_t id = 1; id <= count; ++id) {
      std::size_t p = hash_of(id - 1) & (size - 1);
      while (table[p] != 0) p = (p + 1) & (size - 1);
      table[p] = id;
    }
    meter_.release(slots.size() * sizeof(std::uint32_t));
    charged_ += bytes;
    charged_ -= slots.size() * sizeof(std::uint32_t);
    slots = std::move(table);
    return true;
  }

  // The current linearized set with state `s` is being entered: false if it was entered before,
  // else true (and it is remembered while the cache has room).
  auto visit(const state_t& s) -> bool {
    const std::uint64_t sh = static_cast<std::uint64_t>(M::hash(s));
    auto known = find_state(s, sh);
    const std::uint64_t h = lin_mix(zobrist_ ^ lin_mix(sh + 0x632BE59BD9B4E019ULL));
    if (known && find_entry(h, *known)) return false;
    ++explored_;
    if (!remember(s, sh, known, h)) ++misses_full_;
    return true;
  }

  auto remember(const state_t& s, std::uint64_t sh, std::optional<std::uint32_t> known, std::uint64_t h) -> bool {
    if (meter_.limit == 0) return false;
    std::uint32_t state_id = 0;
    if (known) {
      state_id = *known;
    } else {
      state_t copy = s;
      const std::size_t heap = owned_bytes(copy);
      if (!make_room(states_, 1) || !make_room(state_hashes_, 1) ||
          !grow_table(state_slots_, states_.size(), [this](std::uint32_t id) { return state_hashes_[id]; }) ||
          !meter_.try_charge(heap))
        return false;
      charged_ += heap;
      state_id = static_cast<std::uint32_t>(states_.size());
      states_.push_back(std::move(copy));
      state_hashes_.push_back(sh);
      const std::size_t mask = state_slots_.size() - 1;
      std::size_t p = sh & mask;
      while (state_slots_[p] != 0) p = (p + 1) & mask;
      state_slots_[p] = state_id + 1;
    }
    const std::uint32_t words = hi_ > lo_ ? hi_ - lo_ : 0;
    if (arena_.size() + words > std::numeric_limits<std::uint32_t>::max() ||
        entries_.size() + 1 >= std::numeric_limits<std::uint32_t>::max())
      return false;
    if (!make_room(entries_, 1) || !make_room(arena_, words) ||
        !grow_table(slots_, entries_.size(), [this](std::uint32_t id) { return entries_[id].hash; }))
      return false;
    entries_.push_back(cache_entry{h, state_id, lo_, words, static_cast<std::uint32_t>(arena_.size())});
    arena_.insert(arena_.end(), bits_.begin() + lo_, bits_.begin() + lo_ + words);
    const std::size_t mask = slots_.size() - 1;
    std::size_t p = h & mask;
    while (slots_[p] != 0) p = (p + 1) & mask;
    slots_[p] = static_cast<std::uint32_t>(entries_.size());
    return true;
  }

  cache_meter& meter_;
  std::size_t charged_ = 0;  // bytes this search charged to meter_
  std::vector<const op_t*> ops_;
  std::vector<bool> read_only_;
  std::vector<std::uint32_t> next_, prev_;  // the entry list (node 0: head)

  state_t st_;                  // the state of the current configuration
  std::vector<frame> frames_;   // operations taken, in order
  std::vector<state_t> saved_;  // the state before each non-forced frame
  std::uint32_t cur_ = 0;       // the next entry to try in the current configuration
  bool entering_ = true;        // the current configuration has not been scanned for reads
  bool failed_ = false;

  std::vector<std::uint64_t> bits_;  // the linearized set
  std::uint32_t lo_ = 0;             // bits_[0, lo_) are all ones
  std::uint32_t hi_ = 0;             // bits_[hi_, end) are all zero
  std::uint64_t zobrist_ = 0;        // xor of one random word per linearized operation

  std::vector<cache_entry> entries_;
  std::vector<std::uint64_t> arena_;  // the bitset words of the entries
  std::vector<std::uint32_t> slots_;  // open addressing over entries_ (1-based ids, 0: empty)
  std::vector<state_t> states_;       // the distinct states of the entries
  std::vector<std::uint64_t> state_hashes_;
  std::vector<std::uint32_t> state_slots_;
  std::uint64_t explored_ = 0;
  std::uint64_t misses_full_ = 0;
};

}  // namespace internal

/// @brief Checks that a history is linearizable with respect to `Model`.
///
/// Wing & Gong's search with Lowe's cache of (linearized set, state), per partition of
/// `Model::partition`, with read-only operations taken without branching and partitions searched
/// round-robin (see the file comment). The first partition found not linearizable decides the
/// check; `unknown` comes only when a step, or time, limit ran out first.
///
/// @tparam Model a `linearizability_model`.
/// @tparam Clock a `time_source` for `options.time_limit` (default `steady_time`).
/// @param ops     the history (any order).
/// @param options the step, time and cache budgets (`check_options`).
/// @param clock   the time source read for `options.time_limit`.
/// @throws std::invalid_argument for `max_steps` or `slice_steps` of 0, or an operation whose
///         `ret` is before its `call`.
/// **Thread safety:** a pure function. **Complexity:** exponential in the worst case (the
/// problem is NP-complete); memory O(n) plus at most `max_cache_bytes` of cache.
///
/// @code
/// using namespace distkit::paxos::testing;
/// std::vector<history_op<kv_model::input, kv_model::output>> h;  // the recorded operations
/// auto r = check_linearizability<kv_model>(h, check_options{.max_steps = 10'000'000});
/// if (r.verdict == check_verdict::not_linearizable) std::cout << r.failed_partition;
/// @endcode
template <linearizability_model Model, time_source Clock = steady_time>
[[nodiscard]] auto check_linearizability(
    const std::vector<history_op<typename Model::input, typename Model::output>>& ops, const check_options& options,
    const Clock& clock = Clock{}) -> check_result {
  using op_t = history_op<typename Model::input, typename Model::output>;
  constexpr const char* who = "distkit::paxos::testing::check_linearizability: ";
  if (options.max_steps == 0) throw std::invalid_argument(std::string(who) + "max_steps must be > 0, got 0");
  if (options.slice_steps == 0) throw std::invalid_argument(std::string(who) + "slice_steps must be > 0, got 0");
  std::map<std::string, std::vector<const op_t*>> parts;
  for (const auto& op : ops) {
    if (op.ret < op.call)
      throw std::invalid_argument(std::string(who) + "an operation's ret must be >= its call, got call " +
                                  std::to_string(op.call) + " ret " + std::to_string(op.ret));
    parts[Model::partition(op.input)].push_back(&op);
  }
  const auto start = clock.now();
  const bool timed = options.time_limit > std::chrono::nanoseconds::zero();

  struct active {
    const std::string* key;
    const std::vector<const op_t*>* part;
    std::unique_ptr<internal::partition_search<Model>> search;  // made on its first turn
  };
  internal::cache_meter meter{options.max_cache_bytes};
  std::vector<active> queue;
  queue.reserve(parts.size());
  for (const auto& [key, part] : parts) queue.push_back(active{&key, &part, nullptr});

  check_result r;
  auto finish = [&](check_verdict v, const std::string& key) {
    r.verdict = v;
    r.failed_partition = key;
    r.peak_cache_bytes = meter.peak;
    for (const auto& a : queue) {
      if (a.search) {
        r.states_explored += a.search->explored();
        r.cache_misses_full += a.search->misses_full();
      }
    }
    return r;
  };
  while (!queue.empty()) {
    for (std::size_t k = 0; k < queue.size();) {
      if (r.steps >= options.max_steps || (timed && clock.now() - start >= options.time_limit))
        return finish(check_verdict::unknown, *queue.front().key);
      auto& a = queue[k];
      if (!a.search) a.search = std::make_unique<internal::partition_search<Model>>(*a.part, meter);
      const auto status = a.search->run(std::min(options.slice_steps, options.max_steps - r.steps), r.steps);
      if (status == internal::partition_search<Model>::status::not_linearizable)
        return finish(check_verdict::not_linearizable, *a.key);
      if (status == internal::partition_search<Model>::status::linearizable) {
        r.states_explored += a.search->explored();
        r.cache_misses_full += a.search->misses_full();
        queue.erase(queue.begin() + static_cast<std::ptrdiff_t>(k));  // frees its cache
        continue;
      }
      ++k;
    }
  }
  r.peak_cache_bytes = meter.peak;
  return r;
}

/// @brief `check_linearizability` with default limits (`check_options{}`), or at most
/// `max_steps` steps.
template <linearizability_model Model>
[[nodiscard]] auto check_linearizability(
    const std::vector<history_op<typename Model::input, typename Model::output>>& ops,
    std::uint64_t max_steps = check_options{}.max_steps) -> check_result {
  check_options options;
  options.max_steps = max_steps;
  return check_linearizability<Model>(ops, options);
}

/// @brief A string map, one partition per key: `get` reads, `put` writes, `append`
/// concatenates, `cas` swaps when the value equals `expected`. Keys start as "".
struct kv_model {
  enum class op : std::uint8_t { get, put, append, cas };
  struct input {
    op kind = op::get;
    std::string key;
    std::string value;     ///< put/append value; cas: the new value
    std::string expected;  ///< cas only
  };
  struct output {
    std::string value;     ///< get: the value read
    bool ok = true;        ///< cas: swapped
    bool unknown = false;  ///< the outcome is not known (a pending operation)
  };
  using state = std::string;
  static auto init() -> state { return {}; }
  static auto step(const state& s, const input& in, const output& out) -> std::optional<state> {
    switch (in.kind) {
      case op::get:
        if (out.unknown || out.value == s) return s;
        return std::nullopt;
      case op::put:
        return in.value;
      case op::append:
        return s + in.value;
      case op::cas:
        if (out.unknown) return s == in.expected ? in.value : s;
        if (out.ok) return s == in.expected ? std::optional<state>(in.value) : std::nullopt;
        return s != in.expected ? std::optional<state>(s) : std::nullopt;
    }
    return std::nullopt;
  }
  /// A get, and a cas known to have failed, never change the value.
  static auto read_only(const input& in, const output& out) -> bool {
    return in.kind == op::get || (in.kind == op::cas && !out.unknown && !out.ok);
  }
  static auto hash(const state& s) -> std::uint64_t { return xxh3_hash::bytes(s.data(), s.size()); }
  static auto partition(const input& in) -> std::string { return in.key; }
};

/// @brief One integer register that starts as nil, with read, write and compare-and-set (the
/// model of Jepsen's etcd test). A failed cas that did not take effect is best left out of the
/// history; a pending cas may swap when linearized.
struct register_model {
  enum class op : std::uint8_t { read, write, cas };
  struct input {
    op kind = op::read;
    std::int64_t a = 0;  ///< write: value; cas: expected
    std::int64_t b = 0;  ///< cas: new value
  };
  struct output {
    std::optional<std::int64_t> value;  ///< read: the value (nullopt = nil)
    bool ok = true;                     ///< cas: swapped
    bool unknown = false;
  };
  using state = std::optional<std::int64_t>;
  static auto init() -> state { return std::nullopt; }
  static auto step(const state& s, const input& in, const output& out) -> std::optional<state> {
    switch (in.kind) {
      case op::read:
        if (out.unknown || out.value == s) return s;
        return std::nullopt;
      case op::write:
        return state{in.a};
      case op::cas:
        if (out.unknown) return (s && *s == in.a) ? state{in.b} : s;
        if (out.ok) return (s && *s == in.a) ? std::optional<state>(state{in.b}) : std::nullopt;
        return !(s && *s == in.a) ? std::optional<state>(s) : std::nullopt;
    }
    return std::nullopt;
  }
  /// A read, and a cas known to have failed, never change the register.
  static auto read_only(const input& in, const output& out) -> bool {
    return in.kind == op::read || (in.kind == op::cas && !out.unknown && !out.ok);
  }
  static auto hash(const state& s) -> std::uint64_t {
    return s ? static_cast<std::uint64_t>(*s) * 0x9E3779B97F4A7C15ULL + 1 : 0;
  }
  static auto partition(const input&) -> std::string { return {}; }
};

static_assert(linearizability_model<kv_model>);
static_assert(linearizability_model<register_model>);

}  // namespace distkit::inline v0::paxos::testing

namespace distkit::inline v0::paxos {
// The checker's names as they were before it moved to paxos::testing (the simulator uses them).
using testing::check_linearizability;
using testing::check_options;
using testing::check_result;
using testing::check_verdict;
using testing::history_op;
using testing::kv_model;
using testing::linearizability_model;
using testing::pending_return;
using testing::register_model;
}  // namespace distkit::inline v0::paxos
