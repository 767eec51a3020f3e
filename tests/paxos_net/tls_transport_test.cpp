// SPDX-License-Identifier: MIT
// tests/paxos_net/tls_transport_test.cpp: the TCP transport with mutual TLS 1.3 over loopback,
// against strangers with the wrong certificate, none, an expired one, or none of TLS at all.
//
// Compiled twice: normally, and with the test-only mutations DISTKIT_TLS_MUTATION_NO_PEER_VERIFY
// (peer certificates not verified) and DISTKIT_TLS_MUTATION_NO_IDENTITY_CHECK (the hello's sender
// not checked against the certificate), where only the mutation case is built: it shows that
// the strangers the refusal tests use get through without those checks.
#include "distkit/paxos/tcp_transport.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/tls_certs.hpp"

namespace {

using namespace std::chrono_literals;
using distkit::paxos::frame_format;
using distkit::paxos::frame_key;
using distkit::paxos::tcp_message;
using distkit::paxos::tcp_tls_options;
using distkit::paxos::tcp_transport;
using distkit::paxos::tcp_transport_options;
using distkit_test::test_node_cert;
using distkit_test::test_pki;

constexpr std::uint64_t cluster = 0xC2;
const frame_key good_key{std::string_view("a cluster key of sufficient length")};

auto bytes_of(const std::string& s) -> std::vector<std::byte> {
  auto b = std::as_bytes(std::span(s.data(), s.size()));
  return {b.begin(), b.end()};
}
auto text_of(const std::vector<std::byte>& b) -> std::string {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

auto tls_of(const test_node_cert& c, std::string ca_file = {}) -> tcp_tls_options {
  tcp_tls_options t;
  t.cert_chain_file = c.cert_file;
  t.private_key_file = c.key_file;
  t.ca_file = ca_file.empty() ? c.ca_file : std::move(ca_file);
  return t;
}

auto config_for(std::uint32_t id, std::vector<std::uint32_t> peers, std::optional<tcp_tls_options> tls,
                bool keyed = true) -> tcp_transport_options {
  tcp_transport_options c;
  c.node_id = id;
  c.cluster_id = cluster;
  for (auto p : peers) c.peers[p] = {"127.0.0.1", 0};
  if (keyed) c.key = good_key;
  c.tls = std::move(tls);
  return c;
}

auto receive_n(tcp_transport& t, std::size_t n) -> std::vector<std::string> {
  std::vector<std::string> out;
  tcp_message m;
  while (out.size() < n && t.receive(m, 10s)) out.push_back(text_of(m.body));
  return out;
}

/// Waits (at most 10 s) until `done` holds; returns whether it did.
[[maybe_unused]] auto eventually(const std::function<bool()>& done) -> bool {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

/// A TLS client with or without a certificate: does the server let it read its challenge?
/// Every operation is bounded by `io.run_for`.
[[maybe_unused]] auto tls_probe_gets_challenge(std::uint16_t port, const std::string& ca_file,
                                               const test_node_cert* cert) -> bool {
  asio::io_context io;
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_3_VERSION);
  ctx.load_verify_file(ca_file);
  ctx.set_verify_mode(asio::ssl::verify_peer);
  if (cert != nullptr) {
    ctx.use_certificate_chain_file(cert->cert_file);
    ctx.use_private_key_file(cert->key_file, asio::ssl::context::pem);
  }
  asio::ip::tcp::socket socket(io);
  asio::ssl::stream<asio::ip::tcp::socket&> stream(socket, ctx);
  std::vector<std::byte> challenge(frame_format::challenge_size);
  bool got = false;
  socket.async_connect({asio::ip::make_address("127.0.0.1"), port}, [&](const asio::error_code& ec) {
    if (ec) return;
    stream.async_handshake(asio::ssl::stream_base::client, [&](const asio::error_code& hec) {
      if (hec) return;
      asio::async_read(stream, asio::buffer(challenge), [&](const asio::error_code& rec, std::size_t) { got = !rec; });
    });
  });
  io.run_for(10s);
  return got;
}

/// A plain TCP connection that writes `bytes` and then holds the connection open.
class raw_holder {
 public:
  raw_holder(std::uint16_t port, const std::vector<unsigned char>& bytes) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    if (!bytes.empty()) REQUIRE(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) > 0);
  }
  raw_holder(const raw_holder&) = delete;
  auto operator=(const raw_holder&) -> raw_holder& = delete;
  ~raw_holder() { ::close(fd_); }

 private:
  int fd_;
};

/// Sends `n` numbered messages from a to its peer 2 and checks that b receives them in order.
[[maybe_unused]] void exchange(tcp_transport& a, tcp_transport& b, int n, int& next) {
  for (int i = 0; i < n; ++i) REQUIRE(a.send(2, bytes_of("m" + std::to_string(next + i))));
  auto got = receive_n(b, static_cast<std::size_t>(n));
  REQUIRE(got.size() == static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) CHECK(got[static_cast<std::size_t>(i)] == "m" + std::to_string(next + i));
  next += n;
}

}  // namespace

#if defined(DISTKIT_TLS_MUTATION_NO_PEER_VERIFY) || defined(DISTKIT_TLS_MUTATION_NO_IDENTITY_CHECK)

TEST_CASE("tcp_transport mutations: without verification or the identity check, the refusal tests' strangers get in",
          "[paxos_tls][mutation]") {
  test_pki pki;
  auto ca = pki.make_ca("cluster");
  auto other_ca = pki.make_ca("other");
  auto c2 = pki.issue(ca, "node-2", "n2");
  tcp_transport b(config_for(2, {1}, tls_of(c2)));
  // Needs DISTKIT_TLS_MUTATION_NO_PEER_VERIFY: a certificate from another CA.
  auto stranger = pki.issue(other_ca, "node-1", "stranger");
  {
    tcp_transport a(config_for(1, {2}, tls_of(stranger, pki.bundle("both.pem", {&ca, &other_ca}))));
    a.set_peer(2, {"127.0.0.1", b.local_port()});
    REQUIRE(a.send(2, bytes_of("from another CA")));
    CHECK(receive_n(b, 1) == std::vector<std::string>{"from another CA"});
  }
  // Needs DISTKIT_TLS_MUTATION_NO_IDENTITY_CHECK: node 3's certificate from the cluster's CA
  // (verified or not, it does not name node 1).
  auto impostor = pki.issue(ca, "node-3", "n3");
  {
    tcp_transport a(config_for(1, {2}, tls_of(impostor)));
    a.set_peer(2, {"127.0.0.1", b.local_port()});
    REQUIRE(a.send(2, bytes_of("with node 3's certificate")));
    CHECK(receive_n(b, 1) == std::vector<std::string>{"with node 3's certificate"});
  }
}

#else

TEST_CASE("tcp_transport with mutual TLS delivers messages both ways between members of one CA",
          "[paxos_tls][tcp_transport][security]") {
  test_pki pki;
  auto ca = pki.make_ca("cluster");
  auto c1 = pki.issue(ca, "node-1", "n1");
  auto c2 = pki.issue(ca, "node-2", "n2");
  for (bool keyed : {true, false}) {
    tcp_transport a(config_for(1, {2}, tls_of(c1), keyed));
    tcp_transport b(config_for(2, {1}, tls_of(c2), keyed));
    a.set_peer(2, {"127.0.0.1", b.local_port()});
    b.set_peer(1, {"127.0.0.1", a.local_port()});
    constexpr int n = 1000;
    for (int i = 0; i < n; ++i) {
      REQUIRE(a.send(2, bytes_of("a" + std::to_string(i))));
      REQUIRE(b.send(1, bytes_of("b" + std::to_string(i))));
    }
    auto at_b = receive_n(b, n);
    auto at_a = receive_n(a, n);
    REQUIRE(at_b.size() == n);
    REQUIRE(at_a.size() == n);
    for (int i = 0; i < n; ++i) {
      CHECK(at_b[static_cast<std::size_t>(i)] == "a" + std::to_string(i));
      CHECK(at_a[static_cast<std::size_t>(i)] == "b" + std::to_string(i));
    }
    CHECK(b.counters().inbound_verified == 1);
    CHECK(b.counters().tls_handshake_failed == 0);
    CHECK(b.counters().tls_identity_refused == 0);
    CHECK(a.counters().tls_outbound_failed == 0);
    CHECK(b.frame_stats().refused_total() == 0);
  }
}

TEST_CASE("tcp_transport with mutual TLS refuses a peer without a valid certificate for its node id",
          "[paxos_tls][tcp_transport][security]") {
  test_pki pki;
  auto ca = pki.make_ca("cluster");
  auto other_ca = pki.make_ca("other");
  auto c2 = pki.issue(ca, "node-2", "n2");
  auto b_options = config_for(2, {1}, tls_of(c2));
  b_options.unverified_timeout = 300ms;
  tcp_transport b(std::move(b_options));
  const auto port = b.local_port();
  tcp_message m;

  // A node 1 that sends with the given TLS settings (or none): nothing it sends is delivered.
  auto stranger_sends = [&](std::optional<tcp_tls_options> tls) {
    auto a = std::make_unique<tcp_transport>(config_for(1, {2}, std::move(tls)));
    a->set_peer(2, {"127.0.0.1", port});
    for (int i = 0; i < 10; ++i) REQUIRE(a->send(2, bytes_of("forged " + std::to_string(i))));
    return a;
  };

  SECTION("a certificate from another CA (the stranger trusts the cluster's CA)") {
    auto bundle = pki.bundle("both.pem", {&ca, &other_ca});
    auto stranger = pki.issue(other_ca, "node-1", "stranger");
    auto a = stranger_sends(tls_of(stranger, bundle));
    CHECK(eventually([&] { return b.counters().tls_handshake_failed >= 1; }));
  }
  SECTION("a certificate from the CA for another node id") {
    auto impostor = pki.issue(ca, "node-3", "n3");  // a real member's certificate, node 3's
    {
      tcp_transport a(config_for(1, {2}, tls_of(impostor)));
      a.set_peer(2, {"127.0.0.1", port});
      REQUIRE(a.send(2, bytes_of("from node 1 with node 3's certificate")));
      CHECK(eventually([&] { return b.counters().tls_identity_refused >= 1; }));
    }
    // The other way round: a member dialling "node 2" refuses a listener whose certificate
    // names another node.
    auto wrong_listener = config_for(2, {1}, tls_of(impostor));
    tcp_transport fake(std::move(wrong_listener));
    auto c1 = pki.issue(ca, "node-1", "n1");
    tcp_transport a(config_for(1, {2}, tls_of(c1)));
    a.set_peer(2, {"127.0.0.1", fake.local_port()});
    REQUIRE(a.send(2, bytes_of("to the wrong listener")));
    CHECK(eventually([&] { return a.counters().tls_outbound_failed >= 1; }));
    CHECK_FALSE(fake.try_receive(m));
  }
  SECTION("an expired certificate from the CA") {
    auto expired = pki.issue(ca, "node-1", "expired", {-7 * 86400, -86400});
    auto a = stranger_sends(tls_of(expired));
    CHECK(eventually([&] { return b.counters().tls_handshake_failed >= 1; }));
  }
  SECTION("no certificate") {
    CHECK_FALSE(tls_probe_gets_challenge(port, ca.cert_file, nullptr));
    CHECK(eventually([&] { return b.counters().tls_handshake_failed >= 1; }));
    // The same probe with a member's certificate does get the challenge.
    auto c1 = pki.issue(ca, "node-1", "n1");
    CHECK(tls_probe_gets_challenge(port, ca.cert_file, &c1));
  }
  SECTION("plain TCP, from a transport without TLS") {
    auto a = stranger_sends(std::nullopt);
    CHECK(eventually([&] { return b.counters().unverified_timed_out >= 1; }));
  }
  CHECK_FALSE(b.try_receive(m));
  CHECK(b.counters().frames_received == 0);
  CHECK(b.counters().inbound_verified == 0);
}

TEST_CASE("tcp_transport with mutual TLS: strangers holding unfinished TLS handshakes do not keep a member out",
          "[paxos_tls][tcp_transport][security]") {
  test_pki pki;
  auto ca = pki.make_ca("cluster");
  auto c1 = pki.issue(ca, "node-1", "n1");
  auto c2 = pki.issue(ca, "node-2", "n2");
  auto b_options = config_for(2, {1}, tls_of(c2));
  b_options.max_unverified_connections = 4;
  tcp_transport b(std::move(b_options));
  // 64 strangers open a connection each and start a TLS record (a handshake record header
  // announcing 512 bytes) that never arrives; half send nothing at all.
  std::vector<std::unique_ptr<raw_holder> > strangers;
  const std::vector<unsigned char> record_start{0x16, 0x03, 0x01, 0x02, 0x00};
  for (int i = 0; i < 64; ++i) {
    strangers.push_back(
        std::make_unique<raw_holder>(b.local_port(), i % 2 == 0 ? record_start : std::vector<unsigned char>{}));
  }
  CHECK(eventually([&] { return b.counters().inbound_accepted >= 64; }));
  tcp_transport a(config_for(1, {2}, tls_of(c1)));
  a.set_peer(2, {"127.0.0.1", b.local_port()});
  int next = 0;
  exchange(a, b, 10, next);
  CHECK(b.counters().inbound_verified == 1);
  CHECK(b.counters().unverified_evicted >= 60);
}

TEST_CASE("tcp_transport reload_tls swaps certificates and the CA while messages flow",
          "[paxos_tls][tcp_transport][security]") {
  test_pki pki;
  auto old_ca = pki.make_ca("old");
  auto new_ca = pki.make_ca("new");
  auto both = pki.bundle("both.pem", {&old_ca, &new_ca});
  auto old1 = pki.issue(old_ca, "node-1", "old1");
  auto old2 = pki.issue(old_ca, "node-2", "old2");
  auto new1 = pki.issue(new_ca, "node-1", "new1");
  auto new2 = pki.issue(new_ca, "node-2", "new2");

  tcp_transport a(config_for(1, {2}, tls_of(old1)));
  tcp_transport b(config_for(2, {1}, tls_of(old2)));
  a.set_peer(2, {"127.0.0.1", b.local_port()});
  int next = 0;
  exchange(a, b, 200, next);

  // Each step is done on every node, then a new connection is opened (set_peer reconnects)
  // while messages flow: 1) trust both CAs, 2) present the new certificates, 3) trust only the
  // new CA.
  const std::vector<std::pair<tcp_tls_options, tcp_tls_options> > steps{
      {tls_of(old1, both), tls_of(old2, both)},
      {tls_of(new1, both), tls_of(new2, both)},
      {tls_of(new1), tls_of(new2)},
  };
  std::uint64_t connects = a.counters().connects;
  for (const auto& [for_a, for_b] : steps) {
    REQUIRE(b.reload_tls(for_b));
    REQUIRE(a.reload_tls(for_a));
    exchange(a, b, 100, next);  // the open connection continues on its context
    a.set_peer(2, {"127.0.0.1", b.local_port()});
    exchange(a, b, 100, next);  // a new connection, on the new contexts
    CHECK(a.counters().connects > connects);
    connects = a.counters().connects;
  }
  CHECK(b.counters().tls_handshake_failed == 0);
  CHECK(a.counters().tls_outbound_failed == 0);
  CHECK(b.frame_stats().refused_total() == 0);
  CHECK(b.counters().tls_reloads == 3);

  // A file that does not load keeps the context in use, and is counted.
  auto broken = tls_of(new2);
  broken.ca_file = (pki.dir() / "missing.pem").string();
  auto result = b.reload_tls(broken);
  CHECK_FALSE(result);
  CHECK_THAT(result.error, Catch::Contains("tls.ca_file"));
  CHECK(b.counters().tls_reload_failures == 1);
  a.set_peer(2, {"127.0.0.1", b.local_port()});
  exchange(a, b, 50, next);

  // A certificate of the removed CA is refused now.
  CHECK_FALSE(tls_probe_gets_challenge(b.local_port(), both, &old1));
  CHECK(eventually([&] { return b.counters().tls_handshake_failed >= 1; }));
  // And reload_tls() re-reads the files in use.
  CHECK(b.reload_tls());
  CHECK(b.counters().tls_reloads == 4);
}

TEST_CASE("tcp_transport TLS configuration errors name the parameter or the file", "[paxos_tls][tcp_transport]") {
  test_pki pki;
  auto ca = pki.make_ca("cluster");
  auto c1 = pki.issue(ca, "node-1", "n1");
  auto no_cert = tls_of(c1);
  no_cert.cert_chain_file.clear();
  REQUIRE_THROWS_WITH(tcp_transport(config_for(1, {2}, no_cert)), Catch::Contains("tls.cert_chain_file"));
  auto no_ca = tls_of(c1);
  no_ca.ca_file.clear();
  REQUIRE_THROWS_WITH(tcp_transport(config_for(1, {2}, no_ca)), Catch::Contains("tls.ca_file"));
  auto missing_key = tls_of(c1);
  missing_key.private_key_file = (pki.dir() / "missing.key").string();
  REQUIRE_THROWS_AS(tcp_transport(config_for(1, {2}, missing_key)), distkit::paxos::tls_config_error);
  REQUIRE_THROWS_WITH(tcp_transport(config_for(1, {2}, missing_key)), Catch::Contains("tls.private_key_file"));
  auto other = pki.issue(ca, "node-9", "n9");
  auto mismatched = tls_of(c1);
  mismatched.private_key_file = other.key_file;
  REQUIRE_THROWS_WITH(tcp_transport(config_for(1, {2}, mismatched)), Catch::Contains("tls.private_key_file"));
  tcp_transport plain(config_for(1, {2}, std::nullopt));
  REQUIRE_THROWS_WITH(plain.reload_tls(tls_of(c1)), Catch::Contains("tls"));
}

#endif
