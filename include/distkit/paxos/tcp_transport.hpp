// SPDX-License-Identifier: MIT
// distkit/paxos/tcp_transport.hpp: authenticated frames between Paxos nodes over TCP (standalone Asio).
//
// Link `distkit::tcp` (standalone Asio, header-only, plus OpenSSL for HMAC-SHA256).
//
// One I/O thread per transport runs every socket. Each node keeps one outbound connection per
// peer (it only writes on it) and accepts the peers' connections (it only reads from those), so
// a node's sends never wait for its reads. Sends are encoded into frames on the caller's thread
// and queued per peer; the queue is bounded in frames and bytes, and a full queue either drops
// its oldest frame or refuses the new one (Paxos tolerates both: a lost message is retried by
// the protocol). Frames that arrive are verified (frame.hpp) on the I/O thread and handed to
// the replica's thread through a bounded inbox. A connection that sends a malformed, oversized,
// forged or misaddressed frame is closed; the node keeps serving every other connection.
//
// Authenticate before allocating: the receiver writes a fresh random challenge on each accepted
// connection, and the connection is *unverified* until its first frame, a hello carrying that
// challenge, passed every check (CRC, and the HMAC when keyed). Until then it gets a buffer of at most
// `unverified_max_body` bytes, `unverified_timeout` to show that frame, and one of
// `max_unverified_connections` slots; when those are all taken, a new connection closes the
// oldest unverified one, so strangers that hold connections open cannot keep a member out (a
// member's first frame, a hello, follows its connect at once). Verified connections (members)
// have their own `max_inbound_connections` slots, one per sender: a sender's new verified
// connection replaces its old one. A sender reads the challenge, then opens with its hello.
// A recorded connection replayed to the receiver (or to its next process) cannot answer a new
// challenge; sequence numbers are checked from each connection's hello on, so a sender whose
// clock stepped back across a restart is accepted on its new connection.
//
// Mutual TLS 1.3 (`tcp_transport_options::tls`, see tls.hpp): every peer connection is then a
// TLS stream; both ends present a certificate from the cluster's CA and verify the other's, and
// the certificate binds the node id. The TLS handshake happens while the accepted connection is
// unverified, so it falls under the same slots, timeout and eviction as the hello; the challenge
// and hello then run inside TLS. The frame layer (CRC, and the HMAC when keyed) runs unchanged
// inside TLS. Without `tls` the connection set-up takes the plain path and nothing else changes.
#pragma once

#ifndef ASIO_STANDALONE
#define ASIO_STANDALONE
#endif
#include <openssl/rand.h>
#include <asio.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "distkit/detail/error.hpp"
#include "distkit/paxos/frame.hpp"
#include "distkit/paxos/tls.hpp"

namespace distkit::inline v0::paxos {

/// A host (numeric address or name) and TCP port.
struct tcp_endpoint {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
};

/// What a full per-peer send queue does with one more frame.
enum class overflow_policy : std::uint8_t {
  drop_oldest,  ///< discard the oldest queued frame (default: the newest state matters most)
  refuse,       ///< refuse the new frame (`send` returns false)
};

/// @brief Configuration of a `tcp_transport`.
struct tcp_transport_options {
  frame_node_id node_id = 0;
  std::uint64_t cluster_id = 0;
  /// Address to listen on; port 0 picks a free port (read it back with `local_port()`).
  tcp_endpoint listen{"127.0.0.1", 0};
  /// Every other node of the cluster. Frames from ids not listed here are refused.
  std::map<frame_node_id, tcp_endpoint> peers;
  /// Cluster key: when set, every frame is signed and every unsigned or forged frame refused.
  std::optional<frame_key> key{};
  /// Instead of `key`: several keys by id, one of them signing (see `frame_keyring`), so that
  /// `rekey` can rotate them while the cluster runs. Takes precedence over `key`.
  std::optional<frame_keyring> keyring{};
  std::size_t max_body = frame_format::default_max_body;
  /// Per-peer send queue bounds (frames and bytes).
  std::size_t queue_frames = 8192;
  std::size_t queue_bytes = std::size_t{64} << 20;
  overflow_policy overflow = overflow_policy::drop_oldest;
  /// Frames received but not yet taken by `receive`; more are dropped (and counted).
  std::size_t inbox_frames = 65536;
  /// Verified inbound connections (members) served at once; one more is closed once verified.
  std::size_t max_inbound_connections = 64;
  /// A verified inbound connection with no complete frame for this long is closed.
  std::chrono::milliseconds inbound_idle_timeout{60'000};
  /// Inbound connections not yet verified (no authentic frame yet) held at once; a new one
  /// closes the oldest when all are taken.
  std::size_t max_unverified_connections = 16;
  /// An unverified connection that shows no authentic frame within this time is closed.
  std::chrono::milliseconds unverified_timeout{2000};
  /// Largest body an unverified connection may announce; a longer length is refused (and the
  /// connection closed) before anything is allocated for it. At most `max_body`.
  std::size_t unverified_max_body = 1024;
  /// Reconnect back-off: doubles from min to max, with up to 50% random jitter.
  std::chrono::milliseconds reconnect_min{5};
  std::chrono::milliseconds reconnect_max{1000};
  /// First sequence number of the frames this node sends (default: wall-clock nanoseconds).
  std::optional<std::uint64_t> first_sequence;
  /// Called on the I/O thread after a frame was put into the inbox (for example to wake an
  /// event loop). Must not block.
  std::function<void()> on_receive;
  /// Mutual TLS 1.3 on every peer connection, both ways (see `tcp_tls_options`). When set,
  /// a peer that does not complete a TLS handshake with a certificate from `tls.ca_file` (and,
  /// with `bind_node_id`, naming its node id) is refused; the handshake counts as unverified
  /// time (`max_unverified_connections`, `unverified_timeout`). Keys may still be set: the
  /// HMAC frames then run inside TLS.
  std::optional<tcp_tls_options> tls{};
};
/// Deprecated: the former name of `tcp_transport_options`.
using tcp_transport_config [[deprecated("use tcp_transport_options")]] = tcp_transport_options;

/// @brief A verified frame's sender and body, as handed to the replica's thread.
struct tcp_message {
  frame_node_id from = 0;
  std::vector<std::byte> body;
};

/// @brief Counters of a transport. All are monotonic.
struct tcp_transport_stats {
  std::uint64_t frames_sent = 0;  ///< written to a socket
  std::uint64_t bytes_sent = 0;
  std::uint64_t dropped_oldest = 0;      ///< queued frames discarded by a full queue
  std::uint64_t refused = 0;             ///< sends refused by a full queue
  std::uint64_t lost_on_disconnect = 0;  ///< frames in a write that failed
  std::uint64_t connects = 0;            ///< outbound connections established
  std::uint64_t connect_failures = 0;
  std::uint64_t disconnects = 0;  ///< established outbound connections that closed
  std::uint64_t inbound_accepted = 0;
  std::uint64_t inbound_over_limit = 0;    ///< verified connections closed because too many were open
  std::uint64_t inbound_verified = 0;      ///< connections that showed an authentic first frame
  std::uint64_t unverified_evicted = 0;    ///< unverified connections closed to make room for a new one
  std::uint64_t unverified_timed_out = 0;  ///< unverified connections closed by `unverified_timeout`
  std::uint64_t inbound_replaced = 0;      ///< verified connections replaced by their sender's newer one
  std::uint64_t inbound_closed_bad = 0;    ///< connections closed after a refused frame
  std::uint64_t inbound_idle_closed = 0;
  std::uint64_t frames_received = 0;  ///< verified frames put into the inbox
  std::uint64_t inbox_dropped = 0;    ///< verified frames dropped because the inbox was full
  /// Inbound TLS handshakes refused by TLS (no, bad or untrusted certificate, not TLS at all);
  /// a connection that merely closes during its handshake is not counted.
  std::uint64_t tls_handshake_failed = 0;
  std::uint64_t tls_identity_refused = 0;  ///< inbound connections whose certificate does not name the hello's sender
  /// Outbound TLS handshakes refused by TLS (the peer's certificate refused, or the peer refused
  /// ours during the handshake); not a connection that closed.
  std::uint64_t tls_outbound_failed = 0;
  std::uint64_t tls_reloads = 0;          ///< successful `reload_tls` calls
  std::uint64_t tls_reload_failures = 0;  ///< `reload_tls` calls that kept the old context
};
/// Deprecated: the former name of `tcp_transport_stats`.
using tcp_transport_counters [[deprecated("use tcp_transport_stats")]] = tcp_transport_stats;

/// @brief Sends and receives authenticated frames between the nodes of one cluster over TCP.
///
/// The constructor binds the listening socket and starts the I/O thread; the destructor (or
/// `stop()`) closes every socket and joins it.
///
/// @throws std::invalid_argument for an invalid configuration (node id listed as its own peer,
///         zero queue bounds, an unresolvable address), naming the parameter; `std::system_error`
///         if the listening socket cannot be bound.
///
/// **Thread safety:** `send`, `receive`, `try_receive`, `set_peer`, `rekey`, `reload_tls`,
/// `counters` and `frame_stats` may be called from any thread. Messages from one sender to one
/// receiver arrive in send order, with possible gaps (drops) and never duplicates.
/// **Complexity:** `send` is O(body) (copy, CRC-32C, HMAC) plus amortised O(1) queueing.
/// @code
/// distkit::paxos::tcp_transport_options cfg;
/// cfg.node_id = 1;
/// cfg.cluster_id = 7;
/// cfg.peers = {{2, {"127.0.0.1", 7002}}, {3, {"127.0.0.1", 7003}}};
/// cfg.key = distkit::paxos::frame_key::from_file("cluster.key");
/// distkit::paxos::tcp_transport net(std::move(cfg));
/// std::vector<std::byte> bytes(64);  // a message
/// net.send(2, bytes);
/// distkit::paxos::tcp_message m;
/// if (net.receive(m, std::chrono::milliseconds(10))) handle(m.from, m.body);
/// @endcode
class tcp_transport {
 public:
  explicit tcp_transport(tcp_transport_options config)
      : config_(std::move(config)),
        keys_(keys_of(config_)),
        decoder_(make_decoder_config(config_, keys_)),
        acceptor_(io_) {
    validate(config_);
    if (config_.tls) tls_ = detail::make_tls_state(*config_.tls);
    asio::ip::tcp::endpoint listen_at(resolve(config_.listen, "listen"));
    acceptor_.open(listen_at.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(listen_at);
    acceptor_.listen();
    local_port_ = acceptor_.local_endpoint().port();
    std::uint64_t jitter_seed = static_cast<std::uint64_t>(std::random_device{}()) ^ config_.node_id;
    rng_.seed(jitter_seed);
    for (const auto& [id, ep] : config_.peers) {
      auto link =
          std::make_shared<peer_link>(io_, id, config_.cluster_id, config_.node_id, keys_, config_.first_sequence);
      if (ep.port != 0) link->endpoint = resolve(ep, "peers");
      links_.emplace(id, std::move(link));
    }
    work_.emplace(asio::make_work_guard(io_));
    accept_next();
    for (auto& [id, link] : links_) {
      if (link->endpoint) asio::post(io_, [this, l = link] { connect(l); });
    }
    thread_ = std::thread([this] { io_.run(); });
  }

  tcp_transport(const tcp_transport&) = delete;
  auto operator=(const tcp_transport&) -> tcp_transport& = delete;
  ~tcp_transport() { stop(); }

  /// The port the transport listens on (the bound one when configured with port 0).
  [[nodiscard]] auto local_port() const noexcept -> std::uint16_t { return local_port_; }
  [[nodiscard]] auto node_id() const noexcept -> frame_node_id { return config_.node_id; }
  /// The largest frame body this transport sends or accepts (`tcp_transport_options::max_body`).
  [[nodiscard]] auto max_body() const noexcept -> std::size_t { return config_.max_body; }

  /// Sets or changes where a configured peer listens (for example once its port is known).
  /// @throws std::invalid_argument if `id` is not a configured peer or the host does not resolve.
  void set_peer(frame_node_id id, const tcp_endpoint& endpoint) {
    auto it = links_.find(id);
    if (it == links_.end()) {
      distkit::detail::throw_invalid_argument("paxos::tcp_transport", "peer id", "must be a configured peer",
                                              std::to_string(id));
    }
    auto resolved = resolve(endpoint, "peer endpoint");
    asio::post(io_, [this, link = it->second, resolved] {
      link->endpoint = resolved;
      link->backoff = config_.reconnect_min;
      if (link->socket.is_open()) {
        close_outbound(link);
      } else if (!link->connecting) {
        link->retry_timer.cancel();
        connect(link);
      }
    });
  }

  /// Queues `body` for `to`. Returns false if the frame was refused (full queue with
  /// `overflow_policy::refuse`, or the transport is stopped); a dropped-oldest frame still
  /// returns true. Delivery is best effort: the protocol above retries.
  /// @throws std::invalid_argument if `to` is not a configured peer or the body exceeds max_body.
  auto send(frame_node_id to, std::span<const std::byte> body) -> bool {
    auto it = links_.find(to);
    if (it == links_.end()) {
      distkit::detail::throw_invalid_argument("paxos::tcp_transport", "to", "must be a configured peer",
                                              std::to_string(to));
    }
    if (body.size() > config_.max_body) {
      distkit::detail::throw_invalid_argument("paxos::tcp_transport", "body", "must be at most max_body bytes",
                                              std::to_string(body.size()));
    }
    if (stopping_.load(std::memory_order_acquire)) return false;
    peer_link& link = *it->second;
    bool kick = false;
    {
      std::lock_guard lock(link.mutex);
      const std::size_t frame_size =
          frame_format::header_size + body.size() + (keys_.empty() ? 0 : frame_format::mac_size);
      while (!link.queue.empty() &&
             (link.queue.size() + 1 > config_.queue_frames || link.queued_bytes + frame_size > config_.queue_bytes)) {
        if (config_.overflow == overflow_policy::refuse) {
          bump(counters_.refused);
          return false;
        }
        link.queued_bytes -= link.queue.front().size();
        link.queue.pop_front();
        bump(counters_.dropped_oldest);
      }
      std::vector<std::byte> frame;
      frame.reserve(frame_size);
      link.encoder.skip_sequence();  // room for a hello just below this frame (see pump)
      link.encoder.encode(to, body, frame);
      link.queued_bytes += frame.size();
      link.queue.push_back(std::move(frame));
      if (!link.pump_posted) {
        link.pump_posted = true;
        kick = true;
      }
    }
    if (kick) asio::post(io_, [this, l = it->second] { pump(l); });
    return true;
  }

  /// Takes the next received message, waiting up to `timeout`. Returns false on timeout or stop.
  template <class Rep, class Period>
  auto receive(tcp_message& out, std::chrono::duration<Rep, Period> timeout) -> bool {
    std::unique_lock lock(inbox_mutex_);
    if (!inbox_cv_.wait_for(lock, timeout, [&] { return !inbox_.empty() || stopped_inbox_; })) return false;
    if (inbox_.empty()) return false;
    out = std::move(inbox_.front());
    inbox_.pop_front();
    return true;
  }

  /// Takes the next received message if there is one.
  auto try_receive(tcp_message& out) -> bool {
    std::lock_guard lock(inbox_mutex_);
    if (inbox_.empty()) return false;
    out = std::move(inbox_.front());
    inbox_.pop_front();
    return true;
  }

  /// A snapshot of the transport's counters.
  [[nodiscard]] auto counters() const noexcept -> tcp_transport_stats {
    tcp_transport_stats c;
    c.frames_sent = load(counters_.frames_sent);
    c.bytes_sent = load(counters_.bytes_sent);
    c.dropped_oldest = load(counters_.dropped_oldest);
    c.refused = load(counters_.refused);
    c.lost_on_disconnect = load(counters_.lost_on_disconnect);
    c.connects = load(counters_.connects);
    c.connect_failures = load(counters_.connect_failures);
    c.disconnects = load(counters_.disconnects);
    c.inbound_accepted = load(counters_.inbound_accepted);
    c.inbound_over_limit = load(counters_.inbound_over_limit);
    c.inbound_verified = load(counters_.inbound_verified);
    c.unverified_evicted = load(counters_.unverified_evicted);
    c.unverified_timed_out = load(counters_.unverified_timed_out);
    c.inbound_replaced = load(counters_.inbound_replaced);
    c.inbound_closed_bad = load(counters_.inbound_closed_bad);
    c.inbound_idle_closed = load(counters_.inbound_idle_closed);
    c.frames_received = load(counters_.frames_received);
    c.inbox_dropped = load(counters_.inbox_dropped);
    c.tls_handshake_failed = load(counters_.tls_handshake_failed);
    c.tls_identity_refused = load(counters_.tls_identity_refused);
    c.tls_outbound_failed = load(counters_.tls_outbound_failed);
    c.tls_reloads = load(counters_.tls_reloads);
    c.tls_reload_failures = load(counters_.tls_reload_failures);
    return c;
  }

  /// Verification counters of inbound frames (accepted, refused per reason).
  [[nodiscard]] auto frame_stats() const noexcept -> const paxos::frame_stats& { return decoder_.stats(); }

  /// Frames queued for `to` and not yet written.
  [[nodiscard]] auto queued(frame_node_id to) const -> std::size_t {
    auto it = links_.find(to);
    if (it == links_.end()) return 0;
    std::lock_guard lock(it->second->mutex);
    return it->second->queue.size();
  }

  /// Closes every socket and joins the I/O thread. Idempotent; `receive` then returns false.
  /// Rotates the cluster keys while running: frames queued from now on are signed with
  /// `keys`' signing key (frames already queued keep theirs), and frames signed with any key of
  /// `keys` are accepted from the I/O thread's next read on. Rotate in three steps, each done
  /// on every node before the next: add the new key, sign with it, remove the old one.
  /// @throws std::invalid_argument naming `keyring` if the transport was configured without a
  ///         key and `keys` is not empty, or the other way round.
  void rekey(const frame_keyring& keys) {
    if (keys.empty() != keys_.empty()) {
      distkit::detail::throw_invalid_argument("paxos::tcp_transport", "keyring",
                                              "must stay empty without a cluster key and not become empty with one");
    }
    for (auto& [id, link] : links_) {
      std::lock_guard lock(link->mutex);
      link->encoder.rekey(keys);
    }
    asio::post(io_, [this, keys] { decoder_.rekey(keys); });
  }

  /// Re-reads the certificate chain, key and CA files (as last configured) into a new TLS
  /// context: connections opened from now on use it, open ones continue on theirs. A file that
  /// does not load keeps the context in use; the result says why and `tls_reload_failures`
  /// counts it.
  /// @throws std::invalid_argument naming `tls` if the transport was configured without TLS.
  auto reload_tls() -> tls_reload_result { return reload_tls(current_tls_options()); }

  /// As `reload_tls()`, from other files (for example a new CA bundle).
  auto reload_tls(const tcp_tls_options& options) -> tls_reload_result {
    if (!config_.tls) {
      distkit::detail::throw_invalid_argument("paxos::tcp_transport", "tls", "must be set at construction to reload",
                                              "not set");
    }
    try {
      auto state = detail::make_tls_state(options);
      {
        std::lock_guard lock(tls_mutex_);
        tls_ = std::move(state);
      }
      bump(counters_.tls_reloads);
      return {true, {}};
    } catch (const std::exception& e) {
      bump(counters_.tls_reload_failures);
      return {false, e.what()};
    }
  }

  void stop() {
    if (stopping_.exchange(true)) {
      if (thread_.joinable()) thread_.join();
      return;
    }
    asio::post(io_, [this] {
      asio::error_code ignored;
      acceptor_.close(ignored);
      for (auto& [id, link] : links_) {
        link->retry_timer.cancel();
        link->socket.close(ignored);
      }
      for (auto& weak : inbound_) {
        if (auto conn = weak.lock()) {
          conn->idle_timer.cancel();
          conn->socket.close(ignored);
        }
      }
      inbound_.clear();
      unverified_.clear();
      members_.clear();
    });
    work_.reset();
    if (thread_.joinable()) thread_.join();
    {
      std::lock_guard lock(inbox_mutex_);
      stopped_inbox_ = true;
    }
    inbox_cv_.notify_all();
  }

 private:
  struct atomic_counters {
    std::atomic<std::uint64_t> frames_sent{0}, bytes_sent{0}, dropped_oldest{0}, refused{0}, lost_on_disconnect{0},
        connects{0}, connect_failures{0}, disconnects{0}, inbound_accepted{0}, inbound_over_limit{0},
        inbound_verified{0}, unverified_evicted{0}, unverified_timed_out{0}, inbound_replaced{0}, inbound_closed_bad{0},
        inbound_idle_closed{0}, frames_received{0}, inbox_dropped{0}, tls_handshake_failed{0}, tls_identity_refused{0},
        tls_outbound_failed{0}, tls_reloads{0}, tls_reload_failures{0};
  };

  struct peer_link {
    peer_link(asio::io_context& io, frame_node_id peer_id, std::uint64_t cluster, frame_node_id self,
              const frame_keyring& keys, std::optional<std::uint64_t> first_sequence)
        : id(peer_id), encoder(cluster, self, keys, first_sequence), socket(io), retry_timer(io) {}
    frame_node_id id;
    // Guarded by `mutex` (touched by senders and the I/O thread).
    mutable std::mutex mutex;
    frame_encoder encoder;
    std::deque<std::vector<std::byte>> queue;
    std::size_t queued_bytes = 0;
    bool pump_posted = false;
    // I/O thread only.
    std::optional<asio::ip::tcp::endpoint> endpoint;
    asio::ip::tcp::socket socket;
    asio::steady_timer retry_timer;
    bool connected = false;
    bool connecting = false;
    bool writing = false;
    bool needs_hello = false;  // a new connection: its first write starts with a hello
    std::array<std::byte, frame_format::challenge_size> challenge{};  // the receiver's, for the hello
    std::uint64_t generation = 0;  // bumps on every close, so stale completions are ignored
    std::chrono::milliseconds backoff{0};
    std::vector<std::byte> write_buffer;
    std::size_t write_frames = 0;
    std::byte probe{};
    // The current connection's TLS stream over `socket` (with TLS on). A new connection gets a
    // new one; handlers on the stream hold it, so a replaced stream outlives its operations.
    std::shared_ptr<detail::tls_session> tls;
  };

  struct inbound_conn {
    explicit inbound_conn(asio::ip::tcp::socket s) : socket(std::move(s)), idle_timer(socket.get_executor()) {}
    asio::ip::tcp::socket socket;
    asio::steady_timer idle_timer;
    std::vector<std::byte> buffer;
    frame_header header;
    bool got_frame = false;
    bool verified = false;  // showed one authentic frame: a member's connection
    std::array<std::byte, frame_format::challenge_size> challenge{};  // sent on accept
    bool closed = false;
    frame_node_id peer = 0;
    std::shared_ptr<detail::tls_session> tls;  // with TLS on (the handlers hold `conn`, so it lives as long)
    detail::x509_ptr peer_cert;                // the peer's verified certificate, after the handshake
  };

  // Runs `op` on the connection's stream: its TLS stream when it has one, else its socket.
  template <class Conn, class Op>
  static void with_stream(Conn& c, Op&& op) {
    if (c.tls) {
      op(c.tls->stream);
    } else {
      op(c.socket);
    }
  }

  auto current_tls() -> std::shared_ptr<detail::tls_state> {
    std::lock_guard lock(tls_mutex_);
    return tls_;
  }

  auto current_tls_options() -> tcp_tls_options {
    std::lock_guard lock(tls_mutex_);
    return tls_ ? tls_->options : tcp_tls_options{};
  }

  static auto load(const std::atomic<std::uint64_t>& a) noexcept -> std::uint64_t {
    return a.load(std::memory_order_relaxed);
  }
  static void bump(std::atomic<std::uint64_t>& a, std::uint64_t n = 1) noexcept {
    a.fetch_add(n, std::memory_order_relaxed);
  }

  static auto keys_of(const tcp_transport_options& c) -> frame_keyring {
    if (c.keyring) return *c.keyring;
    return c.key ? frame_keyring(*c.key) : frame_keyring();
  }

  static auto make_decoder_config(const tcp_transport_options& c, const frame_keyring& keys) -> frame_decoder_options {
    frame_decoder_options d;
    d.cluster_id = c.cluster_id;
    d.node_id = c.node_id;
    for (const auto& [id, ep] : c.peers) d.peers.push_back(id);
    d.max_body = c.max_body;
    if (!keys.empty()) d.keyring = keys;
    return d;
  }

  static void validate(const tcp_transport_options& c) {
    if (c.peers.count(c.node_id) != 0) {
      distkit::detail::throw_invalid_argument("paxos::tcp_transport", "peers", "must not list the node itself",
                                              std::to_string(c.node_id));
    }
    if (c.queue_frames == 0) {
      distkit::detail::throw_invalid_argument("paxos::tcp_transport", "queue_frames", "must be at least 1", "0");
    }
    if (c.queue_bytes < frame_format::header_size + frame_format::mac_size) {
      distkit::detail::throw_invalid_argument("paxos::tcp_transport", "queue_bytes", "must be at least 72",
                                              std::to_string(c.queue_bytes));
    }
    if (c.inbox_frames == 0) {
      distkit::detail::throw_invalid_argument("paxos::tcp_transport", "inbox_frames", "must be at least 1", "0");
    }
    if (c.max_inbound_connections == 0) {
      distkit::detail::throw_invalid_argument("paxos::tcp_transport", "max_inbound_connections", "must be at least 1",
                                              "0");
    }
    if (c.reconnect_min.count() <= 0 || c.reconnect_max < c.reconnect_min) {
      distkit::detail::throw_invalid_argument("paxos::tcp_transport", "reconnect_min",
                                              "must be positive and at most reconnect_max",
                                              std::to_string(c.reconnect_min.count()) + " ms");
    }
    if (c.inbound_idle_timeout.count() <= 0) {
      distkit::detail::throw_invalid_argument("paxos::tcp_transport", "inbound_idle_timeout", "must be positive",
                                              std::to_string(c.inbound_idle_timeout.count()) + " ms");
    }
    if (c.max_unverified_connections == 0) {
      distkit::detail::throw_invalid_argument("paxos::tcp_transport", "max_unverified_connections",
                                              "must be at least 1", "0");
    }
    if (c.unverified_timeout.count() <= 0) {
      distkit::detail::throw_invalid_argument("paxos::tcp_transport", "unverified_timeout", "must be positive",
                                              std::to_string(c.unverified_timeout.count()) + " ms");
    }
    if (c.unverified_max_body > c.max_body) {
      distkit::detail::throw_invalid_argument("paxos::tcp_transport", "unverified_max_body", "must be at most max_body",
                                              std::to_string(c.unverified_max_body));
    }
  }

  auto resolve(const tcp_endpoint& ep, const char* parameter) -> asio::ip::tcp::endpoint {
    asio::error_code ec;
    auto address = asio::ip::make_address(ep.host, ec);
    if (!ec) return {address, ep.port};
    asio::ip::tcp::resolver resolver(io_);
    auto results = resolver.resolve(ep.host, std::to_string(ep.port), ec);
    if (ec || results.empty()) {
      distkit::detail::throw_invalid_argument("paxos::tcp_transport", parameter, "must be a resolvable host", ep.host);
    }
    return *results.begin();
  }

  // ---- outbound (I/O thread) ----

  void connect(const std::shared_ptr<peer_link>& link) {
    if (stopping_.load(std::memory_order_acquire) || !link->endpoint || link->connecting || link->connected) return;
    link->connecting = true;
    const std::uint64_t gen = link->generation;
    link->socket.async_connect(*link->endpoint, [this, link, gen](const asio::error_code& ec) {
      if (gen != link->generation) return;
      if (stopping_.load(std::memory_order_acquire)) return;
      if (ec) return connect_failed(link);
      asio::error_code ignored;
      link->socket.set_option(asio::ip::tcp::no_delay(true), ignored);
      auto tls = current_tls();
      if (!tls) return read_challenge(link);
      // TLS first: the peer's certificate must chain to the CA and (bound) name the peer dialled.
      link->tls = std::make_shared<detail::tls_session>(std::move(tls), link->socket);
      if (link->tls->state->options.bind_node_id) {
        SSL* ssl = link->tls->stream.native_handle();
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_WILDCARDS);
        if (SSL_set1_host(ssl, detail::tls_identity(link->tls->state->options, link->id).c_str()) != 1) {
          return connect_failed(link);
        }
      }
      link->tls->stream.async_handshake(asio::ssl::stream_base::client,
                                        [this, link, gen, keep = link->tls](const asio::error_code& hec) {
                                          if (gen != link->generation) return;
                                          if (stopping_.load(std::memory_order_acquire)) return;
                                          if (hec) {
                                            if (detail::is_tls_refusal(hec)) bump(counters_.tls_outbound_failed);
                                            return connect_failed(link);
                                          }
                                          read_challenge(link);
                                        });
    });
  }

  void read_challenge(const std::shared_ptr<peer_link>& link) {
    const std::uint64_t gen = link->generation;
    // The receiver speaks first: its challenge, which our hello must carry.
    with_stream(*link, [&](auto& stream) {
      asio::async_read(stream, asio::buffer(link->challenge),
                       [this, link, gen, keep = link->tls](const asio::error_code& ec2, std::size_t) {
                         if (gen != link->generation) return;
                         if (stopping_.load(std::memory_order_acquire)) return;
                         if (ec2) return connect_failed(link);
                         link->connecting = false;
                         // The back-off is reset only once a write went through: a peer (or a
                         // proxy) that accepts and immediately closes must not be hammered.
                         link->connected = true;
                         link->needs_hello = true;
                         bump(counters_.connects);
                         watch_close(link);
                         pump(link);
                       });
    });
  }

  void connect_failed(const std::shared_ptr<peer_link>& link) {
    link->connecting = false;
    bump(counters_.connect_failures);
    asio::error_code ignored;
    link->socket.close(ignored);
    ++link->generation;
    schedule_reconnect(link);
  }

  void schedule_reconnect(const std::shared_ptr<peer_link>& link) {
    if (stopping_.load(std::memory_order_acquire)) return;
    auto base = link->backoff.count() == 0 ? config_.reconnect_min : std::min(link->backoff * 2, config_.reconnect_max);
    link->backoff = base;
    auto jitter = std::chrono::milliseconds(std::uniform_int_distribution<long long>(0, base.count() / 2)(rng_));
    link->retry_timer.expires_after(base + jitter);
    const std::uint64_t gen = link->generation;
    link->retry_timer.async_wait([this, link, gen](const asio::error_code& ec) {
      if (ec || gen != link->generation) return;
      connect(link);
    });
  }

  // The peer never writes on our outbound socket: a completed read means it closed or failed.
  void watch_close(const std::shared_ptr<peer_link>& link) {
    const std::uint64_t gen = link->generation;
    with_stream(*link, [&](auto& stream) {
      stream.async_read_some(asio::buffer(&link->probe, 1),
                             [this, link, gen, keep = link->tls](const asio::error_code&, std::size_t) {
                               if (gen != link->generation) return;
                               close_outbound(link);
                             });
    });
  }

  void close_outbound(const std::shared_ptr<peer_link>& link) {
    asio::error_code ignored;
    link->socket.close(ignored);
    ++link->generation;
    if (link->connected) bump(counters_.disconnects);
    if (link->writing) {
      bump(counters_.lost_on_disconnect, link->write_frames);
      link->writing = false;
      link->write_frames = 0;
    }
    link->connected = false;
    link->connecting = false;
    schedule_reconnect(link);
  }

  void pump(const std::shared_ptr<peer_link>& link) {
    if (stopping_.load(std::memory_order_acquire)) return;
    {
      std::lock_guard lock(link->mutex);
      link->pump_posted = false;
      // Not connected: the frames wait (bounded) for the connection, which is being made or
      // scheduled; a completed connect pumps again.
      if (!link->connected || link->writing || (link->queue.empty() && !link->needs_hello)) return;
      // Gather queued frames into one write (up to 1 MiB, at least one frame), after a hello on
      // a new connection. The hello takes the number reserved just below the first queued frame
      // (or the next one), so it is accepted and the queued frames after it too.
      link->write_buffer.clear();
      link->write_frames = 0;
      if (link->needs_hello) {
        link->needs_hello = false;
        if (link->queue.empty()) {
          link->encoder.encode_hello(link->id, link->challenge, link->write_buffer);
        } else {
          link->encoder.encode_hello(link->id, link->challenge, link->write_buffer,
                                     frame_encoder::sequence_of(link->queue.front()) - 1);
        }
      }
      while (!link->queue.empty() &&
             (link->write_frames == 0 || link->write_buffer.size() + link->queue.front().size() <= (1U << 20))) {
        auto& f = link->queue.front();
        link->write_buffer.insert(link->write_buffer.end(), f.begin(), f.end());
        link->queued_bytes -= f.size();
        link->queue.pop_front();
        ++link->write_frames;
      }
      link->writing = true;
    }
    const std::uint64_t gen = link->generation;
    with_stream(*link, [&](auto& stream) {
      asio::async_write(stream, asio::buffer(link->write_buffer),
                        [this, link, gen, keep = link->tls](const asio::error_code& ec, std::size_t written) {
                          if (gen != link->generation) return;
                          if (ec) {
                            close_outbound(link);
                            return;
                          }
                          link->backoff = std::chrono::milliseconds(0);
                          bump(counters_.frames_sent, link->write_frames);
                          bump(counters_.bytes_sent, written);
                          link->writing = false;
                          link->write_frames = 0;
                          pump(link);
                        });
    });
  }

  // ---- inbound (I/O thread) ----

  void accept_next() {
    acceptor_.async_accept([this](const asio::error_code& ec, asio::ip::tcp::socket socket) {
      if (stopping_.load(std::memory_order_acquire) || !acceptor_.is_open()) return;
      if (!ec) {
        std::erase_if(inbound_, [](const std::weak_ptr<inbound_conn>& w) { return w.expired(); });
        std::erase_if(unverified_, [](const std::weak_ptr<inbound_conn>& w) {
          auto c = w.lock();
          return !c || c->closed || c->verified;
        });
        // All unverified slots taken: the oldest goes (a member shows its hello at once, a
        // stranger that holds a slot is only ever the oldest for a while).
        while (unverified_.size() >= config_.max_unverified_connections) {
          if (auto oldest = unverified_.front().lock()) {
            bump(counters_.unverified_evicted);
            close_inbound(oldest, false);
          }
          unverified_.pop_front();
        }
        bump(counters_.inbound_accepted);
        asio::error_code ignored;
        socket.set_option(asio::ip::tcp::no_delay(true), ignored);
        auto conn = std::make_shared<inbound_conn>(std::move(socket));
        if (RAND_bytes(reinterpret_cast<unsigned char*>(conn->challenge.data()),
                       static_cast<int>(conn->challenge.size())) != 1) {
          close_inbound(conn, false);  // no fresh challenge, no connection
        } else {
          inbound_.push_back(conn);
          unverified_.push_back(conn);
          // The unverified timeout and slot cover the TLS handshake too.
          arm_unverified(conn);
          if (auto tls = current_tls()) {
            conn->tls = std::make_shared<detail::tls_session>(std::move(tls), conn->socket);
            conn->tls->stream.async_handshake(
                asio::ssl::stream_base::server, [this, conn](const asio::error_code& hec) {
                  if (stopping_.load(std::memory_order_acquire) || conn->closed) return;
                  if (hec) {
                    if (detail::is_tls_refusal(hec)) bump(counters_.tls_handshake_failed);
                    close_inbound(conn, false);
                    return;
                  }
                  conn->peer_cert.reset(SSL_get1_peer_certificate(conn->tls->stream.native_handle()));
                  open_inbound(conn);
                });
          } else {
            open_inbound(conn);
          }
        }
      }
      accept_next();
    });
  }

  // Sends the connection's challenge and reads its first frame (which must answer it).
  void open_inbound(const std::shared_ptr<inbound_conn>& conn) {
    with_stream(*conn, [&](auto& stream) {
      asio::async_write(stream, asio::buffer(conn->challenge), [this, conn](const asio::error_code& wec, std::size_t) {
        if (wec && !conn->closed) close_inbound(conn, false);
      });
    });
    read_header(conn);
  }

  void arm_unverified(const std::shared_ptr<inbound_conn>& conn) {
    conn->idle_timer.expires_after(config_.unverified_timeout);
    conn->idle_timer.async_wait([this, weak = std::weak_ptr<inbound_conn>(conn)](const asio::error_code& ec) {
      if (ec || stopping_.load(std::memory_order_acquire)) return;
      auto c = weak.lock();
      if (!c || c->verified || c->closed) return;
      bump(counters_.unverified_timed_out);
      close_inbound(c, false);
    });
  }

  // The connection's first authentic frame came from `from`: it becomes a member's connection.
  auto promote(const std::shared_ptr<inbound_conn>& conn, frame_node_id from) -> bool {
    conn->verified = true;
    conn->peer = from;
    bump(counters_.inbound_verified);
    auto& slot = members_[from];
    if (auto old = slot.lock(); old && old != conn && !old->closed) {
      bump(counters_.inbound_replaced);  // the sender reconnected: its old connection is dead
      close_inbound(old, false);
    }
    slot.reset();
    std::size_t live = 0;
    for (const auto& [id, weak] : members_) {
      if (auto c = weak.lock(); c && !c->closed) ++live;
    }
    if (live >= config_.max_inbound_connections) {
      bump(counters_.inbound_over_limit);
      close_inbound(conn, false);
      return false;
    }
    slot = conn;
    arm_idle(conn);
    return true;
  }

  void arm_idle(const std::shared_ptr<inbound_conn>& conn) {
    conn->got_frame = false;
    conn->idle_timer.expires_after(config_.inbound_idle_timeout);
    conn->idle_timer.async_wait([this, weak = std::weak_ptr<inbound_conn>(conn)](const asio::error_code& ec) {
      if (ec || stopping_.load(std::memory_order_acquire)) return;
      auto c = weak.lock();
      if (!c) return;
      if (c->got_frame) {
        arm_idle(c);
        return;
      }
      bump(counters_.inbound_idle_closed);
      close_inbound(c, false);
    });
  }

  void close_inbound(const std::shared_ptr<inbound_conn>& conn, bool bad) {
    if (bad) bump(counters_.inbound_closed_bad);
    asio::error_code ignored;
    conn->closed = true;
    conn->idle_timer.cancel();
    conn->socket.close(ignored);
  }

  void read_header(const std::shared_ptr<inbound_conn>& conn) {
    conn->buffer.resize(frame_format::header_size);
    with_stream(*conn, [&](auto& stream) { read_header_from(stream, conn); });
  }

  template <class Stream>
  void read_header_from(Stream& stream, const std::shared_ptr<inbound_conn>& conn) {
    asio::async_read(stream, asio::buffer(conn->buffer), [this, conn](const asio::error_code& ec, std::size_t n) {
      // A closed connection (replaced by its sender's newer one) is not read on.
      if (stopping_.load(std::memory_order_acquire) || conn->closed) return;
      if (ec) {
        // A frame cut short by the peer closing counts as truncated.
        if (n > 0) {
          decoder_.check_header(std::span(conn->buffer).first(n), conn->header);
          close_inbound(conn, true);
        } else {
          close_inbound(conn, false);
        }
        return;
      }
      // An unverified connection may announce only a small body: nothing larger is allocated
      // before one of its frames proved to be authentic.
      const std::size_t limit = conn->verified ? config_.max_body : config_.unverified_max_body;
      if (decoder_.check_header(conn->buffer, conn->header, limit) != frame_error_kind::none) {
        close_inbound(conn, true);
        return;
      }
      read_trailer(conn);
    });
  }

  void read_trailer(const std::shared_ptr<inbound_conn>& conn) {
    // The length was checked against max_body before this allocation.
    const std::size_t trailer = conn->header.trailer_size();
    conn->buffer.resize(frame_format::header_size + trailer);
    with_stream(*conn, [&](auto& stream) { read_trailer_from(stream, conn, trailer); });
  }

  template <class Stream>
  void read_trailer_from(Stream& stream, const std::shared_ptr<inbound_conn>& conn, std::size_t trailer) {
    asio::async_read(
        stream, asio::buffer(conn->buffer.data() + frame_format::header_size, trailer),
        [this, conn](const asio::error_code& ec, std::size_t n) {
          if (stopping_.load(std::memory_order_acquire) || conn->closed) return;
          if (ec) {
            decoder_.check_frame(conn->header, std::span(conn->buffer).first(frame_format::header_size + n));
            close_inbound(conn, true);
            return;
          }
          // The first frame must answer this connection's challenge.
          auto verdict = conn->verified ? decoder_.check_frame(conn->header, conn->buffer)
                                        : decoder_.check_hello(conn->header, conn->buffer, conn->challenge);
          if (verdict == frame_error_kind::replayed) {
            read_header(conn);  // intact but stale: drop it, keep the connection
            return;
          }
          if (verdict != frame_error_kind::none) {
            close_inbound(conn, true);
            return;
          }
          if (!conn->verified) {
#if !defined(DISTKIT_TLS_MUTATION_NO_IDENTITY_CHECK)  // test-only mutation: the TLS tests must catch it
            // With the node id bound to certificates, the hello's sender must be the one the
            // connection's certificate names.
            if (conn->tls && conn->tls->state->options.bind_node_id &&
                !detail::tls_cert_names(conn->peer_cert.get(),
                                        detail::tls_identity(conn->tls->state->options, conn->header.from))) {
              bump(counters_.tls_identity_refused);
              close_inbound(conn, true);
              return;
            }
#endif
            if (!promote(conn, conn->header.from)) return;
          }
          if (conn->header.from != conn->peer) {
            close_inbound(conn, true);  // one connection, one sender
            return;
          }
          conn->got_frame = true;
          if (!conn->header.is_hello()) {
            deliver(conn->header.from,
                    std::span(conn->buffer).subspan(frame_format::header_size, conn->header.body_length));
          }
          read_header(conn);
        });
  }

  void deliver(frame_node_id from, std::span<const std::byte> body) {
    {
      std::lock_guard lock(inbox_mutex_);
      if (inbox_.size() >= config_.inbox_frames) {
        bump(counters_.inbox_dropped);
        return;
      }
      inbox_.push_back(tcp_message{from, std::vector<std::byte>(body.begin(), body.end())});
    }
    bump(counters_.frames_received);
    inbox_cv_.notify_one();
    if (config_.on_receive) config_.on_receive();
  }

  tcp_transport_options config_;
  frame_keyring keys_;     // as configured: empty, or the keys at construction (`rekey` changes the links and decoder)
  frame_decoder decoder_;  // I/O thread only (its stats are atomics)
  asio::io_context io_;
  asio::ip::tcp::acceptor acceptor_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::map<frame_node_id, std::shared_ptr<peer_link>> links_;     // the map itself is immutable after construction
  std::vector<std::weak_ptr<inbound_conn>> inbound_;              // every open inbound connection
  std::deque<std::weak_ptr<inbound_conn>> unverified_;            // not yet verified, oldest first
  std::map<frame_node_id, std::weak_ptr<inbound_conn>> members_;  // verified, one per sender
  std::mt19937_64 rng_;
  std::uint16_t local_port_ = 0;
  atomic_counters counters_;
  std::atomic<bool> stopping_{false};
  std::mutex tls_mutex_;
  std::shared_ptr<detail::tls_state> tls_;  // null without TLS; replaced by reload_tls (guarded by tls_mutex_)

  std::mutex inbox_mutex_;
  std::condition_variable inbox_cv_;
  std::deque<tcp_message> inbox_;
  bool stopped_inbox_ = false;

  std::thread thread_;
};

}  // namespace distkit::inline v0::paxos
