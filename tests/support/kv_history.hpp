// SPDX-License-Identifier: MIT
// tests/support/kv_history.hpp: key-value histories for the linearizability checker: a reader
// of the EDN-like logs of Porcupine's test data, and a seeded generator of hard ones (many
// clients on few keys, overlapping operations, some of them long), linearizable by construction
// or made non-linearizable by one stale read.
#pragma once

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "distkit/paxos/testing/linearizability.hpp"

namespace distkit_test {

using kv_history_op = distkit::paxos::testing::history_op<distkit::paxos::testing::kv_model::input,
                                                          distkit::paxos::testing::kv_model::output>;

namespace detail {

// The field `:name value` of an EDN-like map line, without quotes; "nil" stays "nil".
inline auto edn_field(const std::string& line, const std::string& name) -> std::string {
  const auto k = line.find(":" + name + " ");
  if (k == std::string::npos) throw std::runtime_error("no :" + name + " in: " + line);
  const auto start = k + name.size() + 2;
  if (line[start] == '"') {
    const auto end = line.find('"', start + 1);
    if (end == std::string::npos) throw std::runtime_error("unterminated string in: " + line);
    return line.substr(start + 1, end - start - 1);
  }
  const auto end = line.find_first_of(",}", start);
  return line.substr(start, end - start);
}

}  // namespace detail

/// Reads a history of lines `{:process P, :type :invoke|:ok, :f :get|:put|:append, :key "K",
/// :value "V"|nil}`, one time unit per line. An invocation never completed stays pending.
inline auto read_kv_history(const std::string& path) -> std::vector<kv_history_op> {
  using distkit::paxos::testing::kv_model;
  std::ifstream in(path);
  if (!in.good()) throw std::runtime_error("cannot read " + path);
  std::vector<kv_history_op> ops;
  std::map<std::uint64_t, std::size_t> open;
  std::uint64_t t = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.find(":process") == std::string::npos) continue;
    ++t;
    const auto proc = std::stoull(detail::edn_field(line, "process"));
    const auto type = detail::edn_field(line, "type");
    const auto f = detail::edn_field(line, "f");
    const auto value = detail::edn_field(line, "value");
    if (type == ":invoke") {
      if (open.count(proc) != 0) throw std::runtime_error("two open calls of process " + std::to_string(proc));
      kv_history_op op;
      op.client = proc;
      op.call = t;
      op.input.key = detail::edn_field(line, "key");
      if (f == ":get") {
        op.input.kind = kv_model::op::get;
      } else if (f == ":put") {
        op.input.kind = kv_model::op::put;
      } else if (f == ":append") {
        op.input.kind = kv_model::op::append;
      } else {
        throw std::runtime_error("unknown :f " + f);
      }
      if (value != "nil") op.input.value = value;
      op.output.unknown = true;
      open[proc] = ops.size();
      ops.push_back(op);
    } else if (type == ":ok") {
      const auto it = open.find(proc);
      if (it == open.end()) throw std::runtime_error("a return without a call, process " + std::to_string(proc));
      auto& op = ops[it->second];
      op.ret = t;
      op.output.unknown = false;
      if (op.input.kind == kv_model::op::get) op.output.value = value == "nil" ? "" : value;
      open.erase(it);
    } else {
      throw std::runtime_error("unknown :type " + type);
    }
  }
  return ops;
}

/// Shape of a generated history.
struct kv_history_shape {
  int clients = 50;
  int keys = 10;
  int ops_per_client = 40;
  int get_percent = 50;  ///< the rest: appends, and `put_percent` puts
  int put_percent = 5;
  int long_op_percent = 3;  ///< operations that last ~30x longer than the others
  int pending_percent = 1;  ///< operations whose return is lost (they still take effect)
};

/// A generated history and, for a perturbed one, which operation was changed.
struct kv_generated {
  std::vector<kv_history_op> ops;
  bool perturbed = false;
  std::size_t perturbed_op = 0;
};

/// @brief A seeded kv history that is linearizable by construction: every operation takes
/// effect at a random instant strictly inside its interval, and reads return the value at that
/// instant. Written values are unique ("p<n>;" for puts, "a<n>;" for appends).
///
/// With `perturb`, one completed get is then made to return a stale value: the value right after
/// a write w, where another write w2 on the key began after w returned and returned before the
/// get began. Every linearization orders w < w2 < get, and no state after w2 equals the one
/// right after w (w2's token, or a later put's, is in every later state; the put token that
/// begins the old value cannot come back after w2), so the result is not linearizable. When no
/// get has such a pair, `perturbed` stays false.
inline auto generate_kv_history(std::uint64_t seed, const kv_history_shape& shape, bool perturb) -> kv_generated {
  using distkit::paxos::testing::kv_model;
  std::mt19937_64 rng(seed);
  auto pct = [&](int p) { return static_cast<int>(rng() % 100) < p; };
  struct timed {
    kv_history_op op;
    double at;  // when it takes effect
  };
  std::vector<timed> all;
  std::uint64_t token = 0;
  for (int c = 0; c < shape.clients; ++c) {
    std::uint64_t t = rng() % 20;
    for (int k = 0; k < shape.ops_per_client; ++k) {
      kv_history_op op;
      op.client = static_cast<std::uint64_t>(c);
      op.input.key = std::to_string(rng() % static_cast<std::uint64_t>(shape.keys));
      const int roll = static_cast<int>(rng() % 100);
      if (roll < shape.get_percent) {
        op.input.kind = kv_model::op::get;
      } else if (roll < shape.get_percent + shape.put_percent) {
        op.input.kind = kv_model::op::put;
        op.input.value = "p" + std::to_string(++token) + ";";
      } else {
        op.input.kind = kv_model::op::append;
        op.input.value = "a" + std::to_string(++token) + ";";
      }
      std::uint64_t duration = 1 + rng() % 12;
      if (pct(shape.long_op_percent)) duration *= 30;
      op.call = t;
      op.ret = t + duration;
      std::uniform_real_distribution<double> inside(0.0, 1.0);
      double f = inside(rng);
      while (f <= 0.0) f = inside(rng);
      const double at = static_cast<double>(op.call) + f * static_cast<double>(duration);
      all.push_back(timed{op, at});
      t = op.ret + 1 + rng() % 10;
    }
  }
  std::sort(all.begin(), all.end(), [](const timed& a, const timed& b) { return a.at < b.at; });
  std::map<std::string, std::string> value;    // per key, as the operations take effect
  std::vector<std::string> after(all.size());  // each write's key value right after it
  for (std::size_t i = 0; i < all.size(); ++i) {
    auto& op = all[i].op;
    auto& v = value[op.input.key];
    if (op.input.kind == kv_model::op::get) op.output.value = v;
    v = *kv_model::step(v, op.input, op.output);
    after[i] = v;
  }
  kv_generated g;
  // A client's last operation may lose its return; it took effect all the same.
  std::vector<bool> last(all.size(), false);
  {
    std::map<std::uint64_t, std::size_t> latest;
    for (std::size_t i = 0; i < all.size(); ++i) {
      auto it = latest.find(all[i].op.client);
      if (it == latest.end() || all[it->second].op.call < all[i].op.call) latest[all[i].op.client] = i;
    }
    for (const auto& [client, i] : latest) last[i] = true;
  }
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (last[i] && pct(shape.pending_percent)) {
      all[i].op.ret = distkit::paxos::testing::pending_return;
      all[i].op.output = kv_model::output{"", true, true};
    }
  }
  if (perturb) {
    std::vector<std::size_t> gets;
    for (std::size_t i = 0; i < all.size(); ++i) {
      if (all[i].op.input.kind == kv_model::op::get && all[i].op.ret != distkit::paxos::testing::pending_return)
        gets.push_back(i);
    }
    std::shuffle(gets.begin(), gets.end(), rng);
    for (const std::size_t gi : gets) {
      const auto& get = all[gi].op;
      // w2: the write on the key that returned last before the get began; w: the write that
      // returned last before w2 began.
      std::optional<std::size_t> w2, w;
      for (std::size_t i = 0; i < all.size(); ++i) {
        const auto& o = all[i].op;
        if (o.input.key != get.input.key || o.input.kind == kv_model::op::get || o.ret >= get.call) continue;
        if (!w2 || all[*w2].op.ret < o.ret) w2 = i;
      }
      if (!w2) continue;
      for (std::size_t i = 0; i < all.size(); ++i) {
        const auto& o = all[i].op;
        if (o.input.key != get.input.key || o.input.kind == kv_model::op::get || o.ret >= all[*w2].op.call) continue;
        if (!w || all[*w].op.ret < o.ret) w = i;
      }
      if (!w) continue;
      all[gi].op.output.value = after[*w];
      g.perturbed = true;
      g.perturbed_op = gi;
      break;
    }
  }
  g.ops.reserve(all.size());
  for (auto& x : all) g.ops.push_back(std::move(x.op));
  return g;
}

}  // namespace distkit_test
