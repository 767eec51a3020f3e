// SPDX-License-Identifier: MIT
// benchmarks/paxos_bench.cpp: commands committed per second by a simulated cluster (zero network
// delay, memory storage), by cluster size, batch size and pipelining window.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "distkit/paxos.hpp"

namespace {

using namespace distkit::paxos;

/// N replicas on an in-process network with no delay. Each round, every replica takes all the
/// messages addressed to it, then runs one ready cycle (one sync), as an event loop would.
class bench_cluster {
 public:
  bench_cluster(std::size_t n, std::size_t batch, std::size_t window)
      : disks_(n), inbox_(n), outstanding_(batch * window) {
    for (std::size_t i = 0; i < n; ++i) {
      replica_options o;
      o.id = static_cast<node_id>(i + 1);
      for (std::size_t j = 0; j < n; ++j) o.nodes.push_back(static_cast<node_id>(j + 1));
      o.max_batch = batch;
      o.window = window;
      o.snapshot_interval = 1024;  // snapshots bound the in-memory log and the stored records
      o.log_retention = 256;
      o.heartbeat_ticks = 1000;
      o.election_ticks = 2000;
      nodes_.emplace_back(std::move(o));
    }
    while (!nodes_[0].is_leader()) {  // elect replica 1 deterministically
      nodes_[0].tick();
      round();
    }
  }

  /// Commits `count` more commands, keeping the pipeline full: before each round the client
  /// tops the leader up to `batch * window` outstanding commands (a steady stream, as many
  /// clients would send). Returns the number of network rounds it took.
  auto commit(std::uint64_t count, const std::string& cmd) -> std::uint64_t {
    const std::uint64_t target = applied_ + count;
    std::uint64_t rounds = 0;
    while (applied_ < target) {
      while (request_ < target && request_ - applied_ < outstanding_) (void)nodes_[0].propose(1, ++request_, cmd);
      round();
      ++rounds;
    }
    return rounds;
  }

 private:
  void round() {
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      for (auto& m : inbox_[i]) nodes_[i].step(std::move(m));
      inbox_[i].clear();
      while (nodes_[i].has_ready()) {
        auto rd = nodes_[i].ready();
        persist(disks_[i], rd);
        for (auto& m : rd.messages) inbox_[message_to(m) - 1].push_back(std::move(m));
        if (i == 0) applied_ += rd.applied.size();
        nodes_[i].advance();
      }
    }
  }

  std::vector<memory_storage> disks_;
  std::vector<replica<kv_state_machine>> nodes_;
  std::vector<std::vector<message>> inbox_;
  std::uint64_t outstanding_;
  std::uint64_t request_ = 0;
  std::uint64_t applied_ = 0;
};

void bm_paxos_commit(benchmark::State& state) {
  auto n = static_cast<std::size_t>(state.range(0));
  auto batch = static_cast<std::size_t>(state.range(1));
  auto window = static_cast<std::size_t>(state.range(2));
  bench_cluster c(n, batch, window);
  const std::string cmd = kv_state_machine::encode_put("key", "value-0123456789");
  const std::uint64_t per_iteration = 65'536;
  std::uint64_t rounds = 0;
  for (auto _ : state) rounds += c.commit(per_iteration, cmd);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * per_iteration));
  state.counters["commands/s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * per_iteration), benchmark::Counter::kIsRate);
  // Commands committed per network round (one hop each way): with a real round-trip time t,
  // a latency-bound cluster commits cmds/round / t commands per second. This is where the
  // pipelining window shows; the CPU rate above is the cost when the network is free.
  state.counters["cmds/round"] = static_cast<double>(state.iterations() * per_iteration) / static_cast<double>(rounds);
}

}  // namespace

BENCHMARK(bm_paxos_commit)
    ->ArgNames({"replicas", "batch", "window"})
    ->ArgsProduct({{3, 5}, {1, 16, 256}, {1, 64}})
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
