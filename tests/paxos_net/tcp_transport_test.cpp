// SPDX-License-Identifier: MIT
// tests/paxos_net/tcp_transport_test.cpp: the TCP transport over loopback, including hostile clients.
#include "distkit/paxos/tcp_transport.hpp"

#include "distkit/paxos/tcp_message_transport.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

using namespace std::chrono_literals;
using distkit::paxos::frame_encoder;
using distkit::paxos::frame_error_kind;
using distkit::paxos::frame_format;
using distkit::paxos::frame_key;
using distkit::paxos::overflow_policy;
using distkit::paxos::tcp_message;
using distkit::paxos::tcp_transport;
using distkit::paxos::tcp_transport_options;

constexpr std::uint64_t cluster = 0xC1;
const frame_key good_key{std::string_view("a cluster key of sufficient length")};
const frame_key bad_key{std::string_view("some other key, also long enough")};

// The former names still compile (with a deprecation warning, silenced here) and are the same types.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static_assert(std::is_same_v<distkit::paxos::tcp_transport_config, tcp_transport_options>);
static_assert(std::is_same_v<distkit::paxos::tcp_transport_counters, distkit::paxos::tcp_transport_stats>);
#pragma GCC diagnostic pop

auto bytes_of(const std::string& s) -> std::vector<std::byte> {
  auto b = std::as_bytes(std::span(s.data(), s.size()));
  return {b.begin(), b.end()};
}
auto text_of(const std::vector<std::byte>& b) -> std::string {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

auto config_for(std::uint32_t id, std::vector<std::uint32_t> peers, bool keyed) -> tcp_transport_options {
  tcp_transport_options c;
  c.node_id = id;
  c.cluster_id = cluster;
  for (auto p : peers) c.peers[p] = {"127.0.0.1", 0};  // ports filled in once known
  if (keyed) c.key = good_key;
  return c;
}

/// Receives `n` messages (bounded wait) and returns their bodies as text.
auto receive_n(tcp_transport& t, std::size_t n) -> std::vector<std::string> {
  std::vector<std::string> out;
  tcp_message m;
  while (out.size() < n && t.receive(m, 10s)) out.push_back(text_of(m.body));
  return out;
}

/// A blocking POSIX client socket with a receive timeout, for sending hand-made bytes.
class raw_client {
 public:
  explicit raw_client(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    REQUIRE(fd_ >= 0);
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  }
  raw_client(const raw_client&) = delete;
  auto operator=(const raw_client&) -> raw_client& = delete;
  ~raw_client() { ::close(fd_); }

  void send_bytes(const std::vector<std::byte>& b) {
    REQUIRE(::send(fd_, b.data(), b.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(b.size()));
  }
  void finish_sending() { ::shutdown(fd_, SHUT_WR); }
  /// True if the server closed the connection (EOF or reset) within the receive timeout; what
  /// it sent before (its challenge) is skipped.
  auto closed_by_server() -> bool {
    char buf[64];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n > 0) continue;
      return n == 0 || (n < 0 && errno == ECONNRESET);
    }
  }
  /// The challenge the server sent on this connection.
  auto challenge() -> std::vector<std::byte> {
    std::vector<std::byte> c(frame_format::challenge_size);
    std::size_t got = 0;
    while (got < c.size()) {
      ssize_t n = ::recv(fd_, c.data() + got, c.size() - got, 0);
      REQUIRE(n > 0);
      got += static_cast<std::size_t>(n);
    }
    return c;
  }

 private:
  int fd_;
};

auto frame_from(std::uint32_t from, std::uint32_t to, const std::string& body, std::optional<frame_key> key,
                std::uint64_t sequence, std::uint64_t cluster_id = cluster) -> std::vector<std::byte> {
  frame_encoder enc(cluster_id, from, std::move(key), sequence);
  std::vector<std::byte> out;
  enc.encode(to, bytes_of(body), out);
  return out;
}

/// A hello from `from` answering the challenge `c` read, then `frames` (already encoded).
auto hello_then(raw_client& c, std::uint32_t from, std::uint32_t to, std::optional<frame_key> key,
                std::uint64_t sequence, std::vector<std::byte> frames = {}) -> std::vector<std::byte> {
  frame_encoder enc(cluster, from, std::move(key), sequence);
  std::vector<std::byte> out;
  enc.encode_hello(to, c.challenge(), out);
  out.insert(out.end(), frames.begin(), frames.end());
  return out;
}

}  // namespace

TEST_CASE("tcp_transport delivers messages both ways, in order, over loopback", "[paxos_net][tcp_transport]") {
  for (bool keyed : {false, true}) {
    tcp_transport a(config_for(1, {2}, keyed));
    tcp_transport b(config_for(2, {1}, keyed));
    a.set_peer(2, {"127.0.0.1", b.local_port()});
    b.set_peer(1, {"127.0.0.1", a.local_port()});
    constexpr int n = 2000;
    for (int i = 0; i < n; ++i) {
      REQUIRE(a.send(2, bytes_of("a" + std::to_string(i))));
      REQUIRE(b.send(1, bytes_of("b" + std::to_string(i))));
    }
    auto at_b = receive_n(b, n);
    auto at_a = receive_n(a, n);
    REQUIRE(at_b.size() == n);
    REQUIRE(at_a.size() == n);
    for (int i = 0; i < n; ++i) {
      CHECK(at_b[i] == "a" + std::to_string(i));
      CHECK(at_a[i] == "b" + std::to_string(i));
    }
    CHECK(b.frame_stats().accepted() == n + 1);  // and the hello that opened the connection
    CHECK(b.frame_stats().refused_total() == 0);
    CHECK(a.counters().dropped_oldest == 0);
  }
}

TEST_CASE("tcp_transport keeps serving after garbage, truncated, oversized and forged frames",
          "[paxos_net][tcp_transport]") {
  auto cb = config_for(2, {1, 3}, true);
  cb.max_body = 4096;
  tcp_transport b(std::move(cb));
  tcp_transport a(config_for(1, {2}, true));
  a.set_peer(2, {"127.0.0.1", b.local_port()});
  for (int i = 0; i < 50; ++i) REQUIRE(a.send(2, bytes_of("before " + std::to_string(i))));
  auto before = receive_n(b, 50);
  REQUIRE(before.size() == 50);

  const auto port = b.local_port();
  const auto& stats = b.frame_stats();
  {
    // Random garbage.
    {
      raw_client c(port);
      std::vector<std::byte> junk(200);
      for (std::size_t i = 0; i < junk.size(); ++i) junk[i] = std::byte(static_cast<unsigned char>(i * 37 + 11));
      c.send_bytes(junk);
      CHECK(c.closed_by_server());
    }
    CHECK(stats.refused(frame_error_kind::bad_magic) == 1);
    // An oversized length prefix in an otherwise valid header: refused before reading on.
    {
      auto f = frame_from(3, 2, "x", good_key, 1);
      distkit::detail::store_le<std::uint32_t>(f.data() + 32, 0x7FFFFFFFU);
      raw_client c(port);
      c.send_bytes(std::vector<std::byte>(f.begin(), f.begin() + frame_format::header_size));
      CHECK(c.closed_by_server());
    }
    CHECK(stats.refused(frame_error_kind::oversized) == 1);
    // A frame cut short, then the client closes.
    {
      auto f = frame_from(3, 2, "a body that will not arrive whole", good_key, 2);
      raw_client c(port);
      c.send_bytes(std::vector<std::byte>(f.begin(), f.begin() + 50));
      c.finish_sending();
      CHECK(c.closed_by_server());
    }
    // A header cut short.
    {
      auto f = frame_from(3, 2, "x", good_key, 3);
      raw_client c(port);
      c.send_bytes(std::vector<std::byte>(f.begin(), f.begin() + 17));
      c.finish_sending();
      CHECK(c.closed_by_server());
    }
    CHECK(stats.refused(frame_error_kind::truncated) == 2);
    // Signed with the wrong key; unsigned; another cluster; addressed to another node.
    for (auto f : {frame_from(3, 2, "put k=v", bad_key, 4), frame_from(3, 2, "put k=v", std::nullopt, 5),
                   frame_from(3, 2, "put k=v", good_key, 6, cluster + 1), frame_from(3, 1, "put k=v", good_key, 7),
                   frame_from(9, 2, "put k=v", good_key, 8)}) {
      raw_client c(port);
      c.send_bytes(f);
      CHECK(c.closed_by_server());
    }
    CHECK(stats.refused(frame_error_kind::bad_mac) == 1);
    CHECK(stats.refused(frame_error_kind::missing_mac) == 1);
    CHECK(stats.refused(frame_error_kind::wrong_cluster) == 1);
    CHECK(stats.refused(frame_error_kind::wrong_receiver) == 1);
    CHECK(stats.refused(frame_error_kind::unknown_sender) == 1);
    // A replayed frame is dropped, and the connection goes on.
    {
      auto f1 = frame_from(3, 2, "first", good_key, 100);
      auto f2 = frame_from(3, 2, "second", good_key, 101);
      raw_client c(port);
      c.send_bytes(hello_then(c, 3, 2, good_key, 99));
      c.send_bytes(f1);
      c.send_bytes(f1);
      c.send_bytes(f2);
      auto got = receive_n(b, 2);
      REQUIRE(got.size() == 2);
      CHECK(got[0] == "first");
      CHECK(got[1] == "second");
      CHECK(stats.refused(frame_error_kind::replayed) == 1);
    }
  }
  CHECK(b.counters().inbound_closed_bad == 9);
  CHECK(stats.accepted() == 54);  // 52 frames and two hellos

  // The real peer's connection was never disturbed: everything after the attacks arrives too.
  for (int i = 0; i < 50; ++i) REQUIRE(a.send(2, bytes_of("after " + std::to_string(i))));
  auto after = receive_n(b, 50);
  REQUIRE(after.size() == 50);
  for (int i = 0; i < 50; ++i) CHECK(after[i] == "after " + std::to_string(i));
  CHECK(a.counters().lost_on_disconnect == 0);
  CHECK(a.counters().dropped_oldest == 0);
}

TEST_CASE("tcp_transport reconnects to a restarted peer and delivers what was queued", "[paxos_net][tcp_transport]") {
  auto ca = config_for(1, {2}, true);
  ca.reconnect_min = 1ms;
  ca.reconnect_max = 20ms;
  tcp_transport a(std::move(ca));
  auto b = std::make_unique<tcp_transport>(config_for(2, {1}, true));
  const auto port = b->local_port();
  a.set_peer(2, {"127.0.0.1", port});
  REQUIRE(a.send(2, bytes_of("one")));
  REQUIRE(receive_n(*b, 1) == std::vector<std::string>{"one"});

  b.reset();  // the peer goes away; a notices the closed connection and retries with back-off
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (a.counters().disconnects == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  REQUIRE(a.counters().disconnects == 1);
  for (int i = 0; i < 20; ++i) REQUIRE(a.send(2, bytes_of("queued " + std::to_string(i))));

  auto cb = config_for(2, {1}, true);
  cb.listen.port = port;
  b = std::make_unique<tcp_transport>(std::move(cb));
  auto got = receive_n(*b, 20);
  REQUIRE(got.size() == 20);
  for (int i = 0; i < 20; ++i) CHECK(got[i] == "queued " + std::to_string(i));
  CHECK(a.counters().lost_on_disconnect == 0);
  CHECK(a.counters().connects == 2);
}

TEST_CASE("tcp_transport bounds each peer's send queue", "[paxos_net][tcp_transport]") {
  SECTION("dropping the oldest frames") {
    auto c = config_for(1, {2}, false);
    c.queue_frames = 10;
    tcp_transport a(std::move(c));  // peer 2 has no address yet: frames wait in the queue
    for (int i = 0; i < 25; ++i) REQUIRE(a.send(2, bytes_of("m" + std::to_string(i))));
    CHECK(a.queued(2) == 10);
    CHECK(a.counters().dropped_oldest == 15);
    CHECK(a.counters().refused == 0);
  }
  SECTION("refusing new frames, bounded in bytes") {
    auto c = config_for(1, {2}, true);
    c.queue_bytes = 3 * (frame_format::header_size + frame_format::mac_size + 100);
    c.overflow = overflow_policy::refuse;
    tcp_transport a(std::move(c));
    int accepted = 0;
    for (int i = 0; i < 10; ++i) accepted += a.send(2, bytes_of(std::string(100, 'v'))) ? 1 : 0;
    CHECK(accepted == 3);
    CHECK(a.queued(2) == 3);
    CHECK(a.counters().refused == 7);
  }
}

/// A header that passes every check a stranger can satisfy from public facts (magic, version,
/// cluster id, node ids) and announces a body of `length` bytes; no body follows.
auto header_announcing(std::uint32_t from, std::uint32_t to, std::uint32_t length, bool keyed)
    -> std::vector<std::byte> {
  auto f = frame_from(from, to, "", keyed ? std::optional<frame_key>(bad_key) : std::nullopt, 1);
  f.resize(frame_format::header_size);
  f[32] = std::byte(length & 0xFF);
  f[33] = std::byte((length >> 8) & 0xFF);
  f[34] = std::byte((length >> 16) & 0xFF);
  f[35] = std::byte((length >> 24) & 0xFF);
  return f;
}

TEST_CASE("tcp_transport gives strangers a small bounded share of its inbound connections",
          "[paxos_net][tcp_transport][security]") {
  SECTION("a new connection closes the oldest unverified one when all unverified slots are taken") {
    auto c = config_for(2, {1}, false);
    c.max_unverified_connections = 2;
    tcp_transport b(std::move(c));
    raw_client c1(b.local_port());
    raw_client c2(b.local_port());
    raw_client c3(b.local_port());
    CHECK(c1.closed_by_server());
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (b.counters().inbound_accepted < 3 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    CHECK(b.counters().unverified_evicted == 1);
    // c2 and c3 were kept: a frame over each is served, and each becomes a member's connection.
    c2.send_bytes(hello_then(c2, 1, 2, std::nullopt, 2, frame_from(1, 2, "two", std::nullopt, 3)));
    REQUIRE(receive_n(b, 1).size() == 1);
    c3.send_bytes(hello_then(c3, 1, 2, std::nullopt, 4, frame_from(1, 2, "three", std::nullopt, 5)));
    REQUIRE(receive_n(b, 1).size() == 1);
    CHECK(b.counters().inbound_verified == 2);
    CHECK(b.counters().inbound_replaced == 1);  // one sender, one connection: c3 replaced c2
    CHECK(c2.closed_by_server());
  }
  SECTION("an unverified connection may not announce more than unverified_max_body") {
    for (bool keyed : {false, true}) {
      auto c = config_for(2, {1}, keyed);
      c.unverified_max_body = 64;
      tcp_transport b(std::move(c));
      raw_client stranger(b.local_port());
      stranger.send_bytes(header_announcing(1, 2, 1U << 20, keyed));  // 1 MiB, within max_body
      CHECK(stranger.closed_by_server());
      CHECK(b.frame_stats().refused(frame_error_kind::oversized) == 1);
      // A member's connection, once its first frame was verified, may send up to max_body.
      raw_client member(b.local_port());
      const auto key = keyed ? std::optional<frame_key>(good_key) : std::nullopt;
      member.send_bytes(hello_then(member, 1, 2, key, 10, frame_from(1, 2, std::string(100'000, 'm'), key, 11)));
      auto got = receive_n(b, 1);
      REQUIRE(got.size() == 1);
      CHECK(got[0].size() == 100'000);  // the hello itself is never delivered
    }
  }
  SECTION("an unverified connection that shows no authentic frame in time is closed") {
    auto c = config_for(2, {1}, true);
    c.unverified_timeout = 50ms;
    tcp_transport b(std::move(c));
    raw_client idle(b.local_port());
    CHECK(idle.closed_by_server());
    CHECK(b.counters().unverified_timed_out == 1);
  }
  SECTION("a replayed connection does not verify: its hello answers another challenge") {
    auto c = config_for(2, {1}, true);
    tcp_transport b(std::move(c));
    raw_client member(b.local_port());
    const auto recorded = hello_then(member, 1, 2, good_key, 5, frame_from(1, 2, "recorded", good_key, 6));
    member.send_bytes(recorded);
    REQUIRE(receive_n(b, 1).size() == 1);
    raw_client replayer(b.local_port());
    replayer.send_bytes(recorded);
    CHECK(replayer.closed_by_server());
    CHECK(b.frame_stats().refused(frame_error_kind::bad_hello) == 1);
    CHECK(b.counters().inbound_verified == 1);
    CHECK(b.counters().inbound_replaced == 0);  // the member's connection stays
    // A first frame that is not a hello, however authentic, does not verify either.
    raw_client skipper(b.local_port());
    skipper.send_bytes(frame_from(1, 2, "no hello", good_key, 7));
    CHECK(skipper.closed_by_server());
    CHECK(b.frame_stats().refused(frame_error_kind::bad_hello) == 2);
  }
}

TEST_CASE(
    "tcp_transport: a recorded connection replayed to the receiver's next process is refused, and a sender "
    "whose clock stepped back is not locked out",
    "[paxos_net][tcp_transport][security]") {
  // A stranger records what member 1 sends to "node 2" (the stranger plays node 2 and sends it
  // a challenge, as a receiver would).
  asio::io_context io;
  asio::ip::tcp::acceptor recorder(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  auto ca = config_for(1, {2}, true);
  ca.peers[2] = {"127.0.0.1", recorder.local_endpoint().port()};
  std::vector<std::byte> recorded;
  {
    tcp_transport a(std::move(ca));
    REQUIRE(a.send(2, bytes_of("put balance=100")));
    asio::ip::tcp::socket s(io);
    recorder.accept(s);
    std::array<std::byte, frame_format::challenge_size> challenge{};
    challenge.fill(std::byte{0x5A});
    asio::write(s, asio::buffer(challenge));
    const std::size_t hello = frame_format::header_size + frame_format::challenge_size + frame_format::mac_size;
    recorded.resize(hello + frame_format::header_size + 15 + frame_format::mac_size);
    asio::read(s, asio::buffer(recorded));
  }
  // The real node 2 (a new process, with an empty replay window) is sent the recording.
  tcp_transport b(config_for(2, {1}, true));
  {
    raw_client replay(b.local_port());
    replay.send_bytes(recorded);
    CHECK(replay.closed_by_server());
  }
  tcp_message m;
  CHECK_FALSE(b.try_receive(m));
  CHECK(b.frame_stats().refused(frame_error_kind::bad_hello) == 1);
  CHECK(b.counters().frames_received == 0);

  // Member 1 sends from a high sequence; restarted with its clock stepped back it sends from a
  // low one, on a new connection: accepted, not refused as a replay.
  for (std::uint64_t first : {std::uint64_t{1} << 40, std::uint64_t{1000}}) {
    auto c = config_for(1, {2}, true);
    c.first_sequence = first;
    tcp_transport a(std::move(c));
    a.set_peer(2, {"127.0.0.1", b.local_port()});
    REQUIRE(a.send(2, bytes_of("from " + std::to_string(first))));
    auto got = receive_n(b, 1);
    REQUIRE(got.size() == 1);
    CHECK(got[0] == "from " + std::to_string(first));
  }
  CHECK(b.frame_stats().refused(frame_error_kind::replayed) == 0);
}

TEST_CASE("tcp_transport: strangers holding every unverified slot do not keep a member out",
          "[paxos_net][tcp_transport][security]") {
  auto cb = config_for(2, {1}, true);
  cb.max_unverified_connections = 8;
  tcp_transport b(std::move(cb));
  // 64 strangers connect and hold their connections (the first 56 are closed in turn as newer
  // ones arrive), half of them with a header that announces a 16 MiB body.
  std::vector<std::unique_ptr<raw_client>> strangers;
  for (int i = 0; i < 64; ++i) {
    strangers.push_back(std::make_unique<raw_client>(b.local_port()));
    if (i % 2 == 0) strangers.back()->send_bytes(header_announcing(1, 2, 16U << 20, true));
  }
  tcp_transport a(config_for(1, {2}, true));
  for (int i = 0; i < 10; ++i) REQUIRE(a.send(2, bytes_of("member " + std::to_string(i))));
  a.set_peer(2, {"127.0.0.1", b.local_port()});
  auto got = receive_n(b, 10);
  REQUIRE(got.size() == 10);
  for (int i = 0; i < 10; ++i) CHECK(got[i] == "member " + std::to_string(i));
  CHECK(b.counters().inbound_verified == 1);
  CHECK(b.frame_stats().refused(frame_error_kind::oversized) > 0);
}

TEST_CASE("tcp_transport configuration errors name the parameter", "[paxos_net][tcp_transport]") {
  auto self_peer = config_for(1, {1, 2}, false);
  REQUIRE_THROWS_WITH(tcp_transport(self_peer), Catch::Matchers::Contains("peers"));
  auto no_queue = config_for(1, {2}, false);
  no_queue.queue_frames = 0;
  REQUIRE_THROWS_AS(tcp_transport(no_queue), std::invalid_argument);
  REQUIRE_THROWS_WITH(tcp_transport(no_queue), Catch::Matchers::Contains("queue_frames"));
  auto backoff = config_for(1, {2}, false);
  backoff.reconnect_max = 1ms;
  backoff.reconnect_min = 5ms;
  REQUIRE_THROWS_WITH(tcp_transport(backoff), Catch::Matchers::Contains("reconnect_min"));
  auto unverified = config_for(1, {2}, false);
  unverified.unverified_max_body = unverified.max_body + 1;
  REQUIRE_THROWS_WITH(tcp_transport(unverified), Catch::Matchers::Contains("unverified_max_body"));
  auto no_strangers = config_for(1, {2}, false);
  no_strangers.max_unverified_connections = 0;
  REQUIRE_THROWS_WITH(tcp_transport(no_strangers), Catch::Matchers::Contains("max_unverified_connections"));
  tcp_transport a(config_for(1, {2}, false));
  REQUIRE_THROWS_WITH(a.send(7, bytes_of("x")), Catch::Matchers::Contains("to"));
  REQUIRE_THROWS_WITH(a.set_peer(7, {"127.0.0.1", 1}), Catch::Matchers::Contains("peer id"));
}

TEST_CASE("tcp_message_transport carries Paxos messages and drops misattributed ones", "[paxos_net][tcp_transport]") {
  tcp_transport a(config_for(1, {2}, true));
  tcp_transport b(config_for(2, {1}, true));
  a.set_peer(2, {"127.0.0.1", b.local_port()});
  distkit::paxos::tcp_message_transport at_a(a);
  distkit::paxos::tcp_message_transport at_b(b);

  distkit::paxos::accept_msg accept;
  accept.from = 1;
  accept.to = 2;
  accept.bal = {7, 1};
  accept.slot = 42;
  accept.value = {distkit::paxos::command{9, 1, "put x=1"}};
  accept.commit_index = 41;
  at_a.send(accept);
  // A message whose inner sender is not the authenticated frame sender is refused.
  distkit::paxos::heartbeat_msg forged;
  forged.from = 3;
  forged.to = 2;
  a.send(2, [&] {
    auto s = distkit::paxos::encode(forged);
    auto b2 = std::as_bytes(std::span(s.data(), s.size()));
    return std::vector<std::byte>(b2.begin(), b2.end());
  }());
  // Bytes that are not a message at all, inside a valid frame.
  REQUIRE(a.send(2, bytes_of("not a paxos message")));
  at_a.send(distkit::paxos::heartbeat_msg{1, 2, {7, 1}, 41});

  std::vector<distkit::paxos::message> got;
  tcp_message m;
  for (int i = 0; i < 4 && b.receive(m, 10s); ++i) {
    if (auto msg = at_b.decode(m)) got.push_back(std::move(*msg));
  }
  REQUIRE(got.size() == 2);
  CHECK(std::get<distkit::paxos::accept_msg>(got[0]) == accept);
  CHECK(std::holds_alternative<distkit::paxos::heartbeat_msg>(got[1]));
  CHECK(at_b.malformed() == 2);
}

TEST_CASE("tcp_transport rotates its cluster keys while messages flow, refusing none", "[paxos_net][tcp_transport]") {
  using distkit::paxos::frame_keyring;
  const frame_key next_key{std::string_view("the next cluster key, long enough")};
  auto keyed = [&](std::uint32_t id, std::vector<std::uint32_t> peers) {
    auto c = config_for(id, std::move(peers), false);
    c.keyring = frame_keyring{good_key};
    return c;
  };
  tcp_transport a(keyed(1, {2}));
  tcp_transport b(keyed(2, {1}));
  a.set_peer(2, {"127.0.0.1", b.local_port()});
  b.set_peer(1, {"127.0.0.1", a.local_port()});
  int sent = 0;
  auto burst = [&](int n) {
    for (int i = 0; i < n; ++i, ++sent) {
      REQUIRE(a.send(2, bytes_of("m" + std::to_string(sent))));
    }
  };
  auto expect = [&](int upto) {
    auto got = receive_n(b, static_cast<std::size_t>(upto));
    REQUIRE(got.size() == static_cast<std::size_t>(upto));
  };
  burst(500);
  expect(500);
  // Step 1: both accept the next key (id 1). Step 2: both sign with it. Step 3: the old one
  // goes. Messages flow between the steps; none is refused.
  frame_keyring both{good_key};
  both.add(1, next_key);
  b.rekey(both);
  a.rekey(both);
  burst(500);
  expect(500);
  both.sign_with(1);
  a.rekey(both);
  b.rekey(both);
  burst(500);
  expect(500);
  frame_keyring only_next;
  only_next.add(1, next_key);
  b.rekey(only_next);
  a.rekey(only_next);
  burst(500);
  expect(500);
  CHECK(b.frame_stats().refused_total() == 0);
  CHECK(b.frame_stats().accepted() >= 2000);
  CHECK_THROWS_WITH(a.rekey(frame_keyring{}), Catch::Contains("keyring"));
  tcp_transport plain(config_for(3, {}, false));
  CHECK_THROWS_WITH(plain.rekey(only_next), Catch::Contains("keyring"));
}
