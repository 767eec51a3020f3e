// SPDX-License-Identifier: MIT
// examples/paxos_kv/server.cpp: one replica of a replicated key-value store (Multi-Paxos over TCP).
//
//   paxos_kv_server --id 1 --peers 1=127.0.0.1:7001:8001,2=127.0.0.1:7002:8002,3=127.0.0.1:7003:8003
//                   --data-dir /var/lib/kv1 [--client-port 8001] [--cluster-key-file cluster.key]
//
// Threads: the main thread runs the replica, the client connections and the tick timer on one
// Asio event loop; the peer transport runs its own I/O thread and wakes the main loop when
// frames arrive. Every pass of the loop takes whatever arrived (client commands, peer
// messages), lets the replica batch it, and persists the result with ONE fdatasync (group
// commit), so many concurrent clients share each disk flush.
//
// Reads go through the log: `get` is a command like `put`, so it is linearizable without any
// clock assumption (no leases).
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <variant>
#include <vector>

// clang 14 reports the `[this]` captures of replica::step's generic lambdas as unused (they
// are used: the lambdas call member functions); silenced for the core's header only.
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wunused-lambda-capture"
#endif
#include "distkit/paxos.hpp"
#if defined(__clang__)
#pragma clang diagnostic pop
#endif
#include "distkit/paxos/tcp_message_transport.hpp"
#include "distkit/paxos/tcp_transport.hpp"
#include "kv_protocol.hpp"

namespace {

namespace px = distkit::paxos;
using namespace std::chrono_literals;

struct options {
  std::uint32_t id = 0;
  std::map<std::uint32_t, paxos_kv::member> members;
  std::filesystem::path data_dir;
  std::uint16_t client_port = 0;
  std::string key_file;
  std::uint64_t cluster_id = 1;
  std::chrono::milliseconds tick{10};
  bool quiet = false;
};

void usage() {
  std::cout << "usage: paxos_kv_server --id N --peers ID=HOST:PEER_PORT:CLIENT_PORT,... --data-dir DIR\n"
               "                       [--client-port P] [--cluster-key-file FILE] [--cluster-id N] [--quiet]\n"
               "  --peers lists every member, this one included; --client-port overrides this member's.\n";
}

auto parse_options(int argc, char** argv) -> std::optional<options> {
  options o;
  std::string peers;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + ": missing value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      usage();
      return std::nullopt;
    } else if (a == "--id") {
      o.id = static_cast<std::uint32_t>(std::stoul(value()));
    } else if (a == "--peers") {
      peers = value();
    } else if (a == "--data-dir") {
      o.data_dir = value();
    } else if (a == "--client-port") {
      o.client_port = static_cast<std::uint16_t>(std::stoul(value()));
    } else if (a == "--cluster-key-file") {
      o.key_file = value();
    } else if (a == "--cluster-id") {
      o.cluster_id = std::stoull(value());
    } else if (a == "--quiet") {
      o.quiet = true;
    } else {
      throw std::invalid_argument("unknown argument " + a);
    }
  }
  if (o.id == 0) throw std::invalid_argument("--id: required, at least 1");
  if (peers.empty()) throw std::invalid_argument("--peers: required");
  if (o.data_dir.empty()) throw std::invalid_argument("--data-dir: required");
  o.members = paxos_kv::parse_members(peers);
  if (o.members.count(o.id) == 0) throw std::invalid_argument("--peers: must list this member's --id");
  if (o.client_port != 0) o.members[o.id].client.port = o.client_port;
  return o;
}

class server {
 public:
  explicit server(options opts)
      : opts_(std::move(opts)),
        storage_(opts_.data_dir),
        net_(transport_config()),
        msgs_(net_),
        replica_(replica_options(), px::kv_state_machine{}, storage_.load()),
        acceptor_(io_),
        tick_timer_(io_),
        signals_(io_, SIGINT, SIGTERM) {
    const auto& self = opts_.members.at(opts_.id);
    asio::ip::tcp::endpoint at(asio::ip::make_address(self.client.host), self.client.port);
    acceptor_.open(at.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(at);
    acceptor_.listen();
    log("listening: peers on " + self.peer.str() + ", clients on " + self.client.str() + ", recovered to slot " +
        std::to_string(replica_.chosen_index()));
  }

  void run() {
    accept_next();
    arm_tick();
    signals_.async_wait([this](const asio::error_code&, int) {
      log("stopping");
      stopping_ = true;
      io_.stop();
    });
    io_.run();
    net_.stop();
  }

 private:
  struct client_conn : std::enable_shared_from_this<client_conn> {
    explicit client_conn(asio::ip::tcp::socket s) : socket(std::move(s)) {}
    asio::ip::tcp::socket socket;
    char len_buf[4]{};
    std::string body;
    std::deque<std::string> out;
    bool writing = false;
    bool closed = false;
  };

  auto transport_config() -> px::tcp_transport_config {
    px::tcp_transport_config c;
    c.node_id = opts_.id;
    c.cluster_id = opts_.cluster_id;
    const auto& self = opts_.members.at(opts_.id);
    c.listen = {self.peer.host, self.peer.port};
    for (const auto& [id, m] : opts_.members) {
      if (id != opts_.id) c.peers[id] = {m.peer.host, m.peer.port};
    }
    if (!opts_.key_file.empty()) c.key = px::frame_key::from_file(opts_.key_file);
    c.reconnect_min = 5ms;
    c.reconnect_max = 200ms;
    c.on_receive = [this] {
      if (!wake_posted_.exchange(true)) {
        asio::post(io_, [this] {
          wake_posted_.store(false);
          cycle();
        });
      }
    };
    return c;
  }

  auto replica_options() -> px::replica_options {
    px::replica_options r;
    r.id = opts_.id;
    for (const auto& [id, m] : opts_.members) r.nodes.push_back(id);
    r.heartbeat_ticks = 2;  // 20 ms
    r.election_ticks = 30;  // elections after 300-600 ms of silence
    r.max_batch = 1024;
    r.window = 64;
    r.seed = std::random_device{}();
    return r;
  }

  void log(const std::string& line) {
    if (!opts_.quiet) std::cout << "[node " << opts_.id << "] " << line << std::endl;
  }

  void arm_tick() {
    tick_timer_.expires_after(opts_.tick);
    tick_timer_.async_wait([this](const asio::error_code& ec) {
      if (ec || stopping_) return;
      replica_.tick();
      cycle();
      arm_tick();
    });
  }

  void schedule_cycle() {
    if (cycle_posted_) return;
    cycle_posted_ = true;
    asio::post(io_, [this] {
      cycle_posted_ = false;
      cycle();
    });
  }

  void cycle() {
    if (stopping_) return;
    px::tcp_message in;
    while (net_.try_receive(in)) {
      if (auto m = msgs_.decode(in)) replica_.step(*m);
    }
    while (replica_.has_ready()) {
      auto rd = replica_.ready();
      // Send-before-sync: the messages `may_send_before_sync` allows (a leader's proposals
      // and heartbeats, learner traffic about chosen values; never in a cycle that changes
      // the promise) leave before the fdatasync so the disk write overlaps the network round
      // trip; everything else waits until `persist` returns. A cycle that only raises the
      // commit index rides on the next sync (`commit_sync::defer`).
      const bool early = rd.needs_sync();
      if (early) {
        for (const auto& m : rd.messages) {
          if (px::may_send_before_sync(rd, m)) msgs_.send(m);
        }
      }
      px::persist(storage_, rd, px::commit_sync::defer);  // throws on failure: fatal, the process exits
      for (const auto& m : rd.messages) {
        if (!early || !px::may_send_before_sync(rd, m)) msgs_.send(m);
      }
      for (auto& a : rd.applied) answer(a);
      replica_.advance();
    }
    if (!waiters_.empty()) release_waiters(false);
    auto leader = replica_.leader_hint();
    if (leader != last_leader_) {
      last_leader_ = leader;
      log(leader ? "leader is node " + std::to_string(*leader) + (replica_.is_leader() ? " (this node)" : "")
                 : "no leader");
    }
    if (!replica_.is_leader() && !pending_.empty()) {
      // Proposals of a deposed leader may still be chosen by the next one: the client retries
      // under the same request id and the dedupe table answers it once.
      for (auto& [key, weak] : pending_) {
        if (auto c = weak.lock()) send_reply(c, paxos_kv::reply_status::redirect, key.second, leader_address());
      }
      pending_.clear();
    }
  }

  auto leader_address() -> std::string {
    auto l = replica_.leader_hint();
    if (!l || *l == opts_.id) return {};
    auto it = opts_.members.find(*l);
    return it == opts_.members.end() ? std::string{} : it->second.client.str();
  }

  void answer(const px::applied_command& a) {
    auto it = pending_.find({a.client_id, a.request_id});
    if (it == pending_.end()) return;
    if (auto c = it->second.lock()) send_reply(c, paxos_kv::reply_status::ok, a.request_id, a.result);
    pending_.erase(it);
  }

  void accept_next() {
    acceptor_.async_accept([this](const asio::error_code& ec, asio::ip::tcp::socket s) {
      if (stopping_) return;
      if (!ec) {
        asio::error_code ignored;
        s.set_option(asio::ip::tcp::no_delay(true), ignored);
        auto c = std::make_shared<client_conn>(std::move(s));
        read_request(c);
      }
      accept_next();
    });
  }

  void close(const std::shared_ptr<client_conn>& c) {
    asio::error_code ignored;
    c->closed = true;
    c->socket.close(ignored);
  }

  void read_request(const std::shared_ptr<client_conn>& c) {
    asio::async_read(c->socket, asio::buffer(c->len_buf), [this, c](const asio::error_code& ec, std::size_t) {
      if (ec || stopping_) return close(c);
      auto len = distkit::detail::load_le<std::uint32_t>(c->len_buf);
      if (len < 17 || len > paxos_kv::max_message) return close(c);  // refused before allocating
      c->body.resize(len);
      asio::async_read(c->socket, asio::buffer(c->body), [this, c](const asio::error_code& ec2, std::size_t) {
        if (ec2 || stopping_) return close(c);
        auto req = paxos_kv::decode_request(c->body);
        if (!req) return close(c);
        handle(c, std::move(*req));
        read_request(c);
      });
    });
  }

  auto status() -> std::string {
    auto leader = replica_.leader_hint();
    char checksum[17];
    std::snprintf(checksum, sizeof(checksum), "%016llx", static_cast<unsigned long long>(replica_.checksum()));
    const auto& ns = net_.frame_stats();
    const auto nc = net_.counters();
    return "id=" + std::to_string(opts_.id) + " role=" + (replica_.is_leader() ? "leader" : "follower") +
           " leader=" + (leader ? std::to_string(*leader) : "none") +
           " chosen=" + std::to_string(replica_.chosen_index()) + " checksum=" + checksum +
           " keys=" + std::to_string(replica_.state().size()) + " syncs=" + std::to_string(storage_.sync_count()) +
           " frames_refused=" + std::to_string(ns.refused_total()) +
           " frames_in=" + std::to_string(nc.frames_received) + " frames_out=" + std::to_string(nc.frames_sent) +
           " connects=" + std::to_string(nc.connects) + " connect_failures=" + std::to_string(nc.connect_failures) +
           " disconnects=" + std::to_string(nc.disconnects) + " inbound=" + std::to_string(nc.inbound_accepted) +
           " inbound_over_limit=" + std::to_string(nc.inbound_over_limit) +
           " dropped=" + std::to_string(nc.dropped_oldest + nc.lost_on_disconnect);
  }

  void release_waiters(bool all) {
    const auto now = std::chrono::steady_clock::now();
    std::erase_if(waiters_, [&](const waiter& w) {
      if (!all && replica_.chosen_index() < w.slot && now < w.deadline) return false;
      if (auto c = w.conn.lock()) send_reply(c, paxos_kv::reply_status::ok, w.request_id, status());
      return true;
    });
  }

  void handle(const std::shared_ptr<client_conn>& c, paxos_kv::request req) {
    if (req.kind == paxos_kv::request_kind::wait_chosen) {
      if (req.command.size() != 8) return send_reply(c, paxos_kv::reply_status::error, req.request_id, "bad wait");
      auto slot = distkit::detail::load_le<std::uint64_t>(req.command.data());
      if (replica_.chosen_index() >= slot) return send_reply(c, paxos_kv::reply_status::ok, req.request_id, status());
      waiters_.push_back({c, req.request_id, slot, std::chrono::steady_clock::now() + 5s});
      return;
    }
    if (req.kind == paxos_kv::request_kind::status) {
      send_reply(c, paxos_kv::reply_status::ok, req.request_id, status());
      return;
    }

    if (req.client_id == 0) {
      send_reply(c, paxos_kv::reply_status::error, req.request_id, "client id 0 is reserved");
      return;
    }
    switch (replica_.propose(req.client_id, req.request_id, std::move(req.command))) {
      case px::propose_status::accepted:
        pending_[{req.client_id, req.request_id}] = c;
        schedule_cycle();
        break;
      case px::propose_status::not_leader:
        send_reply(c, paxos_kv::reply_status::redirect, req.request_id, leader_address());
        break;
      case px::propose_status::busy:
        send_reply(c, paxos_kv::reply_status::retry, req.request_id, "busy");
        break;
    }
  }

  void send_reply(const std::shared_ptr<client_conn>& c, paxos_kv::reply_status st, std::uint64_t rid,
                  std::string_view payload) {
    if (c->closed) return;
    c->out.push_back(paxos_kv::encode_reply(st, rid, payload));
    flush(c);
  }

  void flush(const std::shared_ptr<client_conn>& c) {
    if (c->writing || c->out.empty() || c->closed) return;
    c->writing = true;
    asio::async_write(c->socket, asio::buffer(c->out.front()), [this, c](const asio::error_code& ec, std::size_t) {
      c->writing = false;
      if (ec) return close(c);
      c->out.pop_front();
      flush(c);
    });
  }

  options opts_;
  // The transport's I/O thread wakes the loop from its constructor on: the loop comes first.
  asio::io_context io_;
  std::atomic<bool> wake_posted_{false};
  px::file_storage storage_;
  px::tcp_transport net_;
  px::tcp_message_transport msgs_;
  px::replica<px::kv_state_machine> replica_;
  asio::ip::tcp::acceptor acceptor_;
  asio::steady_timer tick_timer_;
  asio::signal_set signals_;
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::weak_ptr<client_conn>> pending_;
  struct waiter {
    std::weak_ptr<client_conn> conn;
    std::uint64_t request_id = 0;
    px::slot_t slot = 0;
    std::chrono::steady_clock::time_point deadline;
  };
  std::vector<waiter> waiters_;
  std::optional<px::node_id> last_leader_;
  bool cycle_posted_ = false;
  bool stopping_ = false;
};

}  // namespace

auto main(int argc, char** argv) -> int {
  try {
    auto opts = parse_options(argc, argv);
    if (!opts) return 0;
    std::signal(SIGPIPE, SIG_IGN);
    server s(std::move(*opts));
    s.run();
    return 0;
  } catch (const std::invalid_argument& e) {
    std::cerr << "paxos_kv_server: " << e.what() << "\n";
    usage();
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "paxos_kv_server: fatal: " << e.what() << "\n";
    return 1;
  }
}
