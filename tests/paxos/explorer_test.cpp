// SPDX-License-Identifier: MIT
// tests/paxos/explorer_test.cpp: the bounded exhaustive explorer: clean runs over the real
// replica find nothing, and each safety mutation is reported with a readable trace.
#include <catch2/catch.hpp>

#include <cstdint>
#include <iostream>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

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

constexpr std::uint64_t replica_1 = 1, replica_2 = 2, replica_3 = 4;
constexpr std::uint64_t catchup_requests = std::uint64_t{1} << 6;  // index in `message`
constexpr std::uint64_t catchup_replies = std::uint64_t{1} << 7;
static_assert(std::is_same_v<std::variant_alternative_t<6, message>, catchup_request_msg>);
static_assert(std::is_same_v<std::variant_alternative_t<7, message>, catchup_reply_msg>);

auto tick(std::uint32_t node) -> step { return {step::op::tick, node, 0, 0, 0, 0}; }
auto propose(std::uint32_t node, std::uint32_t cmd) -> step { return {step::op::propose, node, cmd, 0, 0, 0}; }
auto settle(std::uint64_t isolated = 0, std::uint64_t held = 0, std::uint64_t held_kinds = 0) -> step {
  return {step::op::settle, 0, 0, isolated, held, held_kinds};
}

auto scenario_options(std::size_t commands, std::size_t depth) -> testing::explorer_options {
  testing::explorer_options o;
  o.commands = commands;
  o.ticks = 2;
  o.duplicates = 0;
  o.drops = 0;
  o.crashes = 1;
  o.max_depth = depth;
  return o;
}

// Finding 1. Replica 1 leads and writes v1 to its own log only; replicas 2 and 3 elect a new
// leader without it, which chooses v2 and v3 in slots 1 and 2 and compacts its log behind a
// snapshot. Replica 1 is the stale node: it still holds v1 at slot 1. From here the search
// tries every interleaving (the leader's heartbeat, replica 1's catch-up, the snapshot it is
// sent) with a crash at every point of every persist.
auto stale_replica_options() -> testing::explorer_options {
  auto o = scenario_options(3, 6 - depth_cut);
  o.prefix = {tick(0),           settle(),      propose(0, 0),     settle(replica_1), tick(1),          tick(2),
              settle(replica_1), propose(2, 1), settle(replica_1), propose(2, 2),     settle(replica_1)};
  return o;
}

// Finding 2. Replica 3 writes w (v1) to its own log only, at ballot (1,3); replicas 1 and 2
// choose v2 at slot 1 under replica 2, replica 1 without learning it. Replica 2 is elected
// again at a higher ballot; replica 1 asks it for slot 1 and the catch-up reply is in flight.
// Replica 3, cut off, runs elections until its ballot is above every promise and its prepare is
// in flight. The snapshot interval is above the slots used, so the learned value stays a log
// entry.
auto learned_value_options() -> testing::explorer_options {
  auto o = scenario_options(2, 4);
  o.replica.snapshot_interval = 4;
  o.prefix = {tick(2),
              settle(),
              propose(2, 0),
              settle(replica_3),
              tick(0),
              tick(1),
              settle(replica_3),
              propose(1, 1),
              settle(replica_3),
              tick(0),
              settle(replica_3),
              tick(1),
              settle(replica_3, 0, catchup_replies)};
  for (int i = 0; i < 6; ++i) {
    o.prefix.push_back(tick(2));
    o.prefix.push_back(settle(replica_3, 0, catchup_replies));
  }
  o.prefix.push_back(tick(2));
  return o;
}

// Finding 3. Replica 1 leads and chooses v1 with replica 2; replica 3 hears the commit and asks
// replica 1 for slot 1, and that request stays in flight. Replica 3 is elected at (2,3) with
// replica 2; replica 1 is elected later at a higher ballot with replica 2 and chooses v2 at
// slot 2. Replica 3 still believes it leads with its next slot at 2. The log keeps chosen
// values (retention 4), so the late request is answered with values, not a snapshot.
auto late_catchup_options() -> testing::explorer_options {
  auto o = scenario_options(3, 4 - depth_cut);
  o.replica.log_retention = 4;
  o.prefix = {tick(0),
              settle(),
              propose(0, 0),
              settle(replica_3),
              tick(0),
              settle(0, replica_2, catchup_requests),
              tick(1),
              tick(2),
              settle(0, replica_1),
              settle(0, replica_3, catchup_requests),
              tick(1),
              settle(0, replica_3, catchup_requests),
              tick(0),
              settle(0, replica_3, catchup_requests),
              propose(0, 1),
              settle(0, replica_3, catchup_requests)};
  return o;
}

auto from_start_options() -> testing::explorer_options {
  auto o = scenario_options(2, 6 - depth_cut);
  o.duplicates = 1;
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
  auto r = report("finding 1 scenario (stale replica, snapshot)", testing::explorer<>{stale_replica_options()}.run());
  CHECK(r.ok);
  CHECK(r.exhausted);
  CHECK(r.states > 1000);
}

TEST_CASE("paxos explorer: a commit record made durable before its snapshot is caught (finding 1)",
          "[paxos][explorer][mutation]") {
  auto o = stale_replica_options();
  // The snapshot reaches replica 1 in three deliveries (announce, ack, chunk) after the
  // heartbeat and its ack, so the crash in its install is at depth 6 even in sanitizer builds;
  // the search stops at the first violation, well before the whole depth-6 space.
  o.max_depth = 6;
  o.mutations = testing::mutation::commit_before_snapshot;
  auto r = report("mutation commit_before_snapshot", testing::explorer<>{o}.run());
  REQUIRE_FALSE(r.ok);
  CHECK(r.violation.find("replica 1 applied a value at slot 1 that is not the chosen one") != std::string::npos);
  CHECK(r.trace.back().find("crash during its persist") != std::string::npos);
}

TEST_CASE("paxos explorer: a learned value torn from its commit record stays chosen", "[paxos][explorer]") {
  auto r = report("finding 2 scenario (learned value, torn save)", testing::explorer<>{learned_value_options()}.run());
  CHECK(r.ok);
  CHECK(r.exhausted);
  CHECK(r.states > 1000);
}

TEST_CASE("paxos explorer: learned values stored as acceptances at ballot (0,0) are caught (finding 2)",
          "[paxos][explorer][mutation]") {
  auto o = learned_value_options();
  o.mutations = testing::mutation::learned_at_zero_ballot;
  auto r = report("mutation learned_at_zero_ballot", testing::explorer<>{o}.run());
  REQUIRE_FALSE(r.ok);
  CHECK(r.violation.find("slot 1: a second value was chosen") != std::string::npos);
}

TEST_CASE("paxos explorer: a late catch-up reply to a leader leaves it proposing above the chosen slots",
          "[paxos][explorer]") {
  auto r = report("finding 3 scenario (late catch-up reply)", testing::explorer<>{late_catchup_options()}.run());
  CHECK(r.ok);
  CHECK(r.exhausted);
  CHECK(r.states > 1000);
}

TEST_CASE("paxos explorer: a leader whose next slot a catch-up reply leaves behind is caught (finding 3)",
          "[paxos][explorer][mutation]") {
  auto o = late_catchup_options();
  o.mutations = testing::mutation::late_catchup_past_leader;
  auto r = report("mutation late_catchup_past_leader", testing::explorer<>{o}.run());
  REQUIRE_FALSE(r.ok);
  CHECK(r.violation.find("replica 3 applied a value at slot 2 that is not the chosen one") != std::string::npos);
}

TEST_CASE("paxos explorer: a quorum one short of a majority is caught", "[paxos][explorer][mutation]") {
  auto o = from_start_options();
  o.max_depth = 24;
  o.mutations = testing::mutation::quorum_minus_one;
  auto r = report("mutation quorum_minus_one", testing::explorer<>{o}.run());
  REQUIRE_FALSE(r.ok);
  CHECK(r.violation.find("no majority accepted") != std::string::npos);
}

TEST_CASE("paxos explorer: a promise that is not made durable is caught", "[paxos][explorer][mutation]") {
  auto o = from_start_options();
  o.max_depth = 24;
  o.mutations = testing::mutation::skip_promise_persistence;
  auto r = report("mutation skip_promise_persistence", testing::explorer<>{o}.run());
  REQUIRE_FALSE(r.ok);
  CHECK(r.violation.find("promise was forgotten") != std::string::npos);
}

TEST_CASE("paxos explorer: a prefix naming a replica out of range is refused", "[paxos][explorer]") {
  testing::explorer_options o;
  o.prefix = {tick(7)};
  testing::explorer<> ex{o};
  CHECK_THROWS_WITH(ex.run(), Catch::Matchers::Contains("prefix"));
  o.replicas = 0;
  CHECK_THROWS_WITH(testing::explorer<>{o}, Catch::Matchers::Contains("replicas"));
}

TEST_CASE("paxos explorer: the documented example explores its whole space", "[paxos][explorer]") {
  // The @code example of explorer.hpp: default budgets (3 time steps per replica, a crash, a
  // duplicate and a drop), two commands, depth 4.
  testing::explorer<> ex{{.commands = 2, .max_depth = 4}};
  auto r = report("documented example", ex.run());
  CHECK(r.ok);
  CHECK(r.exhausted);
  CHECK(r.depth == 4);
  // Deduplication: fewer distinct states than transitions taken.
  CHECK(r.states < r.transitions);
}
