// SPDX-License-Identifier: MIT
// tests/paxos_net/cluster_test.cpp: three paxos_kv_server processes under kill -9, restarts and
// partitions, with concurrent clients whose history must be linearizable.
//
// Peer links run through proxies the test controls (one per directed link), so a node can be
// cut off from the others and healed. Faults are paced by client progress, not by the clock:
// each fault lasts until the clients completed a number of operations with it in place (which
// also proves a majority keeps serving), bounded by a timeout that fails the test.
#include <linux/close_range.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <fcntl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "distkit/paxos/kv_state_machine.hpp"
#include "distkit/paxos/tcp_transport.hpp"  // standalone Asio, for the proxies
#include "distkit/paxos/testing/linearizability.hpp"
#include "paxos_kv/kv_protocol.hpp"
#include "support/seed.hpp"
#include "support/server_process.hpp"

namespace {

namespace px = distkit::paxos;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using op_record = px::history_op<px::kv_model::input, px::kv_model::output>;

/// TCP proxies for the directed peer links; each can be cut (connections closed, new ones
/// refused) and restored.
class link_proxies {
 public:
  struct link {
    explicit link(asio::io_context& io) : acceptor(io) {}
    asio::ip::tcp::acceptor acceptor;
    asio::ip::tcp::endpoint upstream;
    std::atomic<bool> cut{false};
    std::vector<std::weak_ptr<asio::ip::tcp::socket>> sockets;
  };

  link_proxies() : work_(asio::make_work_guard(io_)) {}
  ~link_proxies() { stop(); }

  /// Adds a proxy to `upstream_port`; returns its listening port.
  auto add(std::uint16_t upstream_port) -> std::pair<std::size_t, std::uint16_t> {
    auto l = std::make_unique<link>(io_);
    l->upstream = asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), upstream_port);
    asio::ip::tcp::endpoint at(asio::ip::make_address("127.0.0.1"), 0);
    l->acceptor.open(at.protocol());
    l->acceptor.bind(at);
    l->acceptor.listen();
    auto port = l->acceptor.local_endpoint().port();
    links_.push_back(std::move(l));
    return {links_.size() - 1, port};
  }

  void start() {
    for (auto& l : links_) accept(*l);
    thread_ = std::thread([this] { io_.run(); });
  }

  void set_cut(std::size_t i, bool cut) {
    links_[i]->cut = cut;
    if (cut) {
      asio::post(io_, [this, i] {
        for (auto& w : links_[i]->sockets) {
          if (auto s = w.lock()) {
            asio::error_code ignored;
            s->close(ignored);
          }
        }
        links_[i]->sockets.clear();
      });
    }
  }

  void stop() {
    if (!thread_.joinable()) return;
    io_.stop();
    thread_.join();
  }

 private:
  void accept(link& l) {
    l.acceptor.async_accept([this, &l](const asio::error_code& ec, asio::ip::tcp::socket s) {
      if (ec) return;
      if (l.cut) {
        asio::error_code ignored;
        s.close(ignored);
      } else {
        auto down = std::make_shared<asio::ip::tcp::socket>(std::move(s));
        auto up = std::make_shared<asio::ip::tcp::socket>(io_);
        l.sockets.push_back(down);
        l.sockets.push_back(up);
        up->async_connect(l.upstream, [this, down, up](const asio::error_code& cec) {
          if (cec) {
            asio::error_code ignored;
            down->close(ignored);
            return;
          }
          pipe(down, up);
          pipe(up, down);
        });
      }
      accept(l);
    });
  }

  void pipe(std::shared_ptr<asio::ip::tcp::socket> from, std::shared_ptr<asio::ip::tcp::socket> to) {
    auto buf = std::make_shared<std::array<char, 65536>>();
    from->async_read_some(asio::buffer(*buf), [this, from, to, buf](const asio::error_code& ec, std::size_t n) {
      if (ec) {
        asio::error_code ignored;
        to->close(ignored);
        from->close(ignored);
        return;
      }
      asio::async_write(*to, asio::buffer(buf->data(), n),
                        [this, from, to, buf](const asio::error_code& wec, std::size_t) {
                          if (wec) {
                            asio::error_code ignored;
                            from->close(ignored);
                            return;
                          }
                          pipe(from, to);
                        });
    });
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::vector<std::unique_ptr<link>> links_;
  std::thread thread_;
};

using distkit_test::free_port;
using distkit_test::server_process;
using distkit_test::status_field;

/// Counts completed client operations so faults can wait for progress.
class progress {
 public:
  void completed() {
    {
      std::lock_guard lock(mu_);
      ++done_;
    }
    cv_.notify_all();
  }
  [[nodiscard]] auto count() -> std::uint64_t {
    std::lock_guard lock(mu_);
    return done_;
  }
  /// Waits until `n` more operations completed; false on timeout.
  auto wait_for_more(std::uint64_t n, std::chrono::seconds timeout) -> bool {
    std::unique_lock lock(mu_);
    const auto target = done_ + n;
    return cv_.wait_for(lock, timeout, [&] { return done_ >= target; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t done_ = 0;
};

/// Sends hostile bytes to a server's peer port: garbage, an oversized length prefix, a frame
/// signed with the wrong key. Each connection is closed by the server.
void attack_peer_port(std::uint16_t port, std::uint32_t to, std::uint64_t seed) {
  asio::io_context io;
  auto send_and_wait_close = [&](const std::vector<std::byte>& bytes) {
    asio::ip::tcp::socket s(io);
    asio::error_code ec;
    s.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
    INFO("connecting to peer port " << port << ": " << ec.message());
    REQUIRE_FALSE(ec);  // a skipped attack would make the refusal counts below meaningless
    asio::write(s, asio::buffer(bytes), ec);
    char c = 0;
    s.read_some(asio::buffer(&c, 1), ec);  // returns when the server closes the connection
  };
  std::mt19937_64 r(seed);
  std::vector<std::byte> garbage(300);
  for (auto& b : garbage) b = static_cast<std::byte>(r());
  send_and_wait_close(garbage);
  const px::frame_key wrong_key{std::string_view("not the cluster key, but long enough")};
  px::frame_encoder forger(1, to == 1 ? 2 : 1, wrong_key);
  std::vector<std::byte> frame;
  const std::string body = "forged";
  forger.encode(to, std::as_bytes(std::span(body.data(), body.size())), frame);
  send_and_wait_close(frame);
  auto oversized = frame;
  distkit::detail::store_le<std::uint32_t>(oversized.data() + 32, 0xFFFFFFF0U);
  oversized.resize(px::frame_format::header_size);
  send_and_wait_close(oversized);
}

}  // namespace

TEST_CASE(
    "paxos_kv cluster of 3 processes stays linearizable under kill -9, restart and partition, and keeps its data "
    "through a restart of all",
    "[paxos_kv][cluster]") {
  const auto seed = distkit_test::test_seed("paxos_kv cluster fault test");
  std::mt19937_64 rng(seed);
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("paxos_kv_cluster_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    std::ofstream key(dir / "cluster.key");
    key << "cluster-test-key-" << seed << "\n";
  }

  constexpr int n = 3;
  std::array<std::uint16_t, n + 1> peer_port{}, client_port{};
  for (int i = 1; i <= n; ++i) {
    peer_port[i] = free_port();
    client_port[i] = free_port();
  }
  // proxy[i][j]: node i's link to node j.
  link_proxies proxies;
  std::map<std::pair<int, int>, std::size_t> link_index;
  std::map<std::pair<int, int>, std::uint16_t> link_port;
  for (int i = 1; i <= n; ++i) {
    for (int j = 1; j <= n; ++j) {
      if (i == j) continue;
      auto [index, port] = proxies.add(peer_port[j]);
      link_index[{i, j}] = index;
      link_port[{i, j}] = port;
    }
  }
  proxies.start();

  std::array<server_process, n + 1> servers;
  std::vector<paxos_kv::address> client_addresses;
  for (int i = 1; i <= n; ++i) {
    std::string peers;
    for (int j = 1; j <= n; ++j) {
      const auto p = i == j ? peer_port[j] : link_port[{i, j}];
      peers += (peers.empty() ? "" : ",") + std::to_string(j) + "=127.0.0.1:" + std::to_string(p) + ":" +
               std::to_string(client_port[j]);
    }
    servers[i].args = {PAXOS_KV_SERVER,
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
    client_addresses.push_back({"127.0.0.1", client_port[i]});
  }

  // ---- concurrent clients, recording the history
  const std::vector<std::string> keys = {"a", "b", "c"};
  constexpr int clients = 5;
  std::mutex history_mu;
  std::vector<op_record> history;
  std::atomic<bool> stop_clients{false};
  progress done;
  const auto epoch = steady::now();
  auto now_ns = [&] {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now() - epoch).count());
  };
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c, client_seed = rng()] {
      std::mt19937_64 r(client_seed);
      paxos_kv::client cl(client_addresses, client_seed | 1, 500ms);
      std::map<std::string, std::string> last_seen;
      for (int i = 0; !stop_clients.load(); ++i) {
        op_record op;
        op.client = static_cast<std::uint64_t>(c);
        op.input.key = keys[r() % keys.size()];
        std::string command;
        switch (r() % 3) {
          case 0:
            op.input.kind = px::kv_model::op::get;
            command = px::kv_state_machine::encode_get(op.input.key);
            break;
          case 1:
            op.input.kind = px::kv_model::op::put;
            op.input.value = "c" + std::to_string(c) + "-" + std::to_string(i);
            command = px::kv_state_machine::encode_put(op.input.key, op.input.value);
            break;
          default:
            op.input.kind = px::kv_model::op::cas;
            op.input.expected = last_seen[op.input.key];
            op.input.value = "c" + std::to_string(c) + "-" + std::to_string(i);
            command = px::kv_state_machine::encode_cas(op.input.key, op.input.expected, op.input.value);
            break;
        }
        op.call = now_ns();
        auto result = cl.call(command, steady::now() + 3s);
        if (result) {
          op.ret = now_ns();
          if (op.input.kind == px::kv_model::op::get) {
            op.output.value = *result;
            last_seen[op.input.key] = *result;
          } else if (op.input.kind == px::kv_model::op::cas) {
            op.output.ok = *result == "1";
            if (op.output.ok) last_seen[op.input.key] = op.input.value;
          }
        } else {
          op.output.unknown = true;  // may take effect at any time after its call, or never
        }
        {
          std::lock_guard lock(history_mu);
          history.push_back(op);
        }
        if (result) done.completed();
      }
    });
  }

  // ---- faults, one at a time, each held until the clients made progress under it
  REQUIRE(done.wait_for_more(50, 30s));  // the cluster elected a leader and serves
  constexpr int rounds = 24;
  int kills = 0, partitions = 0;
  for (int round = 0; round < rounds; ++round) {
    const int victim = 1 + static_cast<int>(rng() % n);
    if (rng() % 2 == 0) {
      INFO("round " << round << ": kill -9 node " << victim);
      servers[victim].kill9();
      ++kills;
      CHECK(done.wait_for_more(150, 20s));  // a majority keeps serving
      servers[victim].start();
    } else {
      INFO("round " << round << ": partition node " << victim);
      for (int j = 1; j <= n; ++j) {
        if (j == victim) continue;
        proxies.set_cut(link_index[{victim, j}], true);
        proxies.set_cut(link_index[{j, victim}], true);
      }
      ++partitions;
      CHECK(done.wait_for_more(150, 20s));
      for (int j = 1; j <= n; ++j) {
        if (j == victim) continue;
        proxies.set_cut(link_index[{victim, j}], false);
        proxies.set_cut(link_index[{j, victim}], false);
      }
    }
    CHECK(done.wait_for_more(50, 20s));  // and after healing too
  }
  // Hostile bytes on every member's peer port while the clients keep going. A member restarted
  // in the last round may still be starting (the clients progress with the other two): wait
  // until each one answers before attacking it.
  {
    paxos_kv::client probe(client_addresses, 1);
    for (int i = 1; i <= n; ++i) {
      INFO("waiting for member " << i << " to answer before the attack");
      REQUIRE(probe.wait_chosen(static_cast<std::size_t>(i - 1), 0, steady::now() + 30s).has_value());
    }
  }
  for (int i = 1; i <= n; ++i) attack_peer_port(peer_port[i], static_cast<std::uint32_t>(i), rng());
  CHECK(done.wait_for_more(50, 20s));
  stop_clients = true;
  for (auto& t : threads) t.join();

  // ---- every replica converges to the same applied log
  paxos_kv::client admin(client_addresses, 1);
  std::uint64_t target = 0;
  for (int i = 0; i < n; ++i) {
    if (auto s = admin.status(static_cast<std::size_t>(i)))
      target = std::max<std::uint64_t>(target, std::stoull(status_field(*s, "chosen")));
  }
  REQUIRE(target > 0);
  std::vector<std::string> final_states;
  for (int attempt = 0; attempt < 3; ++attempt) {
    final_states.clear();
    std::uint64_t highest = target;
    for (int i = 0; i < n; ++i) {
      auto s = admin.wait_chosen(static_cast<std::size_t>(i), target, steady::now() + 30s);
      REQUIRE(s.has_value());
      highest = std::max<std::uint64_t>(highest, std::stoull(status_field(*s, "chosen")));
      final_states.push_back(status_field(*s, "chosen") + "/" + status_field(*s, "checksum") + "/" +
                             status_field(*s, "keys"));
    }
    if (highest == target) break;
    target = highest;  // a new leader added no-op slots meanwhile: wait for those too
  }
  INFO("replica states (chosen/checksum/keys): " << final_states[0] << " " << final_states[1] << " "
                                                 << final_states[2]);
  CHECK(final_states[0] == final_states[1]);
  CHECK(final_states[1] == final_states[2]);

  // ---- the history is linearizable
  std::size_t completed = 0;
  for (const auto& op : history) completed += op.ret != px::pending_return ? 1 : 0;
  INFO("history: " << history.size() << " operations, " << completed << " completed; " << kills << " kills, "
                   << partitions << " partitions");
  CHECK(completed >= 50 + rounds * 200);
  auto verdict = px::check_linearizability<px::kv_model>(history);
  std::cout << "paxos_kv cluster: " << history.size() << " operations (" << completed << " completed), " << kills
            << " kill -9s, " << partitions << " partitions, " << verdict.states_explored
            << " checker states, replicas at " << final_states[0] << "\n";
  CHECK(verdict.verdict == px::check_verdict::linearizable);
  for (int i = 0; i < n; ++i) {
    auto s = admin.status(static_cast<std::size_t>(i));
    REQUIRE(s.has_value());
    CHECK(std::stoull(status_field(*s, "frames_refused")) >= 3);
  }

  // ---- kill -9 all three at once, restart them: every acknowledged write is still there
  std::map<std::string, std::string> before_restart;
  paxos_kv::client reader(client_addresses, rng() | 1);
  for (const auto& k : keys) {
    auto v = reader.call(px::kv_state_machine::encode_get(k), steady::now() + 20s);
    REQUIRE(v.has_value());
    before_restart[k] = *v;
  }
  for (int i = 1; i <= n; ++i) servers[i].kill9();
  for (int i = 1; i <= n; ++i) servers[i].start();
  for (const auto& k : keys) {
    auto v = reader.call(px::kv_state_machine::encode_get(k), steady::now() + 20s);
    REQUIRE(v.has_value());
    CHECK(*v == before_restart[k]);
  }
  for (int i = 0; i < n; ++i) {
    auto s = admin.status(static_cast<std::size_t>(i));
    std::cout << "node " << i + 1 << ": " << (s ? *s : std::string("down")) << "\n";
  }
  const bool passed = verdict.ok() && final_states[0] == final_states[1] && final_states[1] == final_states[2];
  if (!passed && std::getenv("PAXOS_KV_DEBUG") != nullptr) {
    for (int i = 1; i <= n; ++i) std::cout << "pid " << i << " " << servers[i].pid << " peer " << peer_port[i] << "\n";
    for (auto& [k, v] : link_port) std::cout << "link " << k.first << "->" << k.second << " port " << v << "\n";
    std::fflush(stdout);
    std::system("ss -tnp | grep paxos_kv");
  }
  for (int i = 1; i <= n; ++i) servers[i].kill9();
  proxies.stop();
  if (passed) {
    fs::remove_all(dir);
  } else {
    std::cout << "server logs kept in " << dir << "\n";
  }
}
