// SPDX-License-Identifier: MIT
// examples/paxos_kv/server.cpp: one replica of a replicated key-value store (Multi-Paxos over TCP).
//
//   paxos_kv_server --id 1 --peers 1=127.0.0.1:7001:8001,2=127.0.0.1:7002:8002,3=127.0.0.1:7003:8003
//                   --data-dir /var/lib/kv1 [--client-port 8001] --cluster-key-file cluster.key
//                   [--metrics-listen 127.0.0.1:9101]
//
// With --metrics-listen, `GET /metrics` on that address answers the Prometheus text format:
// the replica's figures are read when scraped (callback families), and the time of each persist
// that called fdatasync is recorded in a histogram.
//
// Threads: the main thread runs the replica, the client connections and the tick timer on one
// Asio event loop; the peer transport runs its own I/O thread and wakes the main loop when
// frames arrive. Every pass of the loop takes whatever arrived (client commands, peer
// messages), lets the replica batch it, and persists the result with ONE fdatasync (group
// commit), so many concurrent clients share each disk flush.
//
// Reads go through the log: `get` is a command like `put`, so it is linearizable without any
// clock assumption (no leases).
//
// The client port is bounded against clients that misbehave: a connection cap, an idle timeout
// and a request timeout (a request must arrive whole in time), a bound on the reply bytes
// queued per connection and on the requests a connection has waiting (reads pause until the
// client drains them), a bound on `wait` requests, and a request's length prefix is checked
// against --max-request-bytes and never trusted to allocate (the buffer grows as bytes
// arrive). Every refusal is counted in the `status` reply and answered where a reply is
// possible. Sizes are one policy checked at start-up: a value fits a reply, a request fits a
// batch, a batch fits a message, a message fits a frame.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
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
#include "distkit/metrics.hpp"
#include "distkit/paxos/tcp_message_transport.hpp"
#include "distkit/paxos/tcp_transport.hpp"
#include "kv_protocol.hpp"
#include "metrics_http.hpp"

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
  std::string metrics_listen;  // HOST:PORT, empty: no metrics endpoint
  // Byte bounds (0: the library's default); see replica_options and tcp_transport_options.
  std::size_t max_frame_bytes = 0;
  std::size_t max_message_bytes = 0;
  std::size_t max_batch_bytes = 0;
  std::size_t max_catchup_bytes = 0;
  std::size_t snapshot_chunk_bytes = 0;
  std::uint64_t snapshot_interval = 0;
  std::uint64_t log_retention = 0;
  bool insecure = false;
  // The client port's bounds.
  std::size_t max_clients = 1024;
  std::chrono::milliseconds client_idle_timeout{60'000};
  std::chrono::milliseconds request_timeout{10'000};
  std::size_t max_client_queued_bytes = std::size_t{4} << 20;
  std::size_t max_client_inflight = 256;
  std::size_t max_waiters = 1024;
  std::size_t max_value_bytes = std::size_t{1} << 20;
  std::size_t max_request_bytes = 0;  // 0: what the batch bound allows
  std::size_t max_cached_result_bytes = 1024;
  std::size_t max_sessions = 65536;
  std::uint64_t session_timeout_slots = 0;
};

void usage() {
  std::cout << "usage: paxos_kv_server --id N --peers ID=HOST:PEER_PORT:CLIENT_PORT,... --data-dir DIR\n"
               "                       [--client-port P] [--cluster-key-file FILE] [--cluster-id N] [--quiet]\n"
               "                       [--max-frame-bytes N] [--max-message-bytes N] [--max-batch-bytes N]\n"
               "                       [--max-catchup-bytes N] [--snapshot-chunk-bytes N]\n"
               "                       [--snapshot-interval SLOTS] [--log-retention SLOTS] [--insecure]\n"
               "                       [--max-value-bytes N] [--max-request-bytes N] [--max-clients N]\n"
               "                       [--client-idle-timeout-ms MS] [--request-timeout-ms MS]\n"
               "                       [--max-client-queued-bytes N] [--max-client-inflight N] [--max-waiters N]\n"
               "                       [--max-cached-result-bytes N] [--max-sessions N]\n"
               "                       [--session-timeout-slots SLOTS] [--metrics-listen HOST:PORT]\n"
               "  --peers lists every member, this one included; --client-port overrides this member's.\n"
               "  --cluster-key-file is required (peers authenticate every frame with it) unless --insecure\n"
               "  is given, which runs with unauthenticated peers. The file holds one key, or a keyring\n"
               "  ('# distkit keyring' then '<id> <key>' lines and 'sign <id>'); SIGHUP reloads it, so\n"
               "  keys rotate while the cluster runs: add the new key on every member, sign with it on\n"
               "  every member, then remove the old one.\n"
               "  Byte bounds default to the library's (frame 16 MiB, message 8 MiB, batch 4 MiB,\n"
               "  catch-up 4 MiB, snapshot chunk 1 MiB) and value 1 MiB; every member must use the same\n"
               "  ones. Client port: 1024 connections, idle 60 s, request 10 s, 4 MiB queued replies and\n"
               "  256 waiting requests per connection, 1024 wait requests. The dedupe table keeps get\n"
               "  results up to 1 KiB; a retried get with a longer result reads again.\n"
               "  Clients register sessions through the log (65536 kept, the least recently active\n"
               "  evicted first; idle ones expire after --session-timeout-slots slots, 0 = never); a\n"
               "  command under any other client id is refused, not applied.\n";
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
    // The option's value as a decimal number in [min, max], or an error naming the option.
    auto number = [&](std::uint64_t min, std::uint64_t max) -> std::uint64_t {
      const std::string v = value();
      return paxos_kv::parse_number(v, min, max, a, v);
    };
    constexpr std::uint64_t any = std::numeric_limits<std::uint64_t>::max();
    constexpr std::uint64_t max_ms = std::uint64_t{1000} * 3600 * 1000;  // 1,000 hours
    if (a == "--help" || a == "-h") {
      usage();
      return std::nullopt;
    } else if (a == "--id") {
      o.id = static_cast<std::uint32_t>(number(1, 0xFFFF'FFFFU));
    } else if (a == "--peers") {
      peers = value();
    } else if (a == "--data-dir") {
      o.data_dir = value();
    } else if (a == "--client-port") {
      o.client_port = static_cast<std::uint16_t>(number(0, 65535));
    } else if (a == "--cluster-key-file") {
      o.key_file = value();
    } else if (a == "--cluster-id") {
      o.cluster_id = number(0, any);
    } else if (a == "--quiet") {
      o.quiet = true;
    } else if (a == "--max-frame-bytes") {
      o.max_frame_bytes = number(0, any);
    } else if (a == "--max-message-bytes") {
      o.max_message_bytes = number(0, any);
    } else if (a == "--max-batch-bytes") {
      o.max_batch_bytes = number(0, any);
    } else if (a == "--max-catchup-bytes") {
      o.max_catchup_bytes = number(0, any);
    } else if (a == "--snapshot-chunk-bytes") {
      o.snapshot_chunk_bytes = number(0, any);
    } else if (a == "--snapshot-interval") {
      o.snapshot_interval = number(0, any);
    } else if (a == "--log-retention") {
      o.log_retention = number(0, any);
    } else if (a == "--insecure") {
      o.insecure = true;
    } else if (a == "--max-value-bytes") {
      o.max_value_bytes = number(0, any);
    } else if (a == "--max-request-bytes") {
      o.max_request_bytes = number(0, any);
    } else if (a == "--max-clients") {
      o.max_clients = number(0, any);
    } else if (a == "--client-idle-timeout-ms") {
      o.client_idle_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(number(0, max_ms)));
    } else if (a == "--request-timeout-ms") {
      o.request_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(number(0, max_ms)));
    } else if (a == "--max-client-queued-bytes") {
      o.max_client_queued_bytes = number(0, any);
    } else if (a == "--max-client-inflight") {
      o.max_client_inflight = number(0, any);
    } else if (a == "--max-waiters") {
      o.max_waiters = number(0, any);
    } else if (a == "--max-cached-result-bytes") {
      o.max_cached_result_bytes = number(0, any);
    } else if (a == "--max-sessions") {
      o.max_sessions = number(1, any);
    } else if (a == "--session-timeout-slots") {
      o.session_timeout_slots = number(0, any);
    } else if (a == "--metrics-listen") {
      o.metrics_listen = value();
      (void)paxos_kv::parse_address(o.metrics_listen, "--metrics-listen");  // HOST:PORT, or a clear error
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
  if (o.key_file.empty() && !o.insecure) {
    throw std::invalid_argument(
        "--cluster-key-file: required (without it any host that reaches the peer port can forge Paxos messages); "
        "pass --insecure to run with unauthenticated peers");
  }
  if (o.max_clients == 0) throw std::invalid_argument("--max-clients: must be at least 1");
  if (o.client_idle_timeout.count() <= 0) throw std::invalid_argument("--client-idle-timeout-ms: must be positive");
  if (o.request_timeout.count() <= 0) throw std::invalid_argument("--request-timeout-ms: must be positive");
  if (o.max_client_queued_bytes == 0) throw std::invalid_argument("--max-client-queued-bytes: must be at least 1");
  if (o.max_client_inflight == 0) throw std::invalid_argument("--max-client-inflight: must be at least 1");
  if (o.max_waiters == 0) throw std::invalid_argument("--max-waiters: must be at least 1");
  return o;
}

// The request and reply bytes around a command or a result (kind or status, ids).
constexpr std::size_t request_overhead = 1 + 8 + 8;
constexpr std::size_t reply_overhead = 1 + 8;
// A put's encoding around its value: op, three length prefixes; plus room for a key.
constexpr std::size_t command_overhead = 1 + 3 * 4;
constexpr std::size_t key_room = 1024;

/// One size policy: every bound must carry what the next one hands it. Throws
/// std::invalid_argument naming the parameters that disagree.
void check_sizes(options& o, const px::replica_options& r, std::size_t max_body) {
  auto refuse = [](const std::string& what) { throw std::invalid_argument("size policy: " + what); };
  if (o.max_value_bytes == 0) refuse("--max-value-bytes must be at least 1");
  // A value must fit the reply that carries it (a get), or it could never be read back.
  if (o.max_value_bytes > paxos_kv::max_message - reply_overhead) {
    refuse("--max-value-bytes (" + std::to_string(o.max_value_bytes) + ") must be at most the reply cap (" +
           std::to_string(paxos_kv::max_message) + ") minus " + std::to_string(reply_overhead));
  }
  // A put of the largest value (with a key) must fit one batch, or it could never be proposed.
  if (o.max_value_bytes + command_overhead + key_room > r.max_batch_bytes) {
    refuse("--max-value-bytes (" + std::to_string(o.max_value_bytes) + ") plus " +
           std::to_string(command_overhead + key_room) + " must be at most max_batch_bytes (" +
           std::to_string(r.max_batch_bytes) + ")");
  }
  if (o.max_request_bytes == 0) o.max_request_bytes = r.max_batch_bytes + request_overhead;
  if (o.max_request_bytes < request_overhead || o.max_request_bytes > paxos_kv::max_message) {
    refuse("--max-request-bytes (" + std::to_string(o.max_request_bytes) + ") must be in [" +
           std::to_string(request_overhead) + ", " + std::to_string(paxos_kv::max_message) + "]");
  }
  // The replica checks batch, catch-up and snapshot chunk against max_message_bytes, the
  // message transport checks max_message_bytes against the frame's max_body, the frame decoder
  // max_body against its 1 GiB limit; the write-ahead log holds one batch per record.
  if (r.max_batch_bytes > px::internal::wal_max_record) {
    refuse("max_batch_bytes (" + std::to_string(r.max_batch_bytes) + ") must be at most the log record limit (" +
           std::to_string(px::internal::wal_max_record) + ")");
  }
  if (max_body > px::frame_format::max_body_limit) {
    refuse("--max-frame-bytes (" + std::to_string(max_body) + ") must be at most " +
           std::to_string(px::frame_format::max_body_limit));
  }
}

/// The replica's byte bounds from the options (the library's default where not given).
void apply_bounds(const options& o, px::replica_options& r) {
  if (o.max_message_bytes != 0) r.max_message_bytes = o.max_message_bytes;
  if (o.max_batch_bytes != 0) r.max_batch_bytes = o.max_batch_bytes;
  if (o.max_catchup_bytes != 0) r.max_catchup_bytes = o.max_catchup_bytes;
  if (o.snapshot_chunk_bytes != 0) r.snapshot_chunk_bytes = o.snapshot_chunk_bytes;
  r.max_cached_result_bytes = o.max_cached_result_bytes;
  r.client_sessions = true;
  r.max_sessions = o.max_sessions;
  r.session_timeout_slots = o.session_timeout_slots;
}

/// The options with their size policy checked (and the request bound derived).
auto sized(options o) -> options {
  px::replica_options r;
  apply_bounds(o, r);
  check_sizes(o, r, o.max_frame_bytes != 0 ? o.max_frame_bytes : px::frame_format::default_max_body);
  return o;
}

class server {
 public:
  explicit server(options opts)
      : opts_(sized(std::move(opts))),
        storage_(opts_.data_dir),
        net_(transport_config()),
        msgs_(net_, replica_options().max_message_bytes),
        replica_(replica_options(), px::kv_state_machine{opts_.max_value_bytes}, storage_.load()),
        acceptor_(io_),
        tick_timer_(io_),
        sweep_timer_(io_),
        signals_(io_, SIGINT, SIGTERM),
        reload_signal_(io_, SIGHUP) {
    const auto& self = opts_.members.at(opts_.id);
    asio::ip::tcp::endpoint at(asio::ip::make_address(self.client.host), self.client.port);
    acceptor_.open(at.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(at);
    acceptor_.listen();
    log("listening: peers on " + self.peer.str() + ", clients on " + self.client.str() + ", recovered to slot " +
        std::to_string(replica_.chosen_index()));
    if (opts_.insecure) log("WARNING: --insecure: peer frames are not authenticated");
    if (!opts_.metrics_listen.empty()) start_metrics();
  }

  void run() {
    accept_next();
    arm_tick();
    arm_sweep();
    signals_.async_wait([this](const asio::error_code&, int) {
      log("stopping");
      stopping_ = true;
      io_.stop();
    });
    arm_reload();
    io_.run();
    net_.stop();
  }

 private:
  // SIGHUP re-reads --cluster-key-file and rotates the peer keys (frame_keyring: add the new
  // key everywhere, then sign with it everywhere, then remove the old one). A file that does
  // not read keeps the keys in use, and says why.
  void arm_reload() {
    reload_signal_.async_wait([this](const asio::error_code& ec, int) {
      if (ec || stopping_) return;
      if (opts_.key_file.empty()) {
        log("SIGHUP: no --cluster-key-file to reload");
      } else {
        try {
          auto ring = px::frame_keyring::from_file(opts_.key_file);
          net_.rekey(ring);
          ++key_reloads_;
          log("SIGHUP: cluster keys reloaded (" + std::to_string(ring.size()) + " keys, signing with key " +
              std::to_string(ring.signing_id()) + ")");
        } catch (const std::exception& e) {
          ++key_reload_failures_;
          log(std::string("SIGHUP: cluster keys NOT reloaded, the keys in use stay: ") + e.what());
        }
      }
      arm_reload();
    });
  }

  struct client_conn : std::enable_shared_from_this<client_conn> {
    explicit client_conn(asio::ip::tcp::socket s) : socket(std::move(s)) {}
    asio::ip::tcp::socket socket;
    std::string in;  // bytes received and not yet handled: grows only as bytes arrive
    std::deque<std::string> out;
    std::size_t out_bytes = 0;  // reply bytes queued (the write in progress included)
    std::size_t inflight = 0;   // requests accepted and not yet answered
    bool reading = false;
    bool paused = false;  // reads stopped until the client drains its replies
    bool writing = false;
    bool closed = false;
    bool close_when_flushed = false;
    bool mid_request = false;  // part of a request has arrived
    std::size_t skip = 0;      // bytes of a refused request still to read and drop
    std::chrono::steady_clock::time_point last_activity = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point request_started;
  };

  /// Refusals and closes on the client port, by reason (all monotonic).
  struct client_counters {
    std::uint64_t refused_cap = 0;      // connections over --max-clients
    std::uint64_t idle_closed = 0;      // no request and nothing waiting for --client-idle-timeout-ms
    std::uint64_t request_timeout = 0;  // a request not whole within --request-timeout-ms
    std::uint64_t too_large = 0;        // a length prefix over --max-request-bytes
    std::uint64_t malformed = 0;        // a request that does not parse
    std::uint64_t reads_paused = 0;     // times a connection's reads stopped for back-pressure
    std::uint64_t waiters_refused = 0;  // wait requests over --max-waiters
    std::uint64_t value_too_large = 0;  // writes refused by --max-value-bytes
    std::uint64_t no_session = 0;       // commands under no live session (forged, expired, evicted)
  };

  auto transport_config() -> px::tcp_transport_options {
    px::tcp_transport_options c;
    c.node_id = opts_.id;
    c.cluster_id = opts_.cluster_id;
    const auto& self = opts_.members.at(opts_.id);
    c.listen = {self.peer.host, self.peer.port};
    for (const auto& [id, m] : opts_.members) {
      if (id != opts_.id) c.peers[id] = {m.peer.host, m.peer.port};
    }
    if (!opts_.key_file.empty()) c.keyring = px::frame_keyring::from_file(opts_.key_file);
    if (opts_.max_frame_bytes != 0) c.max_body = opts_.max_frame_bytes;
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
    apply_bounds(opts_, r);
    r.id = opts_.id;
    for (const auto& [id, m] : opts_.members) r.nodes.push_back(id);
    r.heartbeat_ticks = 2;  // 20 ms
    r.election_ticks = 30;  // elections after 300-600 ms of silence
    r.max_batch = 1024;
    r.window = 64;
    r.seed = std::random_device{}();
    if (opts_.snapshot_interval != 0) r.snapshot_interval = opts_.snapshot_interval;
    if (opts_.log_retention != 0) r.log_retention = opts_.log_retention;
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
      const auto persist_start =
          persist_latency_ != nullptr ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
      const auto syncs_before = storage_.sync_count();
      px::persist(storage_, rd, px::commit_sync::defer);  // throws on failure: fatal, the process exits
      if (persist_latency_ != nullptr && storage_.sync_count() != syncs_before) {
        persist_latency_->observe(std::chrono::steady_clock::now() - persist_start);
      }
      for (const auto& m : rd.messages) {
        if (!early || !px::may_send_before_sync(rd, m)) msgs_.send(m);
      }
      commands_applied_ += rd.applied.size();
      for (auto& a : rd.applied) answer(a);
      replica_.advance();
    }
    if (!waiters_.empty()) release_waiters(false);
    auto leader = replica_.leader_hint();
    if (leader != last_leader_) {
      last_leader_ = leader;
      ++leader_changes_;
      log(leader ? "leader is node " + std::to_string(*leader) + (replica_.is_leader() ? " (this node)" : "")
                 : "no leader");
    }
    if (!replica_.is_leader() && !pending_.empty()) {
      // Proposals of a deposed leader may still be chosen by the next one: the client retries
      // under the same request id and the dedupe table answers it once.
      for (auto& [key, weak] : pending_) {
        if (auto c = weak.lock()) {
          finish_one(c);
          send_reply(c, paxos_kv::reply_status::redirect, key.second, leader_address());
        }
      }
      pending_.clear();
      proposed_at_.clear();
    }
  }

  auto leader_address() -> std::string {
    auto l = replica_.leader_hint();
    if (!l || *l == opts_.id) return {};
    auto it = opts_.members.find(*l);
    return it == opts_.members.end() ? std::string{} : it->second.client.str();
  }

  void answer(const px::applied_command& a) {
    if (commit_latency_ != nullptr) {
      if (auto t = proposed_at_.find({a.client_id, a.request_id}); t != proposed_at_.end()) {
        const auto elapsed = std::chrono::steady_clock::now() - t->second;
        if (++commits_timed_ % exemplar_every == 0) {
          // An OpenMetrics exemplar on every 32nd commit: which slot a latency bucket saw last.
          const std::string slot = std::to_string(a.slot);
          commit_latency_->observe(elapsed, {{"slot", slot}});
        } else {
          commit_latency_->observe(elapsed);
        }
        proposed_at_.erase(t);
      }
    }
    auto it = pending_.find({a.client_id, a.request_id});
    if (it == pending_.end()) return;
    if (auto c = it->second.lock()) {
      finish_one(c);
      if (a.no_session) {
        ++client_stats_.no_session;
        send_reply(c, paxos_kv::reply_status::no_session, a.request_id,
                   "unknown or expired session: not applied (register a new one)");
      } else if (a.result.rfind(px::kv_state_machine::value_too_large, 0) == 0) {
        // Refused by the value bound (the same on every replica): a clear error, never retried.
        ++client_stats_.value_too_large;
        send_reply(c, paxos_kv::reply_status::error, a.request_id, std::string_view(a.result).substr(1));
      } else {
        send_reply(c, paxos_kv::reply_status::ok, a.request_id, a.result);
      }
    }
    pending_.erase(it);
  }

  void accept_next() {
    acceptor_.async_accept([this](const asio::error_code& ec, asio::ip::tcp::socket s) {
      if (stopping_) return;
      if (!ec) {
        asio::error_code ignored;
        s.set_option(asio::ip::tcp::no_delay(true), ignored);
        auto c = std::make_shared<client_conn>(std::move(s));
        std::erase_if(clients_, [](const std::weak_ptr<client_conn>& w) {
          auto p = w.lock();
          return !p || p->closed;
        });
        if (clients_.size() >= opts_.max_clients) {
          // Over the cap: one clear reply (request id 0), then the connection closes.
          ++client_stats_.refused_cap;
          c->close_when_flushed = true;
          send_reply(c, paxos_kv::reply_status::retry, 0,
                     "too many client connections (max_clients " + std::to_string(opts_.max_clients) + ")");
        } else {
          clients_.push_back(c);
          read_more(c);
        }
      }
      accept_next();
    });
  }

  void close(const std::shared_ptr<client_conn>& c) {
    asio::error_code ignored;
    c->closed = true;
    c->socket.close(ignored);
  }

  // A request of this connection was answered (or given up): it may read again.
  void finish_one(const std::shared_ptr<client_conn>& c) {
    if (c->inflight > 0) --c->inflight;
    read_more(c);
  }

  // Reads what the client sent, at most what the request being received still lacks (a length
  // prefix is never trusted to allocate), unless the connection must wait for its client to
  // drain replies or for its waiting requests to be answered.
  void read_more(const std::shared_ptr<client_conn>& c) {
    if (c->closed || c->reading || c->close_when_flushed || stopping_) return;
    if (c->out_bytes >= opts_.max_client_queued_bytes || c->inflight >= opts_.max_client_inflight) {
      if (!c->paused) ++client_stats_.reads_paused;
      c->paused = true;
      return;
    }
    c->paused = false;
    constexpr std::size_t chunk = 16 << 10;
    std::size_t want = 4;
    if (c->skip > 0) {
      want = c->skip;  // `in` is empty while a refused request's body is dropped
    } else if (c->in.size() >= 4) {
      want = 4 + distkit::detail::load_le<std::uint32_t>(c->in.data()) - c->in.size();
    }
    want = std::clamp<std::size_t>(want, 1, chunk);
    const std::size_t had = c->in.size();
    c->in.resize(had + want);
    c->reading = true;
    c->socket.async_read_some(asio::buffer(c->in.data() + had, want),
                              [this, c, had](const asio::error_code& ec, std::size_t n) {
                                c->reading = false;
                                if (ec || stopping_) return close(c);
                                c->in.resize(had + n);
                                if (c->skip > 0) {
                                  const std::size_t dropped = std::min(c->skip, c->in.size());
                                  c->skip -= dropped;
                                  c->in.erase(0, dropped);
                                }
                                const auto now = std::chrono::steady_clock::now();
                                c->last_activity = now;
                                if (!c->mid_request) {
                                  c->mid_request = true;
                                  c->request_started = now;
                                }
                                take_requests(c);
                                read_more(c);
                              });
  }

  // Handles every whole request in the connection's buffer.
  void take_requests(const std::shared_ptr<client_conn>& c) {
    std::size_t used = 0;
    while (!c->closed && !c->close_when_flushed && c->in.size() - used >= 4) {
      const std::size_t len = distkit::detail::load_le<std::uint32_t>(c->in.data() + used);
      if (len < 17) {
        ++client_stats_.malformed;
        return close(c);
      }
      if (len > opts_.max_request_bytes) {
        // Refused from its prefix and ids: a clear error; the body that follows is read in
        // small pieces and dropped (under the request timeout), never buffered whole.
        if (c->in.size() - used < 4 + 17) break;
        const auto rid = distkit::detail::load_le<std::uint64_t>(c->in.data() + used + 4 + 9);
        ++client_stats_.too_large;
        send_reply(c, paxos_kv::reply_status::error, rid,
                   "request too large: " + std::to_string(len) + " bytes, more than max_request_bytes (" +
                       std::to_string(opts_.max_request_bytes) + ", from max_batch_bytes " +
                       std::to_string(replica_.options().max_batch_bytes) + ")");
        const std::size_t have = c->in.size() - used - 4;
        c->skip = len - std::min(have, len);
        used = c->in.size();
        break;
      }
      if (c->in.size() - used < 4 + len) break;
      auto req = paxos_kv::decode_request(std::string_view(c->in).substr(used + 4, len));
      used += 4 + len;
      if (!req) {
        ++client_stats_.malformed;
        return close(c);
      }
      handle(c, std::move(*req));
    }
    if (c->closed) return;
    c->in.erase(0, used);
    if (c->in.empty() && c->skip == 0) {
      c->mid_request = false;
      if (c->in.capacity() > (64 << 10)) std::string().swap(c->in);  // a large request's buffer goes
    } else if (used > 0) {
      c->request_started = std::chrono::steady_clock::now();  // the next request has begun
    }
  }

  // Closes connections whose request did not arrive whole in time and idle ones (no request,
  // nothing waiting, no reply taken for the idle timeout: a client that never reads ends here).
  void arm_sweep() {
    const auto every = std::clamp(std::min(opts_.client_idle_timeout, opts_.request_timeout) / 4,
                                  std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
    sweep_timer_.expires_after(every);
    sweep_timer_.async_wait([this](const asio::error_code& ec) {
      if (ec || stopping_) return;
      const auto now = std::chrono::steady_clock::now();
      std::erase_if(clients_, [&](const std::weak_ptr<client_conn>& w) {
        auto c = w.lock();
        if (!c || c->closed) return true;
        if (c->mid_request && now - c->request_started > opts_.request_timeout) {
          ++client_stats_.request_timeout;
          close(c);
          return true;
        }
        if (c->inflight == 0 && now - c->last_activity > opts_.client_idle_timeout) {
          ++client_stats_.idle_closed;
          close(c);
          return true;
        }
        return false;
      });
      arm_sweep();
    });
  }

  // The metrics endpoint. Every figure but the persist latency is read from the counters the
  // server, the transport and the replica already keep, when scraped (on this loop's thread).
  void start_metrics() {
    auto& m = metrics_;
    const auto counter = [&](std::string_view name, std::string_view help, std::function<std::uint64_t()> read) {
      metric_handles_.push_back(m.counter_callback_family(name, help).add({}, std::move(read)));
    };
    const auto gauge = [&](std::string_view name, std::string_view help, std::function<double()> read) {
      gauge_handles_.push_back(m.gauge_callback_family(name, help).add({}, std::move(read)));
    };
    gauge("distkit_paxos_chosen_index", "Highest slot known chosen (each slot a batch of commands).",
          [this] { return static_cast<double>(replica_.chosen_index()); });
    gauge("distkit_paxos_is_leader", "1 when this replica is the leader.",
          [this] { return replica_.is_leader() ? 1.0 : 0.0; });
    gauge("distkit_paxos_kv_keys", "Keys in the replicated map.", [this] { return double(replica_.state().size()); });
    counter("distkit_paxos_leader_changes_total", "Changes of the leader this replica knows of.",
            [this] { return leader_changes_; });
    counter("distkit_paxos_fsyncs_total", "fdatasync calls of the log.", [this] { return storage_.sync_count(); });
    counter("distkit_paxos_commands_applied_total", "Client commands applied to the state machine (retries included).",
            [this] { return commands_applied_; });
    counter("distkit_paxos_elections_total", "Elections this replica started (times it became a candidate).",
            [this] { return replica_.stats().elections_started; });
    counter("distkit_paxos_catchup_values_sent_total", "Chosen values sent to lagging replicas in catch-up replies.",
            [this] { return replica_.stats().catchup_values_sent; });
    counter("distkit_paxos_catchup_sent_bytes_total", "Encoded bytes of those values.",
            [this] { return replica_.stats().catchup_bytes_sent; });
    counter("distkit_paxos_snapshot_sent_bytes_total", "Snapshot bytes sent in chunks to lagging replicas.",
            [this] { return replica_.stats().snapshot_bytes_sent; });
    counter("distkit_paxos_snapshot_chunks_sent_total", "Snapshot chunks sent to lagging replicas.",
            [this] { return replica_.stats().snapshot_chunks_sent; });
    counter("distkit_paxos_snapshots_installed_total", "Snapshots received, verified and installed.",
            [this] { return replica_.stats().snapshots_assembled; });
    counter("distkit_paxos_frames_received_total", "Verified peer frames received.",
            [this] { return net_.counters().frames_received; });
    counter("distkit_paxos_frames_sent_total", "Peer frames sent.", [this] { return net_.counters().frames_sent; });
    auto& refused = m.counter_callback_family("distkit_paxos_proposals_refused_total",
                                              "Client commands the replica refused, by reason.", {"reason"});
    metric_handles_.push_back(refused.add({"not_leader"}, [this] { return replica_.stats().refused_not_leader; }));
    metric_handles_.push_back(refused.add({"busy"}, [this] { return replica_.stats().refused_busy; }));
    metric_handles_.push_back(refused.add({"too_large"}, [this] { return replica_.stats().refused_too_large; }));
    auto& dropped = m.counter_callback_family("distkit_paxos_messages_dropped_total",
                                              "Peer messages dropped or refused, by reason.", {"reason"});
    metric_handles_.push_back(dropped.add({"queue_full"}, [this] { return net_.counters().dropped_oldest; }));
    metric_handles_.push_back(
        dropped.add({"refused_queue_full"}, [this] { return net_.counters().refused + msgs_.refused(); }));
    metric_handles_.push_back(
        dropped.add({"lost_on_disconnect"}, [this] { return net_.counters().lost_on_disconnect; }));
    metric_handles_.push_back(dropped.add({"inbox_full"}, [this] { return net_.counters().inbox_dropped; }));
    metric_handles_.push_back(dropped.add({"oversized"}, [this] { return msgs_.oversized(); }));
    metric_handles_.push_back(dropped.add({"malformed"}, [this] { return msgs_.malformed(); }));
    metric_handles_.push_back(dropped.add({"unroutable"}, [this] { return msgs_.unroutable(); }));
    metric_handles_.push_back(dropped.add({"misaddressed"}, [this] { return replica_.stats().ignored_misaddressed; }));
    auto& frames =
        m.counter_callback_family("distkit_paxos_frames_refused_total", "Peer frames refused, by cause.", {"cause"});
    for (std::size_t k = 1; k < px::frame_error_kind_count; ++k) {
      const auto kind = static_cast<px::frame_error_kind>(k);
      metric_handles_.push_back(
          frames.add({px::to_string(kind)}, [this, kind] { return net_.frame_stats().refused(kind); }));
    }
    persist_latency_ = &m.make_histogram(
        "distkit_paxos_persist_sync_duration_seconds",
        "Time to write a ready batch to the log and fdatasync it (the persists that synced).",
        {.units_per_exposed = 1e9,
         .buckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}});
    commit_latency_ = &m.make_histogram(
        "distkit_paxos_commit_duration_seconds",
        "Time from a client command's proposal to its application, on the leader that proposed it.",
        {.units_per_exposed = 1e9,
         .buckets = {0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}});
    const auto listen = paxos_kv::parse_address(opts_.metrics_listen, "--metrics-listen");
    const asio::ip::tcp::endpoint at(asio::ip::make_address(listen.host), listen.port);
    metrics_http_ = std::make_unique<paxos_kv::metrics_http>(io_, at, [this](bool openmetrics) {
      return openmetrics ? metrics_.to_openmetrics() : metrics_.to_prometheus();
    });
    log("metrics on http://" + opts_.metrics_listen + "/metrics");
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
           " keys=" + std::to_string(replica_.state().size()) +
           " sessions=" + std::to_string(replica_.dedupe_entries()) + " key_reloads=" + std::to_string(key_reloads_) +
           " key_reload_failures=" + std::to_string(key_reload_failures_) +
           " syncs=" + std::to_string(storage_.sync_count()) + " frames_refused=" + std::to_string(ns.refused_total()) +
           " frames_in=" + std::to_string(nc.frames_received) + " frames_out=" + std::to_string(nc.frames_sent) +
           " connects=" + std::to_string(nc.connects) + " connect_failures=" + std::to_string(nc.connect_failures) +
           " disconnects=" + std::to_string(nc.disconnects) + " inbound=" + std::to_string(nc.inbound_accepted) +
           " inbound_over_limit=" + std::to_string(nc.inbound_over_limit) +
           " dropped=" + std::to_string(nc.dropped_oldest + nc.lost_on_disconnect) + drop_reasons() +
           peer_port_counters() + client_port_counters();
  }

  auto peer_port_counters() -> std::string {
    const auto nc = net_.counters();
    return " peer_inbound_verified=" + std::to_string(nc.inbound_verified) +
           " peer_unverified_evicted=" + std::to_string(nc.unverified_evicted) +
           " peer_unverified_timed_out=" + std::to_string(nc.unverified_timed_out) +
           " peer_inbound_replaced=" + std::to_string(nc.inbound_replaced) +
           " peer_inbound_closed_bad=" + std::to_string(nc.inbound_closed_bad);
  }

  auto client_port_counters() -> std::string {
    std::size_t open = 0;
    for (const auto& w : clients_) {
      if (auto c = w.lock(); c && !c->closed) ++open;
    }
    const auto& k = client_stats_;
    return " clients=" + std::to_string(open) + " clients_refused_cap=" + std::to_string(k.refused_cap) +
           " clients_idle_closed=" + std::to_string(k.idle_closed) +
           " clients_request_timeout=" + std::to_string(k.request_timeout) +
           " requests_too_large=" + std::to_string(k.too_large) + " requests_malformed=" + std::to_string(k.malformed) +
           " client_reads_paused=" + std::to_string(k.reads_paused) + " waiters=" + std::to_string(waiters_.size()) +
           " waiters_refused=" + std::to_string(k.waiters_refused) +
           " value_too_large=" + std::to_string(k.value_too_large) + " no_session=" + std::to_string(k.no_session);
  }

  // Every dropped or refused message, by reason: the peer transport (send queue, disconnects,
  // inbox, frames refused per kind), the message layer (oversized, undecodable) and the
  // replica (refused proposals, snapshot chunks), then the byte-bounded traffic.
  auto drop_reasons() -> std::string {
    const auto nc = net_.counters();
    const auto& ns = net_.frame_stats();
    const auto& rs = replica_.stats();
    std::string out =
        " drop_queue_full=" + std::to_string(nc.dropped_oldest) +
        " refused_queue_full=" + std::to_string(nc.refused + msgs_.refused()) +
        " lost_on_disconnect=" + std::to_string(nc.lost_on_disconnect) +
        " inbox_dropped=" + std::to_string(nc.inbox_dropped) + " msg_oversized=" + std::to_string(msgs_.oversized()) +
        " msg_malformed=" + std::to_string(msgs_.malformed()) + " msg_unroutable=" + std::to_string(msgs_.unroutable());
    for (std::size_t k = 1; k < px::frame_error_kind_count; ++k) {
      const auto kind = static_cast<px::frame_error_kind>(k);
      out += " frame_refused_" + std::string(px::to_string(kind)) + "=" + std::to_string(ns.refused(kind));
    }
    out += " propose_too_large=" + std::to_string(rs.refused_too_large) +
           " propose_busy=" + std::to_string(rs.refused_busy) +
           " propose_not_leader=" + std::to_string(rs.refused_not_leader) +
           " msg_misaddressed=" + std::to_string(rs.ignored_misaddressed) +
           " snapshot_chunk_corrupt=" + std::to_string(rs.snapshot_chunks_corrupt) +
           " snapshot_chunk_out_of_order=" + std::to_string(rs.snapshot_chunks_out_of_order) +
           " snapshot_corrupt=" + std::to_string(rs.snapshots_corrupt) +
           " snapshot_chunks_sent=" + std::to_string(rs.snapshot_chunks_sent) +
           " snapshots_assembled=" + std::to_string(rs.snapshots_assembled) +
           " promise_parts_cut=" + std::to_string(rs.promise_parts_cut) +
           " catchup_replies_cut=" + std::to_string(rs.catchup_replies_cut);
    return out;
  }

  void release_waiters(bool all) {
    const auto now = std::chrono::steady_clock::now();
    std::erase_if(waiters_, [&](const waiter& w) {
      if (!all && replica_.chosen_index() < w.slot && now < w.deadline) return false;
      if (auto c = w.conn.lock()) {
        finish_one(c);
        send_reply(c, paxos_kv::reply_status::ok, w.request_id, status());
      }
      return true;
    });
  }

  void handle(const std::shared_ptr<client_conn>& c, paxos_kv::request req) {
    if (req.kind == paxos_kv::request_kind::wait_chosen) {
      if (req.command.size() != 8) return send_reply(c, paxos_kv::reply_status::error, req.request_id, "bad wait");
      auto slot = distkit::detail::load_le<std::uint64_t>(req.command.data());
      if (replica_.chosen_index() >= slot) return send_reply(c, paxos_kv::reply_status::ok, req.request_id, status());
      if (waiters_.size() >= opts_.max_waiters) {
        ++client_stats_.waiters_refused;
        return send_reply(c, paxos_kv::reply_status::retry, req.request_id,
                          "too many waiting requests (max_waiters " + std::to_string(opts_.max_waiters) + ")");
      }
      ++c->inflight;
      waiters_.push_back({c, req.request_id, slot, std::chrono::steady_clock::now() + 5s});
      return;
    }
    if (req.kind == paxos_kv::request_kind::status) {
      send_reply(c, paxos_kv::reply_status::ok, req.request_id, status());
      return;
    }

    if (req.kind == paxos_kv::request_kind::register_session) {
      // Registered through the log: the request id is the client's secret nonce.
      req.client_id = px::register_session_client;
      req.command.clear();
    } else if (req.client_id == 0 || req.client_id == px::register_session_client) {
      send_reply(c, paxos_kv::reply_status::error, req.request_id,
                 "client id " + std::to_string(req.client_id) + " is reserved; register a session");
      return;
    }
    const std::size_t command_bytes = req.command.size();
    switch (replica_.propose(req.client_id, req.request_id, std::move(req.command))) {
      case px::propose_status::accepted: {
        auto& slot = pending_[{req.client_id, req.request_id}];
        if (auto earlier = slot.lock()) finish_one(earlier);  // the same request again: one answer
        slot = c;
        if (commit_latency_ != nullptr) {
          proposed_at_.try_emplace({req.client_id, req.request_id}, std::chrono::steady_clock::now());
        }
        ++c->inflight;
        schedule_cycle();
        break;
      }
      case px::propose_status::not_leader:
        send_reply(c, paxos_kv::reply_status::redirect, req.request_id, leader_address());
        break;
      case px::propose_status::busy:
        send_reply(c, paxos_kv::reply_status::retry, req.request_id, "busy");
        break;
      case px::propose_status::too_large:
        send_reply(c, paxos_kv::reply_status::error, req.request_id,
                   "command too large: " + std::to_string(command_bytes) + " bytes, more than max_batch_bytes (" +
                       std::to_string(replica_.options().max_batch_bytes) + ") allows");
        break;
    }
  }

  void send_reply(const std::shared_ptr<client_conn>& c, paxos_kv::reply_status st, std::uint64_t rid,
                  std::string_view payload) {
    if (c->closed) return;
    c->out.push_back(paxos_kv::encode_reply(st, rid, payload));
    c->out_bytes += c->out.back().size();
    flush(c);
  }

  void flush(const std::shared_ptr<client_conn>& c) {
    if (c->writing || c->closed) return;
    if (c->out.empty()) {
      if (c->close_when_flushed) close(c);
      return;
    }
    c->writing = true;
    asio::async_write(c->socket, asio::buffer(c->out.front()), [this, c](const asio::error_code& ec, std::size_t) {
      c->writing = false;
      if (ec) return close(c);
      c->out_bytes -= c->out.front().size();
      c->out.pop_front();
      c->last_activity = std::chrono::steady_clock::now();
      flush(c);
      if (c->paused) read_more(c);  // the client drained: reads resume
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
  asio::steady_timer sweep_timer_;
  asio::signal_set signals_;
  asio::signal_set reload_signal_;
  std::uint64_t key_reloads_ = 0;
  std::uint64_t key_reload_failures_ = 0;
  std::vector<std::weak_ptr<client_conn>> clients_;
  client_counters client_stats_;
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
  std::uint64_t leader_changes_ = 0;
  // Declared last: the endpoint and the handles go first, the registry after them.
  distkit::metrics_registry metrics_;
  distkit::histogram* persist_latency_ = nullptr;
  static constexpr std::uint64_t exemplar_every = 32;
  std::uint64_t commits_timed_ = 0;
  distkit::histogram* commit_latency_ = nullptr;  // with --metrics-listen: propose to applied, on the leader
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::chrono::steady_clock::time_point> proposed_at_;
  std::uint64_t commands_applied_ = 0;
  std::vector<distkit::callback_family<std::uint64_t>::handle> metric_handles_;
  std::vector<distkit::callback_family<double>::handle> gauge_handles_;
  std::unique_ptr<paxos_kv::metrics_http> metrics_http_;
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
