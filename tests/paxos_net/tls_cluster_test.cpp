// SPDX-License-Identifier: MIT
// tests/paxos_net/tls_cluster_test.cpp: three real paxos_kv_server processes whose peer port
// runs mutual TLS 1.3 (certificates made at test time, no cluster key): writes and reads
// succeed; a peer with a certificate from another CA, and a plain-TCP peer, are refused and
// counted; SIGHUP reloads the certificates, and a CA file that does not load keeps the ones in
// use; certificates, CA and HMAC keys rotate under the load of 256 clients, with a member restarted after
// each step so that new connections use the new files, and no write fails, is lost or repeats.
// Every wait is bounded; nothing sleeps to time.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "distkit/paxos/kv_state_machine.hpp"
#include "distkit/paxos/tcp_transport.hpp"
#include "distkit/paxos/testing/linearizability.hpp"
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

/// The server binary: PAXOS_KV_TLS_SERVER names another one (for example a sanitized build).
auto server_binary() -> std::string {
  const char* other = std::getenv("PAXOS_KV_TLS_SERVER");
  return other != nullptr ? std::string(other) : std::string(PAXOS_KV_SERVER);
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

/// Copies `from` over `to` atomically (write beside it, then rename).
void replace_file(const std::string& from, const std::string& to) {
  fs::copy_file(from, to + ".tmp", fs::copy_options::overwrite_existing);
  fs::rename(to + ".tmp", to);
}

/// Three paxos_kv servers with mutual TLS and HMAC frames inside, member i reading node<i>.pem,
/// node<i>.key, ca<i>.pem and its keyring node<i>.keyring in `dir` (the caller writes them
/// before `start`).
struct tls_cluster {
  static constexpr int n = 3;
  fs::path dir;
  std::array<std::uint16_t, n + 1> peer_port{}, client_port{};
  std::array<server_process, n + 1> servers;
  std::vector<paxos_kv::address> addresses;

  explicit tls_cluster(fs::path d) : dir(std::move(d)) {
    for (int i = 1; i <= n; ++i) {
      peer_port[i] = free_port();
      client_port[i] = free_port();
    }
    std::string peers;
    for (int j = 1; j <= n; ++j) {
      peers += (peers.empty() ? "" : ",") + std::to_string(j) + "=127.0.0.1:" + std::to_string(peer_port[j]) + ":" +
               std::to_string(client_port[j]);
    }
    for (int i = 1; i <= n; ++i) {
      const auto id = std::to_string(i);
      servers[i].args = {server_binary(),
                         "--id",
                         id,
                         "--peers",
                         peers,
                         "--data-dir",
                         (dir / ("data" + id)).string(),
                         "--cluster-key-file",
                         file(i, "keyring"),
                         "--tls-cert",
                         file(i, "pem"),
                         "--tls-key",
                         file(i, "key"),
                         "--tls-ca",
                         ca(i)};  // not --quiet: a failure shows the servers' logs
      servers[i].log = (dir / ("node" + id + ".log")).string();
      addresses.push_back({"127.0.0.1", client_port[i]});
    }
  }
  tls_cluster(const tls_cluster&) = delete;
  auto operator=(const tls_cluster&) -> tls_cluster& = delete;
  ~tls_cluster() {
    for (auto& p : servers) p.kill9();
  }
  [[nodiscard]] auto file(int i, const std::string& ext) const -> std::string {
    return (dir / ("node" + std::to_string(i) + "." + ext)).string();
  }
  [[nodiscard]] auto ca(int i) const -> std::string { return (dir / ("ca" + std::to_string(i) + ".pem")).string(); }
};

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
    servers[i].args = {server_binary(),
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
  s.args = {server_binary(),
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

TEST_CASE(
    "paxos_kv with mutual TLS: certificates, CA and HMAC keys rotate under load with SIGHUP and restarts; no "
    "write fails, is lost or repeats",
    "[paxos_kv][cluster][security][tls]") {
  distkit_test::test_pki pki;
  auto old_ca = pki.make_ca("old");
  auto new_ca = pki.make_ca("new");
  const auto both = pki.bundle("both.pem", {&old_ca, &new_ca});
  std::array<distkit_test::test_node_cert, tls_cluster::n + 1> old_certs, new_certs;
  tls_cluster c(pki.dir() / "cluster");
  const std::string old_key = "the old cluster key of the tls rotation test";
  const std::string new_key = "the new cluster key of the tls rotation test";
  auto write_keyrings = [&](const std::string& text) {
    for (int i = 1; i <= tls_cluster::n; ++i) {
      std::ofstream(c.file(i, "keyring") + ".tmp") << text;
      fs::rename(c.file(i, "keyring") + ".tmp", c.file(i, "keyring"));
    }
  };
  fs::create_directories(c.dir);
  for (int i = 1; i <= tls_cluster::n; ++i) {
    old_certs[i] = pki.issue(old_ca, "node-" + std::to_string(i), "old" + std::to_string(i));
    new_certs[i] = pki.issue(new_ca, "node-" + std::to_string(i), "new" + std::to_string(i));
    replace_file(old_certs[i].cert_file, c.file(i, "pem"));
    replace_file(old_certs[i].key_file, c.file(i, "key"));
    replace_file(old_ca.cert_file, c.ca(i));
    std::ofstream(c.file(i, "keyring")) << "# distkit keyring\n0 " << old_key << "\nsign 0\n";
    c.servers[i].start();
  }
  INFO("server logs in " << c.dir.string());
  paxos_kv::client admin(c.addresses, 1, 2000ms);
  REQUIRE(admin.call(px::kv_state_machine::encode_put("warm", "up"), steady::now() + 30s).has_value());

  constexpr int clients = 256;
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::atomic<int> appended{0};
  std::vector<int> written(clients, 0);
  // The history for the linearizability checker: every append, and after every fourth append a
  // read of another client's key (so each key has one writer and many concurrent readers).
  using op_record = px::testing::history_op<px::testing::kv_model::input, px::testing::kv_model::output>;
  std::mutex history_mu;
  std::vector<op_record> history;
  const auto epoch = steady::now();
  const auto now_ns = [&] {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now() - epoch).count());
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      paxos_kv::client cl(c.addresses, static_cast<std::uint64_t>(100 + i), 2000ms);
      const std::string key = "tls" + std::to_string(i);
      std::vector<op_record> mine;
      for (int n = 0; !stop.load() || n < 3; ++n) {
        op_record op;
        op.client = static_cast<std::uint64_t>(i);
        op.input.kind = px::testing::kv_model::op::append;
        op.input.key = key;
        op.input.value = "." + std::to_string(n);
        op.call = now_ns();
        if (!cl.call(px::kv_state_machine::encode_append(key, op.input.value), steady::now() + 30s)) {
          failures.fetch_add(1);
          op.output.unknown = true;
          mine.push_back(op);
          break;
        }
        op.ret = now_ns();
        mine.push_back(op);
        written[static_cast<std::size_t>(i)] = n + 1;
        appended.fetch_add(1);
        if (n % 4 == 3) {
          op_record read;
          read.client = static_cast<std::uint64_t>(i);
          read.input.kind = px::testing::kv_model::op::get;
          read.input.key = "tls" + std::to_string((i * 7 + n) % clients);
          read.call = now_ns();
          const auto value = cl.call(px::kv_state_machine::encode_get(read.input.key), steady::now() + 30s);
          if (!value) {
            failures.fetch_add(1);
            read.output.unknown = true;
            mine.push_back(read);
            break;
          }
          read.ret = now_ns();
          read.output.value = *value;
          mine.push_back(read);
        }
      }
      const std::lock_guard lock(history_mu);
      history.insert(history.end(), mine.begin(), mine.end());
    });
  }
  struct joiner {
    std::atomic<bool>& stop;
    std::vector<std::thread>& threads;
    ~joiner() {
      stop.store(true);
      for (auto& t : threads) {
        if (t.joinable()) t.join();
      }
    }
  } join_all{stop, threads};
  // Waits (bounded) until the clients made 1,000 more appends.
  auto await_traffic = [&] {
    const int target = appended.load() + 1000;
    const auto until = steady::now() + 30s;
    while (appended.load() < target && failures.load() == 0 && steady::now() < until) std::this_thread::yield();
    REQUIRE(appended.load() >= target);
  };
  // Sends SIGHUP to every member and waits (bounded) until each counted one more `tls_field`
  // and one more key reload.
  auto reload_all = [&](const std::string& tls_field) {
    std::array<std::uint64_t, tls_cluster::n + 1> tls_before{}, keys_before{};
    for (int i = 1; i <= tls_cluster::n; ++i) {
      auto st = admin.status(static_cast<std::size_t>(i - 1));
      tls_before[i] = number(st, tls_field);
      keys_before[i] = number(st, "key_reloads");
    }
    for (int i = 1; i <= tls_cluster::n; ++i) REQUIRE(::kill(c.servers[i].pid, SIGHUP) == 0);
    for (int i = 1; i <= tls_cluster::n; ++i) {
      const bool reloaded = eventually([&] {
        auto st = admin.status(static_cast<std::size_t>(i - 1));
        return number(st, tls_field) > tls_before[i] && number(st, "key_reloads") > keys_before[i];
      });
      if (!reloaded) {
        auto read = [](const std::string& path) {
          std::ifstream in(path);
          std::stringstream ss;
          ss << in.rdbuf();
          return ss.str();
        };
        const auto proc = "/proc/" + std::to_string(c.servers[i].pid);
        FAIL_CHECK("server " << i << " did not count " << tls_field << "; pid " << c.servers[i].pid << " cmdline "
                             << read(proc + "/cmdline").substr(0, 40) << "\nwchan " << read(proc + "/wchan")
                             << "\nstatus " << read(proc + "/status").substr(0, 200) << "\nits output:\n"
                             << c.servers[i].output());
      }
    }
  };
  // A restarted member opens new connections (and its peers open new ones to it): with the
  // files in place now.
  auto restart = [&](int i) {
    c.servers[i].kill9();
    c.servers[i].start();
    INFO("restarted server " << i);
    REQUIRE(eventually([&] { return admin.status(static_cast<std::size_t>(i - 1)).has_value(); }));
  };

  await_traffic();
  // 1) every member trusts both CAs, and accepts both keys.
  for (int i = 1; i <= tls_cluster::n; ++i) replace_file(both, c.ca(i));
  write_keyrings("# distkit keyring\n0 " + old_key + "\n1 " + new_key + "\nsign 0\n");
  reload_all("tls_reloads");
  restart(1);
  await_traffic();
  // 2) every member presents its certificate from the new CA, and signs with the new key.
  write_keyrings("# distkit keyring\n0 " + old_key + "\n1 " + new_key + "\nsign 1\n");
  for (int i = 1; i <= tls_cluster::n; ++i) {
    replace_file(new_certs[i].cert_file, c.file(i, "pem"));
    replace_file(new_certs[i].key_file, c.file(i, "key"));
  }
  reload_all("tls_reloads");
  restart(2);
  await_traffic();
  // 3) every member trusts only the new CA, and accepts only the new key.
  for (int i = 1; i <= tls_cluster::n; ++i) replace_file(new_ca.cert_file, c.ca(i));
  write_keyrings("# distkit keyring\n1 " + new_key + "\nsign 1\n");
  reload_all("tls_reloads");
  restart(3);
  await_traffic();
  // A CA file that does not load keeps the context in use.
  {
    std::ofstream bad((pki.dir() / "bad.pem").string());
    bad << "not a certificate\n";
  }
  for (int i = 1; i <= tls_cluster::n; ++i) replace_file((pki.dir() / "bad.pem").string(), c.ca(i));
  reload_all("tls_reload_failures");
  await_traffic();

  stop.store(true);
  for (auto& t : threads) t.join();
  CHECK(failures.load() == 0);
  int total = 0;
  for (int w : written) total += w;
  std::cout << "[paxos_kv tls rotate] " << clients << " clients, " << total
            << " appends through 3 certificate and key reloads and 3 restarts\n";
  // The whole history (appends, and reads of other clients' keys during the rotations and
  // restarts) is linearizable.
  const auto verdict = px::testing::check_linearizability<px::testing::kv_model>(history);
  std::cout << "[paxos_kv tls rotate] history of " << history.size() << " operations: "
            << (verdict.verdict == px::testing::check_verdict::linearizable ? "linearizable" : "NOT linearizable")
            << " (" << verdict.states_explored << " checker states)\n";
  CHECK(verdict.verdict == px::testing::check_verdict::linearizable);
  // Every client's appends are there exactly once each, in order.
  for (int i = 0; i < clients; ++i) {
    std::string expected;
    for (int n = 0; n < written[static_cast<std::size_t>(i)]; ++n) expected += "." + std::to_string(n);
    CHECK(admin.call(px::kv_state_machine::encode_get("tls" + std::to_string(i)), steady::now() + 30s) ==
          std::optional<std::string>(expected));
  }
  // The members never refused one another; a certificate of the removed CA is refused now.
  for (int i = 1; i <= tls_cluster::n; ++i) {
    auto st = admin.status(static_cast<std::size_t>(i - 1));
    REQUIRE(st.has_value());
    INFO("server " << i << ": " << *st);
    CHECK(number(st, "peer_tls_handshake_failed") == 0);
    CHECK(number(st, "peer_tls_outbound_failed") == 0);
    CHECK(number(st, "frame_refused_unknown_key") == 0);
    CHECK(number(st, "frame_refused_bad_mac") == 0);
  }
  px::tcp_transport_options o;
  o.node_id = 1;
  o.cluster_id = 1;
  o.peers[2] = {"127.0.0.1", c.peer_port[2]};
  px::tcp_tls_options t;
  t.cert_chain_file = old_certs[1].cert_file;
  t.private_key_file = old_certs[1].key_file;
  t.ca_file = both;
  o.tls = t;
  px::tcp_transport old_member(std::move(o));
  REQUIRE(old_member.send(2, std::vector<std::byte>(8)));
  CHECK(eventually([&] { return number(admin.status(1), "peer_tls_handshake_failed") >= 1; }));
}

TEST_CASE("paxos_kv_server survives SIGHUP while it starts (reload signals sent before its handler runs)",
          "[paxos_kv][cluster][tls]") {
  distkit_test::test_pki pki;
  auto ca = pki.make_ca("cluster");
  auto c1 = pki.issue(ca, "node-1", "n1");
  const auto client_port = free_port();
  server_process s;
  s.args = {server_binary(),
            "--id",
            "1",
            "--peers",
            "1=127.0.0.1:" + std::to_string(free_port()) + ":" + std::to_string(client_port),
            "--data-dir",
            (pki.dir() / "data").string(),
            "--tls-cert",
            c1.cert_file,
            "--tls-key",
            c1.key_file,
            "--tls-ca",
            ca.cert_file};
  s.log = (pki.dir() / "start.log").string();
  s.start();
  // Once the process has its write-ahead log open (it is in main, loading its state, and has
  // not yet installed the reload handler), SIGHUPs are sent as fast as the loop runs until it
  // serves. Without the early ignore, the first one ends it.
  const auto wal = (pki.dir() / "data" / "wal").string();
  auto wal_open = [&] {
    std::error_code ec;
    for (const auto& fd : fs::directory_iterator("/proc/" + std::to_string(s.pid) + "/fd", ec)) {
      if (fs::read_symlink(fd.path(), ec).string() == wal) return true;
    }
    return false;
  };
  REQUIRE(eventually(wal_open));
  paxos_kv::client kv({{"127.0.0.1", client_port}}, 1, 200ms);
  int sent = 0;
  CHECK(eventually([&] {
    ::kill(s.pid, SIGHUP);
    ++sent;
    return kv.status(0).has_value();
  }));
  INFO(sent << " SIGHUPs sent; output:\n" << s.output());
  int status = 0;
  CHECK(::waitpid(s.pid, &status, WNOHANG) == 0);  // still running
}
