// SPDX-License-Identifier: MIT
// tests/paxos/sim_test.cpp: the seeded fault simulation: seed sweeps, replay, and mutations
// that prove the harness notices broken safety.
#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>

#include "distkit/paxos/testing/sim.hpp"

namespace {

using namespace distkit::paxos;
using namespace distkit::paxos::testing;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DISTKIT_PAXOS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define DISTKIT_PAXOS_SANITIZED 1
#endif
#endif
#ifndef DISTKIT_PAXOS_SANITIZED
#define DISTKIT_PAXOS_SANITIZED 0
#endif

// Full sweep: 2,000 seeds per cluster size in release builds; sanitizer builds run 10x fewer.
constexpr std::uint64_t seeds_per_part = DISTKIT_PAXOS_SANITIZED ? 50 : 500;

// One seed in `pause_share` of the sweeps also pauses processes (the leader half the time) and
// delivers late, repeated copies of catch-up requests: the faults that reach a stale leader, at a
// dose that keeps the sweep's time. The other seeds run exactly as without them.
constexpr std::uint64_t pause_share = 4;

auto sweep_options(std::size_t replicas, std::uint64_t seed) -> sim_options {
  sim_options o;
  o.replicas = replicas;
  o.seed = seed;
  if (seed % pause_share == 0) {
    o.pause = 0.25;
    o.catchup_request_late = 0.25;
    o.catchup_late_copies = 3;
  }
  return o;
}

auto run_one(std::size_t replicas, std::uint64_t seed) -> sim_result {
  const sim_options o = sweep_options(replicas, seed);
  simulation<> sim{o};
  auto r = sim.run();
  if (!r.ok) {
    std::cout << "FAILED " << r.violation << "\n  replay: DISTKIT_PAXOS_SEED=" << seed
              << " DISTKIT_PAXOS_REPLICAS=" << replicas << " paxos_test \"paxos simulation replays one seed\"\n";
    for (const auto& f : sim.fault_log()) std::cout << "  fault " << f << "\n";
  }
  return r;
}

void sweep(std::size_t replicas, std::uint64_t part) {
  std::uint64_t first = 1 + part * seeds_per_part;
  sim_stats total;
  std::uint64_t failures = 0;
  for (std::uint64_t seed = first; seed < first + seeds_per_part; ++seed) {
    auto r = run_one(replicas, seed);
    failures += r.ok ? 0 : 1;
    total.crashes += r.stats.crashes;
    total.torn_crashes += r.stats.torn_crashes;
    total.partitions += r.stats.partitions;
    total.clogs += r.stats.clogs;
    total.completed_ops += r.stats.completed_ops;
    total.chosen_slots += r.stats.chosen_slots;
    total.dropped += r.stats.dropped;
    total.snapshots_sent += r.stats.snapshots_sent;
    total.pauses += r.stats.pauses;
    total.late_catchup_requests += r.stats.late_catchup_requests;
  }
  std::cout << "[paxos sim] " << replicas << " replicas, seeds " << first << ".." << first + seeds_per_part - 1
            << (DISTKIT_PAXOS_SANITIZED ? " (sanitizer build: reduced sweep)" : "") << ": " << failures
            << " violations; " << total.completed_ops << " client ops, " << total.chosen_slots << " slots, "
            << total.crashes << " crashes (" << total.torn_crashes << " mid-write), " << total.partitions
            << " partitions, " << total.clogs << " swizzle-clogs, " << total.dropped << " messages dropped, "
            << total.snapshots_sent << " snapshots sent, " << total.pauses << " pauses, " << total.late_catchup_requests
            << " late catch-up requests\n";
  CHECK(failures == 0);
  CHECK(total.crashes > 0);
  CHECK(total.pauses > 0);
  CHECK(total.late_catchup_requests > 0);
  CHECK(total.completed_ops == seeds_per_part * 4 * 20);
}

}  // namespace

TEST_CASE("paxos simulation sweep, 3 replicas, seeds part 1 of 4", "[paxos][sim]") { sweep(3, 0); }
TEST_CASE("paxos simulation sweep, 3 replicas, seeds part 2 of 4", "[paxos][sim]") { sweep(3, 1); }
TEST_CASE("paxos simulation sweep, 3 replicas, seeds part 3 of 4", "[paxos][sim]") { sweep(3, 2); }
TEST_CASE("paxos simulation sweep, 3 replicas, seeds part 4 of 4", "[paxos][sim]") { sweep(3, 3); }
TEST_CASE("paxos simulation sweep, 5 replicas, seeds part 1 of 4", "[paxos][sim]") { sweep(5, 0); }
TEST_CASE("paxos simulation sweep, 5 replicas, seeds part 2 of 4", "[paxos][sim]") { sweep(5, 1); }
TEST_CASE("paxos simulation sweep, 5 replicas, seeds part 3 of 4", "[paxos][sim]") { sweep(5, 2); }
TEST_CASE("paxos simulation sweep, 5 replicas, seeds part 4 of 4", "[paxos][sim]") { sweep(5, 3); }

TEST_CASE("paxos simulation sweep over batch, window, snapshot and heartbeat settings", "[paxos][sim]") {
  const std::uint64_t seeds = DISTKIT_PAXOS_SANITIZED ? 40 : 300;
  std::uint64_t failures = 0;
  for (std::uint64_t seed = 100'001; seed < 100'001 + seeds; ++seed) {
    sim_options o;
    o.seed = seed;
    o.replicas = seed % 2 ? 3 : 5;
    o.replica.max_batch = std::array<std::size_t, 3>{1, 4, 16}[seed % 3];
    o.replica.window = std::array<std::size_t, 3>{1, 4, 16}[(seed / 3) % 3];
    o.replica.snapshot_interval = std::array<slot_t, 3>{0, 8, 64}[(seed / 9) % 3];
    o.replica.heartbeat_ticks = 1 + static_cast<std::uint32_t>((seed / 27) % 2);
    o.replica.log_retention = (seed / 54) % 2 ? 0 : 8;
    auto r = simulation<>{o}.run();
    if (!r.ok) {
      ++failures;
      std::cout << "FAILED " << r.violation << " (batch " << o.replica.max_batch << ", window " << o.replica.window
                << ", snapshot every " << o.replica.snapshot_interval << ")\n";
    }
  }
  CHECK(failures == 0);
}

TEST_CASE("paxos simulation long sweep of 20,000 seeds per cluster size", "[paxos][sim][.stress]") {
  for (std::size_t replicas : {3, 5}) {
    std::uint64_t failures = 0;
    for (std::uint64_t seed = 10'001; seed <= 30'000; ++seed) failures += run_one(replicas, seed).ok ? 0 : 1;
    CHECK(failures == 0);
  }
}

TEST_CASE("paxos simulation replays one seed", "[paxos][sim][replay]") {
  const char* s = std::getenv("DISTKIT_PAXOS_SEED");
  const char* n = std::getenv("DISTKIT_PAXOS_REPLICAS");
  std::uint64_t seed = s ? std::strtoull(s, nullptr, 0) : 4242;
  std::size_t replicas = n ? std::strtoull(n, nullptr, 0) : 5;
  auto a = run_one(replicas, seed);
  auto b = run_one(replicas, seed);
  CHECK(a.ok);
  // Same seed, same run: every counter matches.
  CHECK(a.stats.messages == b.stats.messages);
  CHECK(a.stats.end_time == b.stats.end_time);
  CHECK(a.stats.chosen_slots == b.stats.chosen_slots);
  CHECK(a.stats.crashes == b.stats.crashes);
}

TEST_CASE("paxos simulation catches a quorum shrunk by one within a few seeds", "[paxos][sim][mutation]") {
  for (std::size_t replicas : {3, 5}) {
    std::uint64_t caught_at = 0;
    for (std::uint64_t seed = 1; seed <= 300 && caught_at == 0; ++seed) {
      sim_options o;
      o.replicas = replicas;
      o.seed = seed;
      o.mutations = mutation::quorum_minus_one;
      if (!simulation<>{o}.run().ok) caught_at = seed;
    }
    std::cout << "[paxos mutation] quorum - 1 with " << replicas << " replicas caught at seed " << caught_at << "\n";
    CHECK(caught_at != 0);
  }
}

TEST_CASE("paxos simulation catches a promise that is not made durable within a few hundred seeds",
          "[paxos][sim][mutation]") {
  std::uint64_t caught_at = 0;
  for (std::uint64_t seed = 1; seed <= 600 && caught_at == 0; ++seed) {
    sim_options o;
    o.replicas = 3;
    o.seed = seed;
    o.mutations = mutation::skip_promise_persistence;
    auto r = simulation<>{o}.run();
    if (!r.ok) {
      caught_at = seed;
      std::cout << "[paxos mutation] promise not durable caught: " << r.violation << "\n";
    }
  }
  CHECK(caught_at != 0);
}

TEST_CASE("paxos simulation sweep on the real file storage, send-before-sync and tiny snapshots", "[paxos][sim]") {
  // The real `file_storage` over a crashing in-memory file system (torn, zero-filled and lost
  // writes at any file operation of a save), the server's send-before-sync path, snapshots
  // every 2 to 8 slots that followers install, and catch-up replies delivered late,
  // duplicated and to a replica that has become leader.
  const std::uint64_t seeds = DISTKIT_PAXOS_SANITIZED ? 40 : 400;
  std::uint64_t failures = 0;
  sim_stats total;
  for (std::uint64_t seed = 200'001; seed < 200'001 + seeds; ++seed) {
    sim_options o;
    o.seed = seed;
    o.replicas = seed % 2 ? 3 : 5;
    o.storage = seed % 4 < 3 ? sim_storage::file : sim_storage::memory;
    o.send_before_sync = (seed / 2) % 2 == 0;
    o.replica.snapshot_interval = std::array<slot_t, 3>{2, 4, 8}[(seed / 4) % 3];
    o.replica.log_retention = (seed / 12) % 2 ? 0 : 4;
    o.torn_crash = 0.8;
    o.catchup_late = 0.2;
    o.catchup_to_leader = 0.2;
    simulation<> sim{o};
    auto r = sim.run();
    total.torn_crashes += r.stats.torn_crashes;
    total.snapshots_installed += r.stats.snapshots_installed;
    total.held_replies_to_leader += r.stats.held_replies_to_leader;
    if (!r.ok) {
      ++failures;
      std::cout << "FAILED " << r.violation << " (storage " << (o.storage == sim_storage::file ? "file" : "memory")
                << ", send-before-sync " << o.send_before_sync << ")\n";
      for (const auto& f : sim.fault_log()) std::cout << "  fault " << f << "\n";
    }
  }
  std::cout << "[paxos sim] file storage sweep: " << seeds << " seeds, " << failures << " violations; "
            << total.torn_crashes << " mid-write crashes, " << total.snapshots_installed << " snapshots made durable, "
            << total.held_replies_to_leader << " catch-up replies delivered to a new leader\n";
  CHECK(failures == 0);
  CHECK(total.torn_crashes > 0);
  CHECK(total.held_replies_to_leader > 0);
}

namespace {

/// Runs seeds from 1 until the simulation reports a violation with mutation `m`; returns the
/// seed (0 if none within `max_seeds`) and prints it with the time taken.
template <class Tune>
auto hunt(const char* name, mutation m, std::uint64_t max_seeds, Tune tune) -> std::uint64_t {
  const auto start = std::chrono::steady_clock::now();
  for (std::uint64_t seed = 1; seed <= max_seeds; ++seed) {
    sim_options o;
    o.seed = seed;
    o.mutations = m;
    tune(o);
    auto r = simulation<>{o}.run();
    if (!r.ok) {
      const auto ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
      std::cout << "[paxos mutation] " << name << " caught at seed " << seed << " after " << ms
                << " ms: " << r.violation << "\n";
      return seed;
    }
  }
  std::cout << "[paxos mutation] " << name << " NOT caught in " << max_seeds << " seeds\n";
  return 0;
}

}  // namespace

TEST_CASE("paxos simulation catches a commit record made durable before the snapshot it points past",
          "[paxos][sim][mutation]") {
  for (auto storage : {sim_storage::file, sim_storage::memory}) {
    // The seed found (printed) moves when the replica or the fault draws change: 23 (file) and
    // 711 (memory) when this test was written, 96 and 86 after the file layer tore files in name
    // order; the bounds leave room.
    const std::uint64_t bound = storage == sim_storage::file ? 400 : 1500;
    auto seed = hunt("commit_before_snapshot", mutation::commit_before_snapshot, bound, [&](sim_options& o) {
      o.replicas = 3;
      o.storage = storage;
      o.torn_crash = 1.0;
      o.replica.snapshot_interval = 2;
      o.replica.log_retention = 0;
    });
    CHECK(seed != 0);
  }
}

TEST_CASE("paxos simulation catches learned values stored at ballot zero without a chosen marker",
          "[paxos][sim][mutation]") {
  for (std::size_t replicas : {3, 5}) {
    auto seed = hunt("learned_at_zero_ballot", mutation::learned_at_zero_ballot, 400, [&](sim_options& o) {
      o.replicas = replicas;
      o.torn_crash = 1.0;
      o.replica.snapshot_interval = 0;
      o.replica.max_catchup = 1;
    });
    CHECK(seed != 0);
  }
}

namespace {

/// The fault model that reaches a stale leader: processes paused (half the time the leader)
/// and read their queues in a burst on resume, catch-up requests answered late from what is
/// chosen then (ten late copies of each), requests and replies held until their node leads,
/// and chosen values kept in the log (no snapshots) so that replies carry values.
void stale_leader_faults(sim_options& o) {
  o.pause = 0.5;
  o.pause_max = 20'000;
  o.catchup_to_leader = 0.5;
  o.catchup_request_late = 1.0;
  o.catchup_late_copies = 10;
  o.catchup_late_max = 20'000;
  o.replica.snapshot_interval = 0;
  o.replica.log_retention = 1'000;
  o.replica.max_catchup = 64;
  o.replica.window = 16;
}

}  // namespace

TEST_CASE("paxos simulation catches a leader whose next slot a late catch-up reply left behind",
          "[paxos][sim][mutation]") {
  // Found at seed 3 (5 replicas, ~20 ms) and seed 144 (3 replicas, ~0.5 s) when this test was
  // written; about 2 seeds in 1,000 reach it.
  for (std::size_t replicas : {5, 3}) {
    auto seed = hunt("late_catchup_past_leader", mutation::late_catchup_past_leader, 1000, [&](sim_options& o) {
      o.replicas = replicas;
      stale_leader_faults(o);
    });
    CHECK(seed != 0);
  }
}

TEST_CASE("paxos simulation sweep with paused processes and late catch-up requests", "[paxos][sim]") {
  // The same faults without the mutation: no violation (no false positive from the fault model).
  const std::uint64_t seeds = DISTKIT_PAXOS_SANITIZED ? 30 : 300;
  std::uint64_t failures = 0;
  sim_stats total;
  for (std::uint64_t seed = 300'001; seed < 300'001 + seeds; ++seed) {
    sim_options o;
    o.seed = seed;
    o.replicas = seed % 2 ? 3 : 5;
    stale_leader_faults(o);
    simulation<> sim{o};
    auto r = sim.run();
    total.pauses += r.stats.pauses;
    if (!r.ok) {
      ++failures;
      std::cout << "FAILED " << r.violation << "\n";
      for (const auto& f : sim.fault_log()) std::cout << "  fault " << f << "\n";
    }
  }
  std::cout << "[paxos sim] pause sweep: " << seeds << " seeds, " << failures << " violations, " << total.pauses
            << " pauses\n";
  CHECK(failures == 0);
  CHECK(total.pauses > 0);
}

TEST_CASE("paxos simulation checks a user state machine and rejects bad options", "[paxos][sim]") {
  CHECK_THROWS_WITH(simulation<>(sim_options{.replicas = 0}), Catch::Matchers::Contains("replicas"));
  sim_options o;
  o.tick = 0;
  CHECK_THROWS_WITH(simulation<>(o), Catch::Matchers::Contains("tick"));
  o = {};
  o.faults = false;
  o.replicas = 1;
  auto r = simulation<>{o}.run();
  INFO(r.violation);
  CHECK(r.ok);
  CHECK(r.stats.completed_ops == 4 * 20);
}

TEST_CASE("paxos simulation sweep with client sessions registered through the log", "[paxos][sim][sessions]") {
  // Every client registers a session first (its retries may register more than one) and then
  // proposes under it: under crashes (torn, on the real file storage for half the seeds),
  // partitions, snapshots every 2 to 8 slots and pauses, every replica must keep the same
  // sessions (a live session refused anywhere is a violation), the same checksum and a
  // linearizable history.
  const std::uint64_t seeds = DISTKIT_PAXOS_SANITIZED ? 100 : 1'000;
  std::uint64_t failures = 0;
  sim_stats total;
  for (std::uint64_t seed = 300'001; seed < 300'001 + seeds; ++seed) {
    sim_options o;
    o.seed = seed;
    o.replicas = seed % 2 ? 3 : 5;
    o.storage = (seed / 2) % 2 ? sim_storage::file : sim_storage::memory;
    o.replica.client_sessions = true;
    o.replica.snapshot_interval = std::array<slot_t, 3>{2, 4, 8}[(seed / 4) % 3];
    o.torn_crash = 0.8;
    if (seed % 4 == 0) {
      o.pause = 0.25;
      o.catchup_request_late = 0.25;
    }
    simulation<> sim{o};
    auto r = sim.run();
    total.completed_ops += r.stats.completed_ops;
    total.torn_crashes += r.stats.torn_crashes;
    total.snapshots_installed += r.stats.snapshots_installed;
    if (!r.ok) {
      ++failures;
      std::cout << "FAILED " << r.violation << "\n  replay: seed " << seed << "\n";
      for (const auto& f : sim.fault_log()) std::cout << "  fault " << f << "\n";
    }
  }
  std::cout << "[paxos sim] client sessions sweep: " << seeds << " seeds, " << failures << " violations; "
            << total.completed_ops << " client ops, " << total.torn_crashes << " mid-write crashes, "
            << total.snapshots_installed << " snapshots made durable\n";
  CHECK(failures == 0);
  CHECK(total.completed_ops == seeds * 4 * 20);
  CHECK(total.snapshots_installed > 0);
}
