// SPDX-License-Identifier: MIT
// tests/paxos_net/tls_cluster_test.cpp: three real paxos_kv_server processes whose peer port
// runs mutual TLS 1.3 (certificates made at test time, no cluster key): writes and reads
// succeed; a peer with a certificate from another CA, and a plain-TCP peer, are refused and
// counted; SIGHUP reloads the certificates, and a CA file that does not load keeps the ones in
// use. Every wait is bounded; nothing sleeps to time.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "distkit/paxos/kv_state_machine.hpp"
#include "distkit/paxos/tcp_transport.hpp"
#include "paxos_kv/kv_protocol.hpp"
#include "support/server_process.hpp"
#include "support/tls_certs.hpp"

namespace {

namespace px = distkit::paxos;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using distkit_test::free_port;
using distkit_test::server_process;
using distkit_test::status_field;

auto number(const std::optional<std::string>& status, const std::string& name) -> std::uint64_t {
  if (!status) return 0;
  auto v = status_field(*status, name);
  return v.empty() ? 0 : std::stoull(v);
}

/// Polls `done` until it holds or 20 s pass; returns whether it held.
auto eventually(const std::function<bool()>& done) -> bool {
  const auto deadline = steady::now() + 20s;
  while (!done()) {
    if (steady::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace

TEST_CASE("paxos_kv with mutual TLS: a 3-process cluster serves writes and reads and refuses strangers",
          "[paxos_kv][cluster][security][tls]") {
  distkit_test::test_pki pki;
  auto ca = pki.make_ca("cluster");
  auto other_ca = pki.make_ca("other");
  constexpr int n = 3;
  std::array<distkit_test::test_node_cert, n + 1> certs;
  for (int i = 1; i <= n; ++i) {
    certs[i] = pki.issue(ca, "node-" + std::to_string(i), "node" + std::to_string(i));
  }
  // Node 1's CA file is its own copy, so that it can be broken and reloaded alone.
  const auto ca1 = (pki.dir() / "ca-node1.pem").string();
  fs::copy_file(ca.cert_file, ca1);

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
  std::vector<paxos_kv::address> addresses;
  struct killer {
    std::array<server_process, n + 1>& s;
    ~killer() {
      for (auto& p : s) p.kill9();
    }
  } stop_all{servers};
  for (int i = 1; i <= n; ++i) {
    servers[i].args = {PAXOS_KV_SERVER,
                       "--id",
                       std::to_string(i),
                       "--peers",
                       peers,
                       "--data-dir",
                       (pki.dir() / ("data" + std::to_string(i))).string(),
                       "--tls-cert",
                       certs[i].cert_file,
                       "--tls-key",
                       certs[i].key_file,
                       "--tls-ca",
                       i == 1 ? ca1 : ca.cert_file,
                       "--quiet"};
    servers[i].log = (pki.dir() / ("node" + std::to_string(i) + ".log")).string();
    servers[i].start();
    addresses.push_back({"127.0.0.1", client_port[i]});
  }
  INFO("server logs in " << pki.dir().string());

  paxos_kv::client kv(addresses, 1, 2000ms);
  for (int i = 0; i < 20; ++i) {
    const auto key = "k" + std::to_string(i);
    REQUIRE(kv.call(px::kv_state_machine::encode_put(key, "v" + std::to_string(i)), steady::now() + 30s) == "");
  }
  for (int i = 0; i < 20; ++i) {
    CHECK(kv.call(px::kv_state_machine::encode_get("k" + std::to_string(i)), steady::now() + 30s) ==
          "v" + std::to_string(i));
  }
  for (int i = 1; i <= n; ++i) {
    auto s = kv.status(static_cast<std::size_t>(i - 1));
    REQUIRE(s);
    CHECK(number(s, "peer_tls_handshake_failed") == 0);
    CHECK(number(s, "peer_inbound_verified") >= 1);
  }

  // A stranger claiming to be node 1 with a certificate from another CA, at node 2's peer port.
  {
    px::tcp_transport_options o;
    o.node_id = 1;
    o.cluster_id = 1;
    o.peers[2] = {"127.0.0.1", peer_port[2]};
    auto stranger = pki.issue(other_ca, "node-1", "stranger");
    px::tcp_tls_options t;
    t.cert_chain_file = stranger.cert_file;
    t.private_key_file = stranger.key_file;
    t.ca_file = ca.cert_file;
    o.tls = t;
    px::tcp_transport forged(std::move(o));
    REQUIRE(forged.send(2, std::vector<std::byte>(8)));
    CHECK(eventually([&] { return number(kv.status(1), "peer_tls_handshake_failed") >= 1; }));
  }
  // A plain-TCP peer at node 3's peer port: it never gets past the TLS handshake (timed out).
  {
    px::tcp_transport_options o;
    o.node_id = 1;
    o.cluster_id = 1;
    o.peers[3] = {"127.0.0.1", peer_port[3]};
    px::tcp_transport plain(std::move(o));
    REQUIRE(plain.send(3, std::vector<std::byte>(8)));
    CHECK(eventually([&] { return number(kv.status(2), "peer_unverified_timed_out") >= 1; }));
    CHECK(plain.counters().frames_sent == 0);
  }

  // SIGHUP reloads the certificates; a CA file that does not load keeps the ones in use.
  REQUIRE(::kill(servers[1].pid, SIGHUP) == 0);
  CHECK(eventually([&] { return number(kv.status(0), "tls_reloads") >= 1; }));
  {
    std::ofstream broken(ca1, std::ios::trunc);
    broken << "not a certificate\n";
  }
  REQUIRE(::kill(servers[1].pid, SIGHUP) == 0);
  CHECK(eventually([&] { return number(kv.status(0), "tls_reload_failures") >= 1; }));
  CHECK(kv.call(px::kv_state_machine::encode_put("after", "reload"), steady::now() + 30s) == "");
  CHECK(kv.call(px::kv_state_machine::encode_get("after"), steady::now() + 30s) == "reload");
}

TEST_CASE("paxos_kv refuses to start with part of the TLS files, naming the missing flag",
          "[paxos_kv][cluster][security][tls]") {
  distkit_test::test_pki pki;
  auto ca = pki.make_ca("cluster");
  auto c1 = pki.issue(ca, "node-1", "n1");
  server_process s;
  s.args = {PAXOS_KV_SERVER,
            "--id",
            "1",
            "--peers",
            "1=127.0.0.1:" + std::to_string(free_port()) + ":" + std::to_string(free_port()),
            "--data-dir",
            (pki.dir() / "data").string(),
            "--tls-cert",
            c1.cert_file,
            "--tls-ca",
            ca.cert_file};
  s.log = (pki.dir() / "start.log").string();
  s.start();
  CHECK(s.wait_exit(20s) != 0);
  CHECK(s.output().find("--tls-key") != std::string::npos);
}
