// SPDX-License-Identifier: MIT
// examples/paxos_kv/kv_protocol.hpp: the paxos_kv client protocol, address parsing and a blocking client.
//
// Client <-> server messages are length-prefixed (u32 little-endian, at most 32 MiB; the
// replica refuses a command over its max_batch_bytes with an error reply):
//   request:  u8 kind (1 command, 2 status, 3 wait) | u64 client id | u64 request id | command bytes
// A wait request carries a u64 slot: the server answers with its status once it has chosen
// (and applied) that slot, or after 5 s.
//   response: u8 status (0 ok, 1 redirect, 2 retry, 3 error) | u64 request id | payload
// A command is a `kv_state_machine` encoding (get/put/append/cas). A redirect's payload is the
// leader's client address "host:port" (empty when no leader is known yet). Each client has a
// random 64-bit id and numbers its requests 1, 2, 3...; it retries a request under the same
// number (on a timeout, a lost connection or a redirect), and the replicated dedupe table
// applies it once.
#pragma once

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "distkit/detail/endian.hpp"

namespace paxos_kv {

inline constexpr std::size_t max_message = std::size_t{32} << 20;

/// `register_session`: the request id is the client's secret; the reply's payload is its
/// session id (8 bytes), the `client_id` of its commands from then on.
enum class request_kind : std::uint8_t { command = 1, status = 2, wait_chosen = 3, register_session = 4 };
/// `no_session`: the command's client id is no live session (never registered, expired or
/// evicted); the command was not applied.
enum class reply_status : std::uint8_t { ok = 0, redirect = 1, retry = 2, error = 3, no_session = 4 };

struct address {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  [[nodiscard]] auto str() const -> std::string { return host + ":" + std::to_string(port); }
  friend auto operator==(const address&, const address&) -> bool = default;
};

/// The decimal number that is all of `text`, in [min, max] (no sign, no spaces, no suffix).
/// Throws std::invalid_argument naming `what` and quoting `context`.
inline auto parse_number(std::string_view text, std::uint64_t min, std::uint64_t max, std::string_view what,
                         std::string_view context) -> std::uint64_t {
  std::uint64_t v = 0;
  const char* end = text.data() + text.size();
  const auto [p, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc{} || p != end || v < min || v > max) {
    throw std::invalid_argument(std::string(what) + ": '" + std::string(text) + "' in '" + std::string(context) +
                                "' is not a number in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return v;
}

/// "host:port" -> address. Throws std::invalid_argument naming `what`.
inline auto parse_address(std::string_view text, std::string_view what) -> address {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) {
    throw std::invalid_argument(std::string(what) + ": expected host:port, got '" + std::string(text) + "'");
  }
  const auto port = parse_number(text.substr(colon + 1), 1, 65535, what, text);
  return {std::string(text.substr(0, colon)), static_cast<std::uint16_t>(port)};
}

/// Splits on a separator.
inline auto split(std::string_view text, char sep) -> std::vector<std::string> {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    auto end = text.find(sep, start);
    if (end == std::string_view::npos) end = text.size();
    if (end > start) out.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

/// One cluster member: its id, the address peers reach it at and the address clients use.
struct member {
  std::uint32_t id = 0;
  address peer;
  address client;
};

/// "1=127.0.0.1:7001:8001,2=..." (id=host:peer_port:client_port) -> members.
inline auto parse_members(std::string_view text) -> std::map<std::uint32_t, member> {
  std::map<std::uint32_t, member> out;
  for (const auto& item : split(text, ',')) {
    auto eq = item.find('=');
    if (eq == std::string::npos) throw std::invalid_argument("--peers: expected id=host:peer_port:client_port");
    member m;
    m.id = static_cast<std::uint32_t>(
        parse_number(std::string_view(item).substr(0, eq), 0, 0xFFFF'FFFFU, "--peers", item));
    auto rest = item.substr(eq + 1);
    auto last = rest.rfind(':');
    if (last == std::string::npos) throw std::invalid_argument("--peers: expected id=host:peer_port:client_port");
    m.peer = parse_address(rest.substr(0, last), "--peers");
    m.client = parse_address(m.peer.host + rest.substr(last), "--peers");
    if (!out.emplace(m.id, m).second) throw std::invalid_argument("--peers: duplicate id " + std::to_string(m.id));
  }
  if (out.empty()) throw std::invalid_argument("--peers: no members");
  return out;
}

inline void put_u32(std::string& out, std::uint32_t v) {
  char b[4];
  distkit::detail::store_le<std::uint32_t>(b, v);
  out.append(b, 4);
}
inline void put_u64(std::string& out, std::uint64_t v) {
  char b[8];
  distkit::detail::store_le<std::uint64_t>(b, v);
  out.append(b, 8);
}

/// A request, length prefix included. Throws std::invalid_argument for a command longer than
/// the protocol carries (never a truncated length).
inline auto encode_request(request_kind kind, std::uint64_t client_id, std::uint64_t request_id,
                           std::string_view command) -> std::string {
  if (command.size() > max_message - 17) {
    throw std::invalid_argument("command: " + std::to_string(command.size()) + " bytes, more than the protocol's " +
                                std::to_string(max_message - 17));
  }
  std::string out;
  put_u32(out, static_cast<std::uint32_t>(1 + 16 + command.size()));
  out.push_back(static_cast<char>(kind));
  put_u64(out, client_id);
  put_u64(out, request_id);
  out.append(command);
  return out;
}

/// A response, length prefix included.
inline auto encode_reply(reply_status status, std::uint64_t request_id, std::string_view payload) -> std::string {
  if (payload.size() > 0xFFFF'FFFFU - 9) throw std::invalid_argument("reply payload: does not fit 32 bits");
  std::string out;
  put_u32(out, static_cast<std::uint32_t>(1 + 8 + payload.size()));
  out.push_back(static_cast<char>(status));
  put_u64(out, request_id);
  out.append(payload);
  return out;
}

struct request {
  request_kind kind = request_kind::command;
  std::uint64_t client_id = 0;
  std::uint64_t request_id = 0;
  std::string command;
};

/// Parses a request body (without its length prefix); nullopt if malformed.
inline auto decode_request(std::string_view body) -> std::optional<request> {
  if (body.size() < 17) return std::nullopt;
  request r;
  auto kind = static_cast<std::uint8_t>(body[0]);
  if (kind < 1 || kind > 4) return std::nullopt;
  r.kind = static_cast<request_kind>(kind);
  r.client_id = distkit::detail::load_le<std::uint64_t>(body.data() + 1);
  r.request_id = distkit::detail::load_le<std::uint64_t>(body.data() + 9);
  r.command.assign(body.substr(17));
  return r;
}

struct reply {
  reply_status status = reply_status::error;
  std::uint64_t request_id = 0;
  std::string payload;
};

/// @brief A blocking client of a paxos_kv cluster: finds the leader (redirects), retries a
/// request under the same id until it gets an answer or the deadline passes.
///
/// One request at a time; use one client per thread.
class client {
 public:
  /// `client_id` labels this client; its session secret mixes it with 64 random bits, so
  /// clients given the same label still get different sessions.
  client(std::vector<address> servers, std::uint64_t client_id,
         std::chrono::milliseconds attempt_timeout = std::chrono::milliseconds(1000))
      : servers_(std::move(servers)), client_id_(client_id), attempt_timeout_(attempt_timeout) {
    if (servers_.empty()) throw std::invalid_argument("--servers: at least one server");
    std::random_device rd;
    secret_ = (std::uint64_t{rd()} << 32 | rd()) ^ (client_id * 0x9E3779B97F4A7C15ULL);
  }
  client(const client&) = delete;
  auto operator=(const client&) -> client& = delete;
  ~client() { disconnect(); }

  /// Runs one command (a kv_state_machine encoding) to completion, under this client's session
  /// (registered through the cluster's log on first use). Returns the result, or nullopt when
  /// the deadline passed without an answer (the command may or may not have been applied: an
  /// "unknown" outcome), the server refused it with an error (never applied; `last_error()`
  /// says why, for example a command too large for the cluster's batches), or the session
  /// ended after the command may have been applied (unknown outcome; the next call registers
  /// a new session). A command refused on its first and only attempt because the session
  /// ended was not applied: it runs again under a new session.
  auto call(std::string_view command, std::chrono::steady_clock::time_point deadline) -> std::optional<std::string> {
    last_error_.clear();
    for (int round = 0; round < 2; ++round) {
      if (!session_ && !register_session(deadline)) return std::nullopt;
      const std::uint64_t rid = ++request_id_;
      std::size_t sends = 0;
      auto r = run(encode_request(request_kind::command, *session_, rid, command), rid, deadline, sends);
      if (!r) return std::nullopt;
      if (r->status == reply_status::ok) return std::move(r->payload);
      if (r->status == reply_status::no_session) {
        session_.reset();
        if (sends == 1) continue;  // never applied: again, under a new session
        last_error_ = "the session ended (expired or evicted) while the command was retried: outcome unknown";
        return std::nullopt;
      }
      last_error_ = r->payload.empty() ? std::string("refused") : std::move(r->payload);
      return std::nullopt;
    }
    last_error_ = "the session ended twice in a row";
    return std::nullopt;
  }

  /// The session id commands run under (nullopt before the first call, or after it ended).
  [[nodiscard]] auto session() const noexcept -> std::optional<std::uint64_t> { return session_; }

  /// One status request to server `index`; nullopt when it does not answer in time.
  auto status(std::size_t index) -> std::optional<std::string> {
    disconnect();
    target_ = index;
    const std::uint64_t rid = ++request_id_;
    auto r = exchange(encode_request(request_kind::status, client_id_, rid, {}), rid,
                      std::chrono::steady_clock::now() + attempt_timeout_);
    disconnect();
    if (r && r->status == reply_status::ok) return std::move(r->payload);
    return std::nullopt;
  }

  /// Asks server `index` for its status once it has chosen `slot` (the server answers after at
  /// most 5 s either way), retrying while the server is unreachable (restarting) until
  /// `deadline`; nullopt when it never answered.
  auto wait_chosen(std::size_t index, std::uint64_t slot, std::chrono::steady_clock::time_point deadline)
      -> std::optional<std::string> {
    std::string arg;
    put_u64(arg, slot);
    int backoff_ms = 5;
    while (std::chrono::steady_clock::now() < deadline) {
      disconnect();
      target_ = index;
      const std::uint64_t rid = ++request_id_;
      auto r = exchange(encode_request(request_kind::wait_chosen, client_id_, rid, arg), rid, deadline,
                        std::chrono::seconds(7));
      disconnect();
      if (r && r->status == reply_status::ok) return std::move(r->payload);
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
      backoff_ms = std::min(backoff_ms * 2, 200);
    }
    return std::nullopt;
  }

  [[nodiscard]] auto servers() const -> const std::vector<address>& { return servers_; }
  /// The label given to the constructor (not the session id).
  [[nodiscard]] auto client_id() const noexcept -> std::uint64_t { return client_id_; }
  /// Why the last `call` was refused by the server; empty if it was not.
  [[nodiscard]] auto last_error() const -> const std::string& { return last_error_; }

 private:
  auto index_of(const address& a) -> std::size_t {
    for (std::size_t i = 0; i < servers_.size(); ++i) {
      if (servers_[i] == a) return i;
    }
    servers_.push_back(a);
    return servers_.size() - 1;
  }

  void disconnect() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  /// Registers a new session (a fresh nonce from the secret each time); false with
  /// `last_error_` set when it could not by the deadline.
  auto register_session(std::chrono::steady_clock::time_point deadline) -> bool {
    const std::uint64_t nonce = secret_ + 0x9E3779B97F4A7C15ULL * ++registrations_;
    std::size_t sends = 0;
    auto r = run(encode_request(request_kind::register_session, 0, nonce, {}), nonce, deadline, sends);
    if (r && r->status == reply_status::ok && r->payload.size() == 8) {
      session_ = distkit::detail::load_le<std::uint64_t>(r->payload.data());
      return true;
    }
    last_error_ = !r ? std::string("no session: the cluster did not answer the registration in time")
                     : "no session: " + (r->payload.empty() ? std::string("refused") : r->payload);
    return false;
  }

  /// Sends `req` (request id `rid`) until an answer that ends it (ok, error, no_session) or the
  /// deadline, following redirects and trying other servers; counts the sends in `sends`.
  auto run(const std::string& req, std::uint64_t rid, std::chrono::steady_clock::time_point deadline,
           std::size_t& sends) -> std::optional<reply> {
    int backoff_ms = 5;
    int redirects_in_a_row = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      ++sends;
      auto r = exchange(req, rid, deadline);
      if (r && (r->status == reply_status::ok || r->status == reply_status::error ||
                r->status == reply_status::no_session)) {
        return r;
      }
      if (r && r->status == reply_status::redirect && !r->payload.empty()) {
        try {
          auto a = parse_address(r->payload, "redirect");
          disconnect();
          target_ = index_of(a);
          if (++redirects_in_a_row < 3) continue;  // straight to the leader
        } catch (const std::invalid_argument&) {
        }
      } else {
        redirects_in_a_row = 0;
      }
      if (!r || (r->status == reply_status::redirect && r->payload.empty())) {
        disconnect();
        target_ = (target_ + 1) % servers_.size();  // this server is down or slow: try another
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
      backoff_ms = std::min(backoff_ms * 2, 100);
    }
    return std::nullopt;
  }

  auto connect_to(const address& a) -> bool {
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (::getaddrinfo(a.host.c_str(), std::to_string(a.port).c_str(), &hints, &res) != 0 || res == nullptr) {
      return false;
    }
    int fd = ::socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0);
    bool ok = fd >= 0 && ::connect(fd, res->ai_addr, res->ai_addrlen) == 0;
    ::freeaddrinfo(res);
    if (!ok) {
      if (fd >= 0) ::close(fd);
      return false;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fd_ = fd;
    return true;
  }

  // Waits until fd is readable, up to `until`.
  auto wait_readable(std::chrono::steady_clock::time_point until) -> bool {
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      int n = ::poll(&p, 1, static_cast<int>(left.count()));
      if (n > 0) return true;
      if (n < 0 && errno != EINTR) return false;
    }
  }

  auto read_exact(char* out, std::size_t n, std::chrono::steady_clock::time_point until) -> bool {
    std::size_t got = 0;
    while (got < n) {
      if (!wait_readable(until)) return false;
      auto r = ::recv(fd_, out + got, n - got, 0);
      if (r <= 0) return false;
      got += static_cast<std::size_t>(r);
    }
    return true;
  }

  auto exchange(const std::string& req, std::uint64_t rid, std::chrono::steady_clock::time_point deadline,
                std::optional<std::chrono::milliseconds> attempt = std::nullopt) -> std::optional<reply> {
    if (fd_ < 0 && !connect_to(servers_[target_])) return std::nullopt;
    if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) return std::nullopt;
    auto until = std::min(deadline, std::chrono::steady_clock::now() + attempt.value_or(attempt_timeout_));
    for (;;) {
      char len_buf[4];
      if (!read_exact(len_buf, 4, until)) return std::nullopt;
      auto len = distkit::detail::load_le<std::uint32_t>(len_buf);
      if (len < 9 || len > max_message) return std::nullopt;
      std::string body(len, '\0');
      if (!read_exact(body.data(), len, until)) return std::nullopt;
      reply r;
      r.status = static_cast<reply_status>(static_cast<std::uint8_t>(body[0]));
      r.request_id = distkit::detail::load_le<std::uint64_t>(body.data() + 1);
      if (r.request_id != rid) continue;  // a late answer to an earlier attempt
      r.payload = body.substr(9);
      return r;
    }
  }

  std::vector<address> servers_;
  std::uint64_t client_id_;
  std::chrono::milliseconds attempt_timeout_;
  std::uint64_t secret_ = 0;              ///< registration nonces derive from it
  std::uint64_t registrations_ = 0;       ///< sessions registered so far
  std::optional<std::uint64_t> session_;  ///< the live session, if any
  std::uint64_t request_id_ = 0;
  std::size_t target_ = 0;
  int fd_ = -1;
  std::string last_error_;
};

}  // namespace paxos_kv
