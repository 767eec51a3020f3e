// SPDX-License-Identifier: MIT
// examples/paxos_sim.cpp: a 5-replica key-value store under a seeded fault storm.
//
//   paxos_sim [seed]     the same seed replays the same run exactly
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>

#include "distkit/paxos/testing/sim.hpp"

auto main(int argc, char** argv) -> int try {
  using namespace distkit::paxos;
  using namespace distkit::paxos::testing;
  std::uint64_t seed = argc > 1 ? std::strtoull(argv[1], nullptr, 0) : 2026;

  sim_options o;
  o.replicas = 5;
  o.seed = seed;
  o.clients = 8;
  o.ops_per_client = 60;
  o.fault_time = 80'000;   // a long storm...
  o.fault_interval = 800;  // ...with a fault every 8 ticks on average
  o.drop = 0.08;
  o.duplicate = 0.05;
  simulation<> sim{o};
  auto r = sim.run();

  std::cout << "paxos_sim: 5 replicas, seed " << seed << " (replay: paxos_sim " << seed << ")\n\n";
  std::cout << "faults injected (" << sim.fault_log().size() << "):\n";
  std::size_t shown = 0;
  for (const auto& f : sim.fault_log()) {
    if (shown++ < 25) std::cout << "  " << f << "\n";
  }
  if (shown > 25) std::cout << "  ... " << shown - 25 << " more\n";
  const auto& s = r.stats;
  std::cout << "\nnetwork: " << s.messages << " messages, " << s.dropped << " dropped, " << s.duplicated
            << " duplicated\n";
  std::cout << "crashes: " << s.crashes << " (" << s.torn_crashes << " in the middle of a write), " << s.restarts
            << " restarts; partitions " << s.partitions << ", one-way cuts " << s.one_way_cuts << ", swizzle-clogs "
            << s.clogs << "; snapshots sent " << s.snapshots_sent << "\n";
  std::cout << "committed: " << s.chosen_slots << " slots holding " << s.completed_ops << " client operations ("
            << s.duplicates_answered << " retries answered from the dedupe table)\n";

  if (const auto* leader = sim.replica_at(0)) {
    std::cout << "\nreplicated state (replica 1, chosen index " << leader->chosen_index() << ", checksum " << std::hex
              << leader->checksum() << std::dec << "):\n";
    for (const char* key : {"k0", "k1", "k2"}) {
      auto v = leader->state().value(key);
      if (v.size() > 60) v = v.substr(0, 57) + "...";
      std::cout << "  " << key << " = \"" << v << "\"\n";
    }
  }
  std::cout << "\ninvariants (one value per slot, chosen never changes, same applied prefix): "
            << (r.ok || r.linearizability == check_verdict::not_linearizable ? "held" : "VIOLATED") << "\n";
  std::cout << "linearizability checker: "
            << (r.linearizability == check_verdict::linearizable
                    ? "history is linearizable"
                    : (r.linearizability == check_verdict::unknown ? "unknown" : "NOT linearizable"))
            << "\n";
  if (!r.ok) {
    std::cout << "FAILED: " << r.violation << "\n";
    return 1;
  }
  std::cout << "verdict: OK\n";
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "paxos-sim example: %s\n", e.what());
  return 1;
}
