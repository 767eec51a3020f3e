// SPDX-License-Identifier: MIT
// tests/support/linearizability_v0.hpp: the linearizability search distkit shipped before
// distkit/paxos/testing/linearizability.hpp (one partition after another, the whole bitset hashed
// and stored per cache entry, no read-only reduction, no memory limit). Kept as a second opinion
// for the randomised tests and as the "before" of benchmarks/linearizability_bench.cpp; it uses
// the models and history types of the new header.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "distkit/hash.hpp"
#include "distkit/paxos/testing/linearizability.hpp"

namespace distkit_test::v0 {

using distkit::xxh3_hash;
using distkit::paxos::testing::check_result;
using distkit::paxos::testing::check_verdict;
using distkit::paxos::testing::history_op;
using distkit::paxos::testing::linearizability_model;

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

/// Checks `ops` partition by partition in key order; `unknown` after `budget` steps.
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

}  // namespace distkit_test::v0
