// SPDX-License-Identifier: MIT
// tests/paxos/explorer_test.cpp: the bounded exhaustive explorer: clean runs over the real
// replica find nothing, and each safety mutation is reported with a readable trace.
#include <catch2/catch.hpp>

#include <cstdint>
#include <iostream>
#include <string>

#include "distkit/paxos/testing/explorer.hpp"

namespace {

using namespace distkit::paxos;
using step = testing::explorer_prefix_step;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DISTKIT_EXPLORER_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define DISTKIT_EXPLORER_SANITIZED 1
#endif
#endif
#ifndef DISTKIT_EXPLORER_SANITIZED
#define DISTKIT_EXPLORER_SANITIZED 0
#endif

// Sanitizer builds explore one level less (about a fifth of the states).
constexpr std::size_t depth_cut = DISTKIT_EXPLORER_SANITIZED ? 1 : 0;

auto report(const std::string& name, const testing::explorer_result& r) -> testing::explorer_result {
  std::cout << "[paxos explorer] " << name << ": " << (r.ok ? "no violation" : "VIOLATION: " + r.violation) << "; "
            << r.states << " states, " << r.transitions << " transitions, depth " << r.depth
            << (r.exhausted ? "" : " (state budget hit)") << ", " << r.seconds << " s\n";
  for (const auto& line : r.trace) std::cout << "    " << line << "\n";
  return r;
}

// Replica 1 leads and writes v1 to its own log only; replicas 2 and 3 elect a new leader
// without it, which chooses v2 and v3 in slots 1 and 2 and compacts its log behind a
// snapshot. Replica 1 is the stale node of finding 1: it still holds v1 at slot 1.
auto stale_replica_prefix() -> std::vector<step> {
  const std::uint64_t r1 = 1;
  return {
      {step::op::tick, 0, 0, 0},    {step::op::settle, 0, 0, 0},  {step::op::propose, 0, 0, 0},
      {step::op::settle, 0, 0, r1}, {step::op::tick, 1, 0, 0},    {step::op::tick, 2, 0, 0},
      {step::op::settle, 0, 0, r1}, {step::op::propose, 2, 1, 0}, {step::op::settle, 0, 0, r1},
      {step::op::propose, 2, 2, 0}, {step::op::settle, 0, 0, r1},
  };
}

auto stale_replica_options() -> testing::explorer_options {
  testing::explorer_options o;
  o.commands = 3;
  o.ticks = 2;
  o.duplicates = 0;
  o.drops = 0;
  o.crashes = 1;
  o.max_depth = 6 - depth_cut;
  o.prefix = stale_replica_prefix();
  return o;
}

auto from_start_options() -> testing::explorer_options {
  testing::explorer_options o;
  o.commands = 2;
  o.ticks = 2;
  o.duplicates = 1;
  o.drops = 0;
  o.crashes = 1;
  o.max_depth = 6 - depth_cut;
  return o;
}

}  // namespace

TEST_CASE("paxos explorer: every interleaving from the initial state up to the depth bound is safe",
          "[paxos][explorer]") {
  auto r = report("from the initial state", testing::explorer<>{from_start_options()}.run());
  CHECK(r.ok);
  CHECK(r.exhausted);
  CHECK(r.states > 1000);
}

TEST_CASE("paxos explorer: a stale replica that receives a snapshot, with a crash anywhere, stays safe",
          "[paxos][explorer]") {
  auto r = report("stale replica, snapshot install", testing::explorer<>{stale_replica_options()}.run());
  CHECK(r.ok);
  CHECK(r.exhausted);
  CHECK(r.states > 1000);
}

TEST_CASE("paxos explorer: a commit record made durable before the snapshot is caught (finding 1)",
          "[paxos][explorer][mutation]") {
  auto o = stale_replica_options();
  o.commit_before_snapshot = true;
  auto r = report("mutation commit_before_snapshot", testing::explorer<>{o}.run());
  REQUIRE_FALSE(r.ok);
  CHECK(r.violation.find("replica 1 applied a value at slot 1 that is not the chosen one") != std::string::npos);
  CHECK(r.trace.back().find("crash during its persist") != std::string::npos);
}

TEST_CASE("paxos explorer: a quorum one short of a majority is caught", "[paxos][explorer][mutation]") {
  auto o = from_start_options();
  o.max_depth = 24;
  o.replica.unsafe.quorum_delta = -1;
  auto r = report("mutation quorum_minus_one", testing::explorer<>{o}.run());
  REQUIRE_FALSE(r.ok);
  CHECK(r.violation.find("no majority accepted") != std::string::npos);
}

TEST_CASE("paxos explorer: a promise that is not made durable is caught", "[paxos][explorer][mutation]") {
  auto o = from_start_options();
  o.max_depth = 24;
  o.replica.unsafe.skip_promise_persistence = true;
  auto r = report("mutation skip_promise_persistence", testing::explorer<>{o}.run());
  REQUIRE_FALSE(r.ok);
  CHECK(r.violation.find("promise was forgotten") != std::string::npos);
}

TEST_CASE("paxos explorer: a prefix naming a replica out of range is refused", "[paxos][explorer]") {
  testing::explorer_options o;
  o.prefix = {{step::op::tick, 7, 0, 0}};
  testing::explorer<> ex{o};
  CHECK_THROWS_WITH(ex.run(), Catch::Matchers::Contains("prefix"));
  o.replicas = 0;
  CHECK_THROWS_WITH(testing::explorer<>{o}, Catch::Matchers::Contains("replicas"));
}
