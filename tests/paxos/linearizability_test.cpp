// SPDX-License-Identifier: MIT
// tests/paxos/linearizability_test.cpp: the checker against labelled histories from Jepsen/etcd.
#include <catch2/catch.hpp>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "distkit/paxos/linearizability.hpp"

namespace {

using namespace distkit::paxos;
namespace fs = std::filesystem;

using kv_op = history_op<kv_model::input, kv_model::output>;
using reg_op = history_op<register_model::input, register_model::output>;

auto testdata() -> fs::path { return fs::path(DISTKIT_TESTDATA_DIR) / "linearizability"; }

auto read_lines(const fs::path& p) -> std::vector<std::string> {
  std::ifstream in(p);
  INFO("reading " << p);
  REQUIRE(in.good());  // a missing file fails the test
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

// Field of an EDN-like map line: `:name value` up to the next ", :" or "}".
auto edn_field(const std::string& line, const std::string& name) -> std::string {
  auto k = line.find(":" + name + " ");
  if (k == std::string::npos) return {};
  auto start = k + name.size() + 2;
  if (line[start] == '"') {
    auto end = line.find('"', start + 1);
    return line.substr(start, end - start + 1);
  }
  auto end = line.find_first_of(",}", start);
  return line.substr(start, end - start);
}
auto unquote(const std::string& s) -> std::string {
  return s.size() >= 2 && s.front() == '"' ? s.substr(1, s.size() - 2) : s;
}

auto parse_kv(const fs::path& p) -> std::vector<kv_op> {
  std::vector<kv_op> ops;
  std::map<std::uint64_t, std::size_t> open;
  std::uint64_t t = 0;
  for (const auto& line : read_lines(p)) {
    if (line.find(":process") == std::string::npos) continue;
    ++t;
    auto proc = std::stoull(edn_field(line, "process"));
    auto type = edn_field(line, "type");
    auto f = edn_field(line, "f");
    auto key = unquote(edn_field(line, "key"));
    auto value = edn_field(line, "value");
    if (type == ":invoke") {
      kv_op op;
      op.client = proc;
      op.call = t;
      op.input.key = key;
      if (f == ":get")
        op.input.kind = kv_model::op::get;
      else if (f == ":put")
        op.input.kind = kv_model::op::put;
      else if (f == ":append")
        op.input.kind = kv_model::op::append;
      else
        FAIL("unknown f " << f);
      if (value != "nil") op.input.value = unquote(value);
      op.output.unknown = true;
      open[proc] = ops.size();
      ops.push_back(op);
    } else if (type == ":ok") {
      REQUIRE(open.count(proc) == 1);
      auto& op = ops[open[proc]];
      op.ret = t;
      op.output.unknown = false;
      if (op.input.kind == kv_model::op::get) op.output.value = value == "nil" ? "" : unquote(value);
      open.erase(proc);
    } else {
      FAIL("unexpected type " << type);
    }
  }
  return ops;
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

}  // namespace

TEST_CASE("paxos linearizability checker matches every label of the Jepsen etcd histories",
          "[paxos][linearizability]") {
  auto dir = testdata() / "jepsen-etcd";
  auto labels = read_lines(dir / "labels.csv");
  REQUIRE(labels.size() > 1);
  std::size_t checked = 0, good = 0;
  for (std::size_t i = 1; i < labels.size(); ++i) {
    if (labels[i].empty()) continue;
    auto comma = labels[i].find(',');
    REQUIRE(comma != std::string::npos);
    auto file = labels[i].substr(0, comma);
    bool expected = labels[i].substr(comma + 1) == "true";
    auto ops = parse_jepsen(dir / file);
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

TEST_CASE("paxos linearizability checker accepts the -ok kv histories and rejects the -bad ones",
          "[paxos][linearizability]") {
  for (const char* name : {"c01-ok.txt", "c01-bad.txt", "c10-ok.txt", "c10-bad.txt"}) {
    auto ops = parse_kv(testdata() / "kv" / name);
    REQUIRE(ops.size() > 10);
    auto r = check_linearizability<kv_model>(ops);
    bool expected = std::string(name).find("-ok") != std::string::npos;
    INFO(name << ": explored " << r.states_explored << " partition " << r.failed_partition);
    REQUIRE(r.verdict != check_verdict::unknown);
    CHECK(r.ok() == expected);
  }
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
  // A pending put may take effect: a later get of "1" is fine.
  h = {{1, in{kv_model::op::put, "k", "1", ""}, out{"", true, true}, 1, pending_return},
       {2, in{kv_model::op::get, "k", "", ""}, out{"1", true, false}, 3, 4}};
  CHECK(check_linearizability<kv_model>(h).ok());
  // cas success requires the expected value.
  h = {{1, in{kv_model::op::cas, "k", "2", "x"}, out{"", true, false}, 1, 2}};
  CHECK_FALSE(check_linearizability<kv_model>(h).ok());
  h[0].input.expected = "";
  CHECK(check_linearizability<kv_model>(h).ok());
}
