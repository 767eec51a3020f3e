// SPDX-License-Identifier: MIT
// benchmarks/linearizability_bench.cpp: time and peak memory to decide 50-client kv histories,
// with the checker of distkit/paxos/testing/linearizability.hpp ("new") and the search it
// replaced ("v0", tests/support/linearizability_v0.hpp), in the same binary on the same input.
//
// Peak memory is the peak RSS of a fresh process that loads the history and checks it once: the
// benchmark starts itself again with `--rss <checker> <history>` for each case, and that process
// reports its own high-water mark (VmHWM of /proc/self/status; getrusage's ru_maxrss of a spawned
// process would include its parent's RSS at the spawn, which Linux carries across exec).
// `rss_base_MiB` is the same for a process that only loads the history.
#include <benchmark/benchmark.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "distkit/paxos/testing/linearizability.hpp"
#include "support/kv_history.hpp"
#include "support/linearizability_v0.hpp"

extern char** environ;

namespace {

using namespace distkit::paxos::testing;
using kv_op = history_op<kv_model::input, kv_model::output>;

// "c50-ok", "c50-bad": Porcupine's logs; "gen-ok", "gen-bad": generated (seed 2, 50 clients,
// 10 keys, 40 operations each), the second with one stale read.
auto load(const std::string& name) -> std::vector<kv_op> {
  if (name.rfind("gen-", 0) == 0) return distkit_test::generate_kv_history(2, {}, name == "gen-bad").ops;
  return distkit_test::read_kv_history(std::string(DISTKIT_REPO_TESTDATA_DIR) + "/linearizability/kv/" + name + ".txt");
}

auto check(const std::string& checker, const std::vector<kv_op>& ops) -> check_result {
  if (checker == "v0") return distkit_test::v0::check_linearizability<kv_model>(ops);  // its 50M-step budget
  return check_linearizability<kv_model>(ops);  // default options: 50M steps, 256 MiB of cache
}

// This process's peak RSS in KiB (VmHWM), or -1.
auto own_peak_kib() -> long {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// Peak RSS in MiB of `<this binary> --rss <checker> <history>`, or -1.
auto child_rss_mib(const std::string& checker, const std::string& history) -> double {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  std::string self = "/proc/self/exe", flag = "--rss";
  std::string c = checker, h = history;
  char* argv[] = {self.data(), flag.data(), c.data(), h.data(), nullptr};
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  std::string out;
  char buf[64];
  for (ssize_t got = 0; spawned == 0 && (got = read(fds[0], buf, sizeof buf)) > 0;)
    out.append(buf, static_cast<std::size_t>(got));
  close(fds[0]);
  if (spawned != 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || out.empty()) return -1;
  return std::stod(out) / 1024.0;
}

// Measured once per case, whatever the number of repetitions.
auto rss_of(const std::string& checker, const std::string& history) -> double {
  static std::map<std::string, double> known;
  const auto key = checker + " " + history;
  auto it = known.find(key);
  if (it == known.end()) it = known.emplace(key, child_rss_mib(checker, history)).first;
  return it->second;
}

auto verdict_name(check_verdict v) -> const char* {
  switch (v) {
    case check_verdict::linearizable:
      return "linearizable";
    case check_verdict::not_linearizable:
      return "not linearizable";
    case check_verdict::unknown:
      return "UNKNOWN (budget exhausted)";
  }
  return "?";
}

void bm_check(benchmark::State& state, const std::string& checker, const std::string& history) {
  const auto ops = load(history);
  check_result r;
  for (auto _ : state) {
    r = check(checker, ops);
    benchmark::DoNotOptimize(r);
  }
  state.SetLabel(verdict_name(r.verdict));
  state.counters["explored"] = static_cast<double>(r.states_explored);
  if (checker != "v0") {  // the previous search counted neither
    state.counters["steps"] = static_cast<double>(r.steps);
    state.counters["cache_MiB"] = static_cast<double>(r.peak_cache_bytes) / (1 << 20);
  }
  state.counters["max_rss_MiB"] = rss_of(checker, history);
  state.counters["rss_base_MiB"] = rss_of("none", history);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::strcmp(argv[1], "--rss") == 0) {
    const auto ops = load(argv[3]);
    if (std::strcmp(argv[2], "none") != 0) benchmark::DoNotOptimize(check(argv[2], ops));
    std::printf("%ld\n", own_peak_kib());
    return 0;
  }
  for (const char* history : {"c50-ok", "c50-bad", "gen-ok", "gen-bad"}) {
    benchmark::RegisterBenchmark((std::string("new/") + history).c_str(), bm_check, "new", history)
        ->Unit(benchmark::kMillisecond);
  }
  // The previous search. On c50-bad it runs out of its 50M-step budget (over a minute), so one
  // iteration; the generated histories are left out for the same reason.
  benchmark::RegisterBenchmark("v0/c50-ok", bm_check, "v0", "c50-ok")->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("v0/c50-bad", bm_check, "v0", "c50-bad")->Unit(benchmark::kMillisecond)->Iterations(1);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
