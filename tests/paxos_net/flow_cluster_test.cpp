// SPDX-License-Identifier: MIT
// tests/paxos_net/flow_cluster_test.cpp: byte-bounded flow control on three real paxos_kv_server
// processes on loopback. A follower that missed more than 100 MiB of 1 MB writes catches up
// after it returns; an oversized request is refused with a clear error while the cluster keeps
// serving; a replica bound larger than the transport's frame limit is refused at start-up.
//
// Every wait is bounded and fails the test when it runs out; nothing sleeps.
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <fcntl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "distkit/paxos/kv_state_machine.hpp"
#include "paxos_kv/kv_protocol.hpp"
#include "support/server_process.hpp"

namespace {

namespace px = distkit::paxos;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

/// The server binary: the one built with this test, or PAXOS_KV_FLOW_SERVER to try another
/// build (for example the code before the byte bounds, to watch this test fail).
auto server_binary() -> std::string {
  const char* other = std::getenv("PAXOS_KV_FLOW_SERVER");
  return other != nullptr ? std::string(other) : std::string(PAXOS_KV_SERVER);
}

using distkit_test::free_port;
using distkit_test::server_process;
using distkit_test::status_field;

auto number(const std::string& status, const std::string& name) -> std::uint64_t {
  auto v = status_field(status, name);
  return v.empty() ? 0 : std::stoull(v);
}

}  // namespace

TEST_CASE(
    "paxos_kv flow: a follower that missed over 100 MiB of 1 MB writes catches up, and an oversized request is "
    "refused while the cluster keeps serving",
    "[paxos_kv][cluster][flow]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("paxos_kv_flow_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    std::ofstream key(dir / "cluster.key");
    key << "flow-test-cluster-key-" << ::getpid() << "\n";
  }
  constexpr int n = 3;
  std::array<std::uint16_t, n + 1> peer_port{}, client_port{};
  for (int i = 1; i <= n; ++i) {
    peer_port[i] = free_port();
    client_port[i] = free_port();
  }
  std::string peers;
  for (int j = 1; j <= n; ++j) {
    peers += (peers.empty() ? "" : ",") + std::to_string(j) + "=127.0.0.1:" + std::to_string(peer_port[j]) + ":" +
             std::to_string(client_port[j]);
  }
  std::array<server_process, n + 1> servers;
  struct stop_all {  // no server outlives the test, whatever assertion ends it
    std::array<server_process, n + 1>& s;
    ~stop_all() {
      for (auto& p : s) p.kill9();
    }
  } stopper{servers};
  std::vector<paxos_kv::address> addresses;
  for (int i = 1; i <= n; ++i) {
    servers[i].args = {server_binary(),
                       "--id",
                       std::to_string(i),
                       "--peers",
                       peers,
                       "--data-dir",
                       (dir / ("node" + std::to_string(i))).string(),
                       "--cluster-key-file",
                       (dir / "cluster.key").string()};
    servers[i].log = (dir / ("node" + std::to_string(i) + ".log")).string();
    servers[i].start();
    addresses.push_back({"127.0.0.1", client_port[i]});
  }
  paxos_kv::client admin(addresses, 1, 5000ms);
  REQUIRE(admin.call(px::kv_state_machine::encode_put("hello", "world"), steady::now() + 30s).has_value());

  // ---- a follower goes down; 106 writes of 1 MB (101 MiB) are made without it, by 24
  // concurrent clients, so that 1 MB commands queue up at the leader together
  int leader = 0;
  for (int i = 1; i <= n; ++i) {
    auto s = admin.status(static_cast<std::size_t>(i - 1));
    if (s && status_field(*s, "role") == "leader") leader = i;
  }
  REQUIRE(leader != 0);
  const int lagging = leader % n + 1;
  servers[lagging].kill9();

  constexpr int writes = 106;
  constexpr std::size_t value_bytes = 1'000'000;
  constexpr int writers = 24;
  std::atomic<int> next{0}, acknowledged{0};
  const auto write_deadline = steady::now() + 90s;
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      paxos_kv::client c(addresses, 1000 + static_cast<std::uint64_t>(w), 5000ms);
      for (int k = next++; k < writes; k = next++) {
        std::string value(value_bytes, static_cast<char>('a' + k % 26));
        value.replace(0, std::to_string(k).size(), std::to_string(k));
        if (c.call(px::kv_state_machine::encode_put("big" + std::to_string(k % 16), value), write_deadline)) {
          ++acknowledged;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  INFO("server logs in " << dir);
  for (int i = 1; acknowledged.load() != writes && i <= n; ++i) {
    auto s = admin.status(static_cast<std::size_t>(i - 1));
    std::cout << "node " << i << ": " << (s ? *s : std::string("down")) << "\n";
  }
  REQUIRE(acknowledged.load() == writes);

  const auto leader_status = admin.status(static_cast<std::size_t>(leader - 1));
  REQUIRE(leader_status.has_value());
  const auto target = number(*leader_status, "chosen");
  INFO("leader: " << *leader_status);
  CHECK(number(*leader_status, "msg_oversized") == 0);  // no message passed the frame limit

  // ---- the follower returns and must catch up through bounded messages
  servers[lagging].start();
  std::string lagging_status;
  const auto catchup_deadline = steady::now() + 90s;
  while (steady::now() < catchup_deadline) {
    auto s = admin.wait_chosen(static_cast<std::size_t>(lagging - 1), target, catchup_deadline);
    if (!s) break;
    lagging_status = *s;
    if (number(lagging_status, "chosen") >= target) break;
  }
  INFO("returning follower: " << lagging_status);
  REQUIRE(number(lagging_status, "chosen") >= target);
  const auto leader_after = admin.status(static_cast<std::size_t>(leader - 1));
  REQUIRE(leader_after.has_value());
  if (number(*leader_after, "chosen") == number(lagging_status, "chosen")) {
    CHECK(status_field(*leader_after, "checksum") == status_field(lagging_status, "checksum"));
  }
  CHECK(number(*leader_after, "catchup_replies_cut") > 0);  // the catch-up took several replies
  CHECK(number(*leader_after, "msg_oversized") == 0);

  // ---- one oversized request (5 MiB, over the 4 MiB batch bound): a clear error, at once
  paxos_kv::client user(addresses, 77, 5000ms);
  const auto asked = steady::now();
  auto big = user.call(px::kv_state_machine::encode_put("huge", std::string(5 << 20, 'h')), asked + 30s);
  CHECK_FALSE(big.has_value());
  INFO("refusal: " << user.last_error());
  CHECK(user.last_error().find("too large") != std::string::npos);
  CHECK(user.last_error().find("max_batch_bytes") != std::string::npos);
  CHECK(steady::now() < asked + 10s);  // refused, not retried until the deadline
  // ... and the cluster keeps serving, reads included
  CHECK(user.call(px::kv_state_machine::encode_put("after", "ok"), steady::now() + 30s).has_value());
  CHECK(user.call(px::kv_state_machine::encode_get("after"), steady::now() + 30s) == std::optional<std::string>("ok"));
  CHECK(user.call(px::kv_state_machine::encode_get("huge"), steady::now() + 30s) == std::optional<std::string>(""));
  std::uint64_t too_large = 0;
  for (int i = 1; i <= n; ++i) {
    auto s = admin.status(static_cast<std::size_t>(i - 1));
    REQUIRE(s.has_value());
    too_large += number(*s, "propose_too_large") + number(*s, "requests_too_large");
  }
  CHECK(too_large == 1);

  // ---- a replica bound above the transport's frame limit is refused at start-up, naming both
  server_process bad;
  const std::string bad_peers = "1=127.0.0.1:" + std::to_string(free_port()) + ":" + std::to_string(free_port()) +
                                ",2=127.0.0.1:" + std::to_string(free_port()) + ":" + std::to_string(free_port());
  bad.args = {server_binary(),
              "--id",
              "1",
              "--peers",
              bad_peers,
              "--data-dir",
              (dir / "bad").string(),
              "--max-frame-bytes",
              "1048576",
              "--max-message-bytes",
              "4194304",
              "--insecure"};
  bad.log = (dir / "bad.log").string();
  bad.start();
  CHECK(bad.wait_exit(20s) == 2);  // the usage error status
  const auto refusal = bad.output();
  INFO("start-up refusal: " << refusal);
  CHECK(refusal.find("max_message_bytes") != std::string::npos);
  CHECK(refusal.find("max_body") != std::string::npos);

  for (int i = 1; i <= n; ++i) servers[i].kill9();
  fs::remove_all(dir);  // a failed REQUIRE above leaves the logs (their path is in its message)
}
