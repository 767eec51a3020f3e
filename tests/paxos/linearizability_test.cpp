// SPDX-License-Identifier: MIT
// tests/paxos/linearizability_test.cpp: the linearizability checker against labelled histories
// (Jepsen's etcd runs, Porcupine's kv logs up to 50 clients), generated hard histories, a
// brute-force oracle on small random ones, and its limits (steps, time, cache bytes).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "distkit/paxos/testing/linearizability.hpp"
#include "support/kv_history.hpp"
#include "support/linearizability_v0.hpp"
#include "support/seed.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define DISTKIT_LIN_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DISTKIT_LIN_SANITIZED 1
#endif
#endif
#ifndef DISTKIT_LIN_SANITIZED
#define DISTKIT_LIN_SANITIZED 0
#endif

namespace {

using namespace distkit::paxos::testing;
namespace fs = std::filesystem;

using kv_op = history_op<kv_model::input, kv_model::output>;
using reg_op = history_op<register_model::input, register_model::output>;

// A test data file: under DISTKIT_TESTDATA_DIR (data shared with other projects) or under the
// repository's tests/data (DISTKIT_REPO_TESTDATA_DIR). A file in neither fails the test.
auto testdata(const std::string& relative) -> fs::path {
  for (const char* root : {DISTKIT_TESTDATA_DIR, DISTKIT_REPO_TESTDATA_DIR}) {
    auto p = fs::path(root) / "linearizability" / relative;
    if (fs::exists(p)) return p;
  }
  FAIL("test data linearizability/" << relative << " is in neither " << DISTKIT_TESTDATA_DIR << " nor "
                                    << DISTKIT_REPO_TESTDATA_DIR);
  return {};
}

auto read_lines(const fs::path& p) -> std::vector<std::string> {
  std::ifstream in(p);
  INFO("reading " << p);
  REQUIRE(in.good());  // a missing file fails the test
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

auto read_kv(const std::string& name) -> std::vector<kv_op> {
  return distkit_test::read_kv_history(testdata("kv/" + name).string());
}

// Jepsen etcd log lines: "INFO  jepsen.util - P\t:type\t:f\tvalue".
auto parse_jepsen(const fs::path& p) -> std::vector<reg_op> {
  std::vector<reg_op> ops;
  std::vector<bool> drop;
  std::map<std::uint64_t, std::size_t> open;
  std::uint64_t t = 0;
  for (const auto& line : read_lines(p)) {
    auto at = line.find("jepsen.util - ");
    if (at == std::string::npos) continue;
    // Fields are separated by tabs in some logs and by runs of spaces in others; the value is
    // the rest of the line (a cas value "[1 2]" holds a space).
    std::vector<std::string> f(4);
    std::stringstream ss(line.substr(at + 14));
    ss >> f[0] >> f[1] >> f[2];
    std::getline(ss, f[3]);
    auto b = f[3].find_first_not_of(" \t");
    auto e = f[3].find_last_not_of(" \t\r");
    f[3] = b == std::string::npos ? std::string{} : f[3].substr(b, e - b + 1);
    if (f[0].empty() || !std::isdigit(static_cast<unsigned char>(f[0][0])) || f[1].empty()) continue;
    ++t;
    auto proc = std::stoull(f[0]);
    const auto& type = f[1];
    const auto& fn = f[2];
    const auto& val = f[3];
    if (type == ":invoke") {
      reg_op op;
      op.client = proc;
      op.call = t;
      if (fn == ":read") {
        op.input.kind = register_model::op::read;
      } else if (fn == ":write") {
        op.input.kind = register_model::op::write;
        op.input.a = std::stoll(val);
      } else if (fn == ":cas") {
        op.input.kind = register_model::op::cas;
        std::stringstream vs(val.substr(1, val.size() - 2));
        vs >> op.input.a >> op.input.b;
      } else {
        FAIL("unknown f " << fn);
      }
      op.output.unknown = true;
      open[proc] = ops.size();
      ops.push_back(op);
      drop.push_back(false);
    } else {
      REQUIRE(open.count(proc) == 1);
      auto i = open[proc];
      open.erase(proc);
      auto& op = ops[i];
      if (type == ":ok") {
        op.ret = t;
        op.output.unknown = false;
        if (op.input.kind == register_model::op::read) {
          if (val != "nil") op.output.value = std::stoll(val);
        }
        op.output.ok = true;
      } else if (type == ":fail") {
        drop[i] = true;  // did not take effect (a failed cas, a timed-out read)
      } else if (type == ":info") {
        // indeterminate: stays pending forever, may or may not have taken effect
      } else {
        FAIL("unknown type " << type);
      }
    }
  }
  std::vector<reg_op> kept;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    if (!drop[i]) kept.push_back(ops[i]);
  }
  return kept;
}

// Operation a precedes b in real time (the rule history_op documents).
template <class Op>
auto precedes(const Op& a, const Op& b) -> bool {
  if (a.ret == pending_return) return false;
  if (a.ret < b.call) return true;
  return a.ret == b.call && !(a.call == a.ret && b.call == b.ret);
}

// The oracle: every order of the whole history (no partitioning) that respects real time,
// each operation applied to the state of its partition.
template <class M>
auto brute_force(const std::vector<history_op<typename M::input, typename M::output>>& ops) -> bool {
  const std::size_t n = ops.size();
  std::map<std::string, typename M::state> init;
  for (const auto& op : ops) init.emplace(M::partition(op.input), M::init());
  std::vector<bool> used(n, false);
  auto search = [&](auto& self, std::size_t done, const std::map<std::string, typename M::state>& st) -> bool {
    if (done == n) return true;
    for (std::size_t i = 0; i < n; ++i) {
      if (used[i]) continue;
      bool ready = true;
      for (std::size_t j = 0; j < n && ready; ++j) ready = used[j] || j == i || !precedes(ops[j], ops[i]);
      if (!ready) continue;
      const auto key = M::partition(ops[i].input);
      auto next = M::step(st.at(key), ops[i].input, ops[i].output);
      if (!next) continue;
      auto st2 = st;
      st2[key] = *next;
      used[i] = true;
      const bool ok = self(self, done + 1, st2);
      used[i] = false;
      if (ok) return true;
    }
    return false;
  };
  return search(search, 0, init);
}

// Small random kv histories over two keys with ties, instantaneous and pending operations.
auto random_kv(std::mt19937_64& rng, bool allow_instant) -> std::vector<kv_op> {
  const std::vector<std::string> values{"", "1", "2", "a", "1a", "2a", "aa"};
  std::vector<kv_op> ops(1 + rng() % 7);
  for (auto& op : ops) {
    op.client = rng() % 4;
    op.input.key = rng() % 3 == 0 ? "y" : "x";
    op.call = rng() % 8;
    op.ret = op.call + (allow_instant ? rng() % 5 : 1 + rng() % 4);
    switch (rng() % 4) {
      case 0:
        op.input.kind = kv_model::op::get;
        op.output.value = values[rng() % values.size()];
        break;
      case 1:
        op.input.kind = kv_model::op::put;
        op.input.value = values[1 + rng() % 2];
        break;
      case 2:
        op.input.kind = kv_model::op::append;
        op.input.value = "a";
        break;
      default:
        op.input.kind = kv_model::op::cas;
        op.input.expected = values[rng() % 3];
        op.input.value = values[1 + rng() % 2];
        op.output.ok = rng() % 2 == 0;
        break;
    }
    if (rng() % 8 == 0) {
      op.ret = pending_return;
      op.output.unknown = true;
    }
  }
  return ops;
}

auto random_register(std::mt19937_64& rng, bool allow_instant) -> std::vector<reg_op> {
  std::vector<reg_op> ops(1 + rng() % 7);
  auto value = [&]() -> std::optional<std::int64_t> {
    const auto v = rng() % 4;
    return v == 3 ? std::nullopt : std::optional<std::int64_t>(static_cast<std::int64_t>(v));
  };
  for (auto& op : ops) {
    op.client = rng() % 4;
    op.call = rng() % 8;
    op.ret = op.call + (allow_instant ? rng() % 5 : 1 + rng() % 4);
    switch (rng() % 3) {
      case 0:
        op.input.kind = register_model::op::read;
        op.output.value = value();
        break;
      case 1:
        op.input.kind = register_model::op::write;
        op.input.a = static_cast<std::int64_t>(rng() % 3);
        break;
      default:
        op.input.kind = register_model::op::cas;
        op.input.a = static_cast<std::int64_t>(rng() % 3);
        op.input.b = static_cast<std::int64_t>(rng() % 3);
        op.output.ok = rng() % 2 == 0;
        break;
    }
    if (rng() % 8 == 0) {
      op.ret = pending_return;
      op.output.unknown = true;
    }
  }
  return ops;
}

auto to_bool(check_verdict v) -> bool {
  REQUIRE(v != check_verdict::unknown);
  return v == check_verdict::linearizable;
}

// A history with one key whose search is long (the c50-bad history's key "0", renamed
// `hard_key`) and one key with a plain stale read (`bad_key`): not linearizable, found through
// the second key.
auto hard_then_bad(const std::string& hard_key, const std::string& bad_key) -> std::vector<kv_op> {
  std::vector<kv_op> h;
  for (auto op : read_kv("c50-bad.txt")) {
    if (op.input.key != "0") continue;
    op.input.key = hard_key;
    h.push_back(op);
  }
  const std::uint64_t end = 100000;
  h.push_back(kv_op{900, {kv_model::op::put, bad_key, "1", ""}, {}, end, end + 1});
  h.push_back(kv_op{901, {kv_model::op::get, bad_key, "", ""}, {"", true, false}, end + 2, end + 3});
  return h;
}

}  // namespace

TEST_CASE("paxos linearizability checker matches every label of the Jepsen etcd histories",
          "[paxos][linearizability]") {
  const auto labels = read_lines(testdata("jepsen-etcd/labels.csv"));
  REQUIRE(labels.size() > 1);
  std::size_t checked = 0, good = 0;
  for (std::size_t i = 1; i < labels.size(); ++i) {
    if (labels[i].empty()) continue;
    auto comma = labels[i].find(',');
    REQUIRE(comma != std::string::npos);
    auto file = labels[i].substr(0, comma);
    bool expected = labels[i].substr(comma + 1) == "true";
    auto ops = parse_jepsen(testdata("jepsen-etcd/" + file));
    REQUIRE(!ops.empty());
    auto r = check_linearizability<register_model>(ops);
    INFO(file << ": expected " << expected << ", explored " << r.states_explored);
    REQUIRE(r.verdict != check_verdict::unknown);
    CHECK(r.ok() == expected);
    ++checked;
    good += expected ? 1 : 0;
  }
  CHECK(checked >= 50);
  CHECK(good > 0);
  CHECK(good < checked);
}

TEST_CASE("paxos linearizability checker decides Porcupine's kv histories of 1, 10 and 50 clients",
          "[paxos][linearizability]") {
  for (const char* name : {"c01-ok.txt", "c01-bad.txt", "c10-ok.txt", "c10-bad.txt", "c50-ok.txt", "c50-bad.txt"}) {
    auto ops = read_kv(name);
    REQUIRE(ops.size() > 10);
    auto r = check_linearizability<kv_model>(ops);
    const bool expected = std::string(name).find("-ok") != std::string::npos;
    INFO(name << ": explored " << r.states_explored << ", steps " << r.steps << ", partition " << r.failed_partition
              << ", peak cache " << r.peak_cache_bytes << " B");
    REQUIRE(r.verdict != check_verdict::unknown);
    CHECK(r.ok() == expected);
    // Far from the limits: a few hundred thousand steps and a few MiB at most.
    CHECK(r.steps < 2'000'000);
    CHECK(r.peak_cache_bytes < (std::size_t{32} << 20));
  }
}

TEST_CASE("paxos linearizability checker decides the 50-client histories within a 4 MiB cache",
          "[paxos][linearizability]") {
  check_options small;
  small.max_cache_bytes = std::size_t{4} << 20;
  for (const char* name : {"c50-ok.txt", "c50-bad.txt"}) {
    auto r = check_linearizability<kv_model>(read_kv(name), small);
    INFO(name << ": peak cache " << r.peak_cache_bytes << " B, explored " << r.states_explored);
    REQUIRE(r.verdict != check_verdict::unknown);
    CHECK(r.ok() == (std::string(name).find("-ok") != std::string::npos));
    CHECK(r.peak_cache_bytes <= small.max_cache_bytes);
    CHECK(r.peak_cache_bytes > 0);
  }
}

TEST_CASE("paxos linearizability checker keeps its cache within max_cache_bytes on a search that outgrows it",
          "[paxos][linearizability]") {
  // c50-bad's key "0" alone: a search of millions of configurations.
  std::vector<kv_op> h;
  for (const auto& op : read_kv("c50-bad.txt")) {
    if (op.input.key == "0") h.push_back(op);
  }
  for (const std::size_t limit : {std::size_t{0}, std::size_t{64} << 10, std::size_t{1} << 20}) {
    check_options o;
    o.max_steps = 400'000;
    o.max_cache_bytes = limit;
    auto r = check_linearizability<kv_model>(h, o);
    INFO("limit " << limit << ": peak " << r.peak_cache_bytes << ", uncached " << r.cache_misses_full);
    CHECK(r.verdict == check_verdict::unknown);
    CHECK(r.failed_partition == "0");
    CHECK(r.steps == o.max_steps);  // exactly the budget, never more
    CHECK(r.peak_cache_bytes <= limit);
    CHECK(r.cache_misses_full > 0);  // the cache was full, and the search went on without it
  }
}

TEST_CASE("paxos linearizability checker finds a failing key behind a key whose search is long",
          "[paxos][linearizability]") {
  // Key order puts the long search first ("a" < "b") and last ("z" > "b"): either way the bad
  // key decides the check, well inside a budget the long key alone exhausts.
  check_options o;
  o.max_steps = 400'000;
  for (const auto& [hard, bad] : {std::pair<std::string, std::string>{"a", "b"}, {"z", "b"}}) {
    auto h = hard_then_bad(hard, bad);
    auto r = check_linearizability<kv_model>(h, o);
    INFO("hard key " << hard << ": steps " << r.steps);
    CHECK(r.verdict == check_verdict::not_linearizable);
    CHECK(r.failed_partition == bad);
    // The previous search checked partitions one after another and spent the budget on "a".
    if (hard == "a")
      CHECK(distkit_test::v0::check_linearizability<kv_model>(h, o.max_steps).verdict == check_verdict::unknown);
  }
}

TEST_CASE("paxos linearizability checker takes concurrent reads without branching over their orders",
          "[paxos][linearizability]") {
  // 24 concurrent gets that read "" and one that reads a value nobody wrote: refuting it means
  // searching every configuration. Branching over the order of the reads gives 2^24 of them;
  // taking each read as soon as it may go gives a handful.
  std::vector<kv_op> h;
  for (std::uint64_t c = 0; c < 24; ++c)
    h.push_back(kv_op{c, {kv_model::op::get, "k", "", ""}, {"", true, false}, c, 100 + c});
  h.push_back(kv_op{99, {kv_model::op::get, "k", "", ""}, {"never written", true, false}, 5, 150});
  h.push_back(kv_op{98, {kv_model::op::put, "k", "1", ""}, {}, 50, 60});
  check_options o;
  o.max_steps = 1'000'000;
  auto r = check_linearizability<kv_model>(h, o);
  INFO("explored " << r.states_explored << ", steps " << r.steps);
  CHECK(r.verdict == check_verdict::not_linearizable);
  CHECK(r.states_explored < 200);
  // The same reads with the put: linearizable.
  h[24].output.value = "1";
  CHECK(check_linearizability<kv_model>(h, o).verdict == check_verdict::linearizable);
}

TEST_CASE("paxos linearizability checker answers unknown when its time limit passes", "[paxos][linearizability]") {
  // A clock that moves 1 ms each time it is read: the check reads it between slices.
  struct ticking_clock {
    using duration = std::chrono::nanoseconds;
    using time_point = std::chrono::time_point<ticking_clock, duration>;
    std::shared_ptr<std::int64_t> reads = std::make_shared<std::int64_t>(0);
    [[nodiscard]] auto now() const noexcept -> time_point { return time_point(std::chrono::milliseconds(++*reads)); }
  };
  std::vector<kv_op> h;
  for (const auto& op : read_kv("c50-bad.txt")) {
    if (op.input.key == "0") h.push_back(op);
  }
  check_options o;
  o.time_limit = std::chrono::milliseconds(10);
  o.slice_steps = 1000;
  ticking_clock clock;
  auto r = check_linearizability<kv_model>(h, o, clock);
  CHECK(r.verdict == check_verdict::unknown);
  CHECK(r.failed_partition == "0");
  CHECK(r.steps >= 8 * o.slice_steps);
  CHECK(r.steps <= 10 * o.slice_steps);
  // A history decided before the limit is decided.
  o.time_limit = std::chrono::seconds(1);
  auto ok = check_linearizability<kv_model>(read_kv("c01-ok.txt"), o, ticking_clock{});
  INFO("c01-ok: steps " << ok.steps);
  CHECK(ok.ok());
}

TEST_CASE("paxos linearizability checker refuses invalid limits and operations", "[paxos][linearizability]") {
  std::vector<kv_op> h{{1, {kv_model::op::put, "k", "1", ""}, {}, 1, 2}};
  check_options o;
  o.max_steps = 0;
  CHECK_THROWS_WITH(check_linearizability<kv_model>(h, o),
                    "distkit::paxos::testing::check_linearizability: max_steps must be > 0, got 0");
  o = check_options{};
  o.slice_steps = 0;
  CHECK_THROWS_AS(check_linearizability<kv_model>(h, o), std::invalid_argument);
  h[0].ret = 0;
  CHECK_THROWS_WITH(check_linearizability<kv_model>(h),
                    "distkit::paxos::testing::check_linearizability: an operation's ret must be >= its call, got "
                    "call 1 ret 0");
}

TEST_CASE("paxos linearizability checker decides small hand-made histories", "[paxos][linearizability]") {
  using in = kv_model::input;
  using out = kv_model::output;
  // put x=1 completes, then a get returns "" : stale read, not linearizable.
  std::vector<kv_op> h{{1, in{kv_model::op::put, "k", "1", ""}, out{}, 1, 2},
                       {2, in{kv_model::op::get, "k", "", ""}, out{"", true, false}, 3, 4}};
  CHECK_FALSE(check_linearizability<kv_model>(h).ok());
  // Overlapping: the get may precede the put.
  h[1].call = 1;
  CHECK(check_linearizability<kv_model>(h).ok());
  // Returned at 2, invoked at 2: the put precedes the get.
  h[1].call = 2;
  CHECK_FALSE(check_linearizability<kv_model>(h).ok());
  // Two instantaneous operations at the same time are concurrent.
  h = {{1, in{kv_model::op::put, "k", "1", ""}, out{}, 2, 2}, {2, in{kv_model::op::get, "k", "", ""}, out{}, 2, 2}};
  CHECK(check_linearizability<kv_model>(h).ok());
  // A pending put may take effect: a later get of "1" is fine.
  h = {{1, in{kv_model::op::put, "k", "1", ""}, out{"", true, true}, 1, pending_return},
       {2, in{kv_model::op::get, "k", "", ""}, out{"1", true, false}, 3, 4}};
  CHECK(check_linearizability<kv_model>(h).ok());
  // cas success requires the expected value.
  h = {{1, in{kv_model::op::cas, "k", "2", "x"}, out{"", true, false}, 1, 2}};
  CHECK_FALSE(check_linearizability<kv_model>(h).ok());
  h[0].input.expected = "";
  CHECK(check_linearizability<kv_model>(h).ok());
  // An empty history.
  CHECK(check_linearizability<kv_model>(std::vector<kv_op>{}).ok());
  // Options as the README passes them.
  h = {{1, in{kv_model::op::put, "k", "1", ""}, out{}, 1, 2}, {2, in{kv_model::op::get, "k", "", ""}, out{"1"}, 3, 4}};
  auto r = check_linearizability<kv_model>(h, {.max_steps = 10'000'000, .max_cache_bytes = 64 << 20});
  CHECK(r.verdict == check_verdict::linearizable);
  CHECK(r.failed_partition.empty());
}

TEST_CASE(
    "paxos linearizability checker agrees with a brute-force oracle and the previous search on random small histories",
    "[paxos][linearizability]") {
  const auto seed = distkit_test::test_seed("linearizability brute force");
  std::mt19937_64 rng(seed);
  check_options no_cache;
  no_cache.max_cache_bytes = 0;
  check_options tiny_slices;
  tiny_slices.slice_steps = 1;
  std::size_t yes = 0, no = 0;
  for (int round = 0; round < 3000; ++round) {
    const bool instant = round % 2 == 0;  // the previous search orders instantaneous operations differently
    INFO("seed " << seed << " round " << round);
    auto kv = random_kv(rng, instant);
    const bool expect_kv = brute_force<kv_model>(kv);
    CHECK(to_bool(check_linearizability<kv_model>(kv).verdict) == expect_kv);
    CHECK(to_bool(check_linearizability<kv_model>(kv, no_cache).verdict) == expect_kv);
    CHECK(to_bool(check_linearizability<kv_model>(kv, tiny_slices).verdict) == expect_kv);
    if (!instant) CHECK(to_bool(distkit_test::v0::check_linearizability<kv_model>(kv).verdict) == expect_kv);
    auto reg = random_register(rng, instant);
    const bool expect_reg = brute_force<register_model>(reg);
    CHECK(to_bool(check_linearizability<register_model>(reg).verdict) == expect_reg);
    CHECK(to_bool(check_linearizability<register_model>(reg, no_cache).verdict) == expect_reg);
    if (!instant) CHECK(to_bool(distkit_test::v0::check_linearizability<register_model>(reg).verdict) == expect_reg);
    (expect_kv ? yes : no) += 1;
    (expect_reg ? yes : no) += 1;
  }
  // Both verdicts are common, so neither side of the comparison is idle.
  CHECK(yes > 1000);
  CHECK(no > 1000);
}

TEST_CASE("paxos linearizability checker decides generated 50-client histories, linearizable and with one stale read",
          "[paxos][linearizability]") {
  const auto seed = distkit_test::test_seed("linearizability generated 50 clients");
  // 50 clients on 10 keys, 40 operations each (the shape of Porcupine's c50 histories, 2,000
  // operations, up to ~12 at once on a key).
  // Sanitizer builds run one seed (each takes a few CPU seconds there), release builds three.
  const distkit_test::kv_history_shape shape;
  const std::uint64_t seeds = DISTKIT_LIN_SANITIZED ? 1 : 3;
  for (std::uint64_t k = 0; k < seeds; ++k) {
    INFO("seed " << seed + k);
    auto ok = distkit_test::generate_kv_history(seed + k, shape, false);
    auto r = check_linearizability<kv_model>(ok.ops);
    INFO("linearizable one: steps " << r.steps << ", explored " << r.states_explored);
    CHECK(r.verdict == check_verdict::linearizable);
    auto bad = distkit_test::generate_kv_history(seed + k, shape, true);
    REQUIRE(bad.perturbed);
    auto rb = check_linearizability<kv_model>(bad.ops);
    INFO("stale read at op " << bad.perturbed_op << " key " << bad.ops[bad.perturbed_op].input.key << ": steps "
                             << rb.steps << ", explored " << rb.states_explored);
    CHECK(rb.verdict == check_verdict::not_linearizable);
    CHECK(rb.failed_partition == bad.ops[bad.perturbed_op].input.key);
  }
}
