// SPDX-License-Identifier: MIT
// distkit/paxos/linearizability.hpp: a Wing & Gong linearizability checker with memoisation and
// per-key partitioning (P-compositionality), with key-value and register models.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "distkit/hash.hpp"

namespace distkit::inline v0::paxos {

/// The time of the return of an operation that never completed: it may take effect at any
/// point after its call, or never.
inline constexpr std::uint64_t pending_return = std::numeric_limits<std::uint64_t>::max();

/// One operation of a history. `call` < `ret` in a common time base; `ret == pending_return`
/// for an operation with no known outcome (its `output` should then say "unknown").
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
template <class M>
concept linearizability_model = requires(const typename M::state& s, const typename M::input& in,
                                         const typename M::output& out) {
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
  unknown,  ///< the step budget ran out
};

/// The result of `check_linearizability`.
struct check_result {
  check_verdict verdict = check_verdict::linearizable;
  std::string failed_partition;  ///< the first partition that is not linearizable
  std::uint64_t states_explored = 0;
  [[nodiscard]] auto ok() const noexcept -> bool { return verdict == check_verdict::linearizable; }
};

namespace detail {

template <linearizability_model M>
auto check_partition(const std::vector<const history_op<typename M::input, typename M::output>*>& ops,
                     std::uint64_t& budget, std::uint64_t& explored) -> check_verdict {
  using state_t = typename M::state;
  const std::size_t n = ops.size();
  if (n == 0) return check_verdict::linearizable;
  // Events: node 0 is the head; call of op i is node 1 + 2i, its return node 2 + 2i.
  struct event {
    std::uint64_t time;
    int rank;  // at equal times: returns (0) before calls (1); an instantaneous op's return last (2)
    std::size_t node;
  };
  std::vector<event> events;
  events.reserve(2 * n);
  for (std::size_t i = 0; i < n; ++i) {
    events.push_back({ops[i]->call, 1, 1 + 2 * i});
    events.push_back({std::max(ops[i]->ret, ops[i]->call), ops[i]->ret <= ops[i]->call ? 2 : 0, 2 + 2 * i});
  }
  // An operation that returned at t precedes one invoked at t (the stricter order).
  std::stable_sort(events.begin(), events.end(), [](const event& a, const event& b) {
    if (a.time != b.time) return a.time < b.time;
    return a.rank < b.rank;
  });
  const std::size_t nil = 2 * n + 1;
  std::vector<std::size_t> next(2 * n + 2, nil), prev(2 * n + 2, nil);
  std::size_t last = 0;
  for (const auto& e : events) {
    next[last] = e.node;
    prev[e.node] = last;
    last = e.node;
  }
  next[last] = nil;
  auto is_call = [](std::size_t node) { return node % 2 == 1; };
  auto op_of = [](std::size_t node) { return (node - 1) / 2; };
  auto ret_of = [](std::size_t call) { return call + 1; };
  auto unlink = [&](std::size_t x) {
    next[prev[x]] = next[x];
    if (next[x] != nil) prev[next[x]] = prev[x];
  };
  auto relink = [&](std::size_t x) {
    next[prev[x]] = x;
    if (next[x] != nil) prev[next[x]] = x;
  };

  const std::size_t words = (n + 63) / 64;
  std::vector<std::uint64_t> bits(words, 0);
  auto bits_hash = [&]() { return xxh3_hash::bytes(bits.data(), bits.size() * sizeof(std::uint64_t)); };
  struct cached {
    std::vector<std::uint64_t> bits;
    state_t st;
  };
  std::unordered_map<std::uint64_t, std::vector<cached>> cache;
  struct frame {
    std::size_t call;
    state_t st;
  };
  std::vector<frame> stack;
  state_t st = M::init();
  std::size_t e = next[0];
  while (true) {
    if (next[0] == nil) return check_verdict::linearizable;
    if (budget == 0) return check_verdict::unknown;
    --budget;
    if (e == nil) return check_verdict::not_linearizable;  // unreachable: a return ends every list
    if (is_call(e)) {
      std::size_t i = op_of(e);
      auto ns = M::step(st, ops[i]->input, ops[i]->output);
      if (ns) {
        bits[i / 64] |= std::uint64_t{1} << (i % 64);
        std::uint64_t h = bits_hash() ^ (M::hash(*ns) * 0x9E3779B97F4A7C15ULL);
        auto& bucket = cache[h];
        bool seen =
            std::any_of(bucket.begin(), bucket.end(), [&](const cached& c) { return c.bits == bits && c.st == *ns; });
        if (!seen) {
          ++explored;
          bucket.push_back(cached{bits, *ns});
          stack.push_back(frame{e, std::move(st)});
          st = std::move(*ns);
          unlink(e);
          unlink(ret_of(e));
          e = next[0];
          continue;
        }
        bits[i / 64] &= ~(std::uint64_t{1} << (i % 64));
      }
      e = next[e];
    } else {
      if (stack.empty()) return check_verdict::not_linearizable;
      auto f = std::move(stack.back());
      stack.pop_back();
      st = std::move(f.st);
      std::size_t i = op_of(f.call);
      bits[i / 64] &= ~(std::uint64_t{1} << (i % 64));
      relink(ret_of(f.call));
      relink(f.call);
      e = next[f.call];
    }
  }
}

}  // namespace detail

/// @brief Checks that a history is linearizable with respect to `Model` (Wing & Gong's search
/// with Lowe's memoisation of (linearized set, state), per partition).
///
/// @param ops     the history (any order).
/// @param budget  maximum search steps over all partitions before answering `unknown`.
/// **Thread safety:** a pure function. **Complexity:** exponential in the worst case; the
/// cache makes typical histories near-linear per partition.
///
/// @code
/// std::vector<history_op<kv_model::input, kv_model::output>> h = ...;
/// auto r = check_linearizability<kv_model>(h);
/// @endcode
template <linearizability_model Model>
[[nodiscard]] auto check_linearizability(
    const std::vector<history_op<typename Model::input, typename Model::output>>& ops,
    std::uint64_t budget = 50'000'000) -> check_result {
  std::map<std::string, std::vector<const history_op<typename Model::input, typename Model::output>*>> parts;
  for (const auto& op : ops) parts[Model::partition(op.input)].push_back(&op);
  check_result r;
  for (const auto& [key, part] : parts) {
    auto v = detail::check_partition<Model>(part, budget, r.states_explored);
    if (v != check_verdict::linearizable) {
      r.verdict = v;
      r.failed_partition = key;
      return r;
    }
  }
  return r;
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
  static auto hash(const state& s) -> std::uint64_t {
    return s ? static_cast<std::uint64_t>(*s) * 0x9E3779B97F4A7C15ULL + 1 : 0;
  }
  static auto partition(const input&) -> std::string { return {}; }
};

static_assert(linearizability_model<kv_model>);
static_assert(linearizability_model<register_model>);

}  // namespace distkit::inline v0::paxos
