// SPDX-License-Identifier: MIT
// examples/paxos_kv/client.cpp: command-line client of a paxos_kv cluster (put, get, cas, status, bench).
//
//   paxos_kv_client --servers 127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003 put greeting hello
//   paxos_kv_client --servers ... get greeting
//   paxos_kv_client --servers ... cas greeting hello bonjour     (prints 1 if swapped, 0 if not)
//   paxos_kv_client --servers ... status                          (one line per server)
//   paxos_kv_client --servers ... bench --clients 16 --seconds 5 --value-size 100 [--json]
//
// Any server will do: followers redirect to the leader. Exit status 0 on success, 1 when the
// cluster did not answer before --timeout-ms (the outcome of a write is then unknown).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "distkit/paxos/kv_state_machine.hpp"
#include "kv_protocol.hpp"

namespace {

using kv = distkit::paxos::kv_state_machine;
using clock_type = std::chrono::steady_clock;

void usage() {
  std::cout << "usage: paxos_kv_client --servers HOST:PORT,... [--timeout-ms N] COMMAND\n"
               "  put KEY VALUE | get KEY | cas KEY EXPECTED DESIRED | status\n"
               "  bench [--clients N] [--seconds S] [--value-size B] [--keys K] [--json]\n";
}

auto random_client_id() -> std::uint64_t {
  std::random_device rd;
  std::uint64_t id = 0;
  while (id == 0) id = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  return id;
}

auto bench(const std::vector<paxos_kv::address>& servers, std::vector<std::string> args) -> int {
  int clients = 1;
  double seconds = 5;
  std::size_t value_size = 100;
  std::size_t keys = 100000;
  bool json = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    auto next = [&]() -> std::string {
      if (i + 1 >= args.size()) throw std::invalid_argument(args[i] + ": missing value");
      return args[++i];
    };
    if (args[i] == "--clients") {
      clients = static_cast<int>(paxos_kv::parse_number(next(), 1, 100000, "--clients", "bench"));
    } else if (args[i] == "--seconds") {
      seconds = std::stod(next());
    } else if (args[i] == "--value-size") {
      value_size = paxos_kv::parse_number(next(), 0, paxos_kv::max_message, "--value-size", "bench");
    } else if (args[i] == "--keys") {
      keys = paxos_kv::parse_number(next(), 1, std::uint64_t{1} << 40, "--keys", "bench");
    } else if (args[i] == "--json") {
      json = true;
    } else {
      throw std::invalid_argument("bench: unknown argument " + args[i]);
    }
  }
  if (clients < 1) throw std::invalid_argument("--clients: at least 1");
  const std::string value(value_size, 'v');
  const auto start = clock_type::now();
  const auto measure_from = start + std::chrono::seconds(1);  // warm-up: connections, leader found
  const auto stop_at =
      measure_from + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
  std::mutex mu;
  std::vector<std::int64_t> all;
  std::atomic<std::uint64_t> failures{0};
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(clients));
  for (int w = 0; w < clients; ++w) {
    threads.emplace_back([&, w] {
      paxos_kv::client c(servers, random_client_id(), std::chrono::milliseconds(2000));
      std::vector<std::int64_t> lat;
      for (std::size_t i = 0;; ++i) {
        auto t0 = clock_type::now();
        if (t0 >= stop_at) break;
        auto key = "k" + std::to_string((static_cast<std::size_t>(w) * 7919 + i) % keys);
        auto r = c.call(kv::encode_put(key, value), t0 + std::chrono::seconds(10));
        auto t1 = clock_type::now();
        if (t0 < measure_from) continue;
        if (!r) {
          failures.fetch_add(1);
          continue;
        }
        lat.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
      }
      std::lock_guard lock(mu);
      all.insert(all.end(), lat.begin(), lat.end());
    });
  }
  for (auto& t : threads) t.join();
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) -> double {
    if (all.empty()) return 0;
    return static_cast<double>(all[static_cast<std::size_t>(p * static_cast<double>(all.size() - 1))]) / 1000.0;
  };
  const double rate = static_cast<double>(all.size()) / seconds;
  if (json) {
    std::printf(
        "{\"system\":\"paxos_kv\",\"clients\":%d,\"ops\":%zu,\"errors\":%llu,\"seconds\":%g,\"ops_per_s\":%.1f,"
        "\"p50_us\":%.1f,\"p99_us\":%.1f}\n",
        clients, all.size(), static_cast<unsigned long long>(failures.load()), seconds, rate, pct(0.5), pct(0.99));
  } else {
    std::printf("%d clients: %zu puts in %.1f s = %.0f puts/s, p50 %.2f ms, p99 %.2f ms, %llu unanswered\n", clients,
                all.size(), seconds, rate, pct(0.5) / 1000, pct(0.99) / 1000,
                static_cast<unsigned long long>(failures.load()));
  }
  return failures.load() == 0 ? 0 : 1;
}

}  // namespace

auto main(int argc, char** argv) -> int {
  try {
    std::vector<paxos_kv::address> servers;
    int timeout_ms = 10000;
    std::vector<std::string> rest;
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--help" || a == "-h") {
        usage();
        return 0;
      }
      if (rest.empty() && a == "--servers" && i + 1 < argc) {
        for (const auto& s : paxos_kv::split(argv[++i], ','))
          servers.push_back(paxos_kv::parse_address(s, "--servers"));
      } else if (rest.empty() && a == "--timeout-ms" && i + 1 < argc) {
        const std::string_view v = argv[++i];
        timeout_ms = static_cast<int>(paxos_kv::parse_number(v, 1, 3'600'000, "--timeout-ms", v));
      } else {
        rest.push_back(a);
      }
    }
    if (servers.empty()) throw std::invalid_argument("--servers: required");
    if (rest.empty()) throw std::invalid_argument("a command is required");
    const auto cmd = rest[0];
    std::vector<std::string> args(rest.begin() + 1, rest.end());
    if (cmd == "bench") return bench(servers, args);
    paxos_kv::client c(servers, random_client_id());
    const auto deadline = clock_type::now() + std::chrono::milliseconds(timeout_ms);
    if (cmd == "status") {
      for (std::size_t i = 0; i < servers.size(); ++i) {
        auto s = c.status(i);
        std::cout << servers[i].str() << ": " << (s ? *s : std::string("down")) << "\n";
      }
      return 0;
    }
    std::string command;
    if (cmd == "put" && args.size() == 2) {
      command = kv::encode_put(args[0], args[1]);
    } else if (cmd == "get" && args.size() == 1) {
      command = kv::encode_get(args[0]);
    } else if (cmd == "cas" && args.size() == 3) {
      command = kv::encode_cas(args[0], args[1], args[2]);
    } else {
      throw std::invalid_argument("bad command or argument count: " + cmd);
    }
    auto r = c.call(command, deadline);
    if (!r && !c.last_error().empty()) {
      std::cerr << "paxos_kv_client: refused: " << c.last_error() << "\n";
      return 1;
    }
    if (!r) {
      std::cerr << "paxos_kv_client: no answer within " << timeout_ms << " ms (outcome unknown)\n";
      return 1;
    }
    if (cmd == "put") {
      std::cout << "OK\n";
    } else {
      std::cout << *r << "\n";
    }
    return 0;
  } catch (const std::invalid_argument& e) {
    std::cerr << "paxos_kv_client: " << e.what() << "\n";
    usage();
    return 2;
  }
}
