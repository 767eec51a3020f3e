// SPDX-License-Identifier: MIT
// benchmarks/paxos_tcp_bench.cpp: the Paxos TCP transport's message rate over loopback, one
// sender to one receiver, with unauthenticated frames, HMAC-SHA256 frames, mutual TLS 1.3 with
// HMAC frames inside, and mutual TLS alone (certificates made when the benchmark starts).
// Each iteration sends a burst of 1,000 messages and waits until the receiver took them all.
// Built without DISTKIT_BENCH_TLS (against a transport that has no TLS), it runs the first two.
#include "distkit/paxos/tcp_transport.hpp"

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#ifdef DISTKIT_BENCH_TLS
#include "support/tls_certs.hpp"
#endif

namespace {

namespace px = distkit::paxos;
using namespace std::chrono_literals;

enum class link_kind { plain, hmac, tls_hmac, tls_only };

#ifdef DISTKIT_BENCH_TLS
struct certificates {
  distkit_test::test_pki pki;
  distkit_test::test_ca ca = pki.make_ca("bench");
  distkit_test::test_node_cert n1 = pki.issue(ca, "node-1", "n1");
  distkit_test::test_node_cert n2 = pki.issue(ca, "node-2", "n2");
};
auto certs() -> certificates& {
  static certificates c;
  return c;
}
auto tls_of(const distkit_test::test_node_cert& c) -> px::tcp_tls_options {
  px::tcp_tls_options t;
  t.cert_chain_file = c.cert_file;
  t.private_key_file = c.key_file;
  t.ca_file = c.ca_file;
  return t;
}
#endif

auto options(std::uint32_t id, std::uint32_t peer, link_kind kind) -> px::tcp_transport_options {
  px::tcp_transport_options o;
  o.node_id = id;
  o.cluster_id = 9;
  o.peers[peer] = {"127.0.0.1", 0};
  if (kind != link_kind::plain && kind != link_kind::tls_only) {
    o.key = px::frame_key(std::string_view("a benchmark cluster key, long enough"));
  }
#ifdef DISTKIT_BENCH_TLS
  if (kind == link_kind::tls_hmac || kind == link_kind::tls_only) {
    o.tls = tls_of(id == 1 ? certs().n1 : certs().n2);
  }
#endif
  return o;
}

void bm_transport(benchmark::State& state, link_kind kind) {
  const auto body_size = static_cast<std::size_t>(state.range(0));
  constexpr int burst = 1000;
  px::tcp_transport b(options(2, 1, kind));
  auto ao = options(1, 2, kind);
  ao.peers[2].port = b.local_port();
  px::tcp_transport a(std::move(ao));
  const std::vector<std::byte> body(body_size, std::byte{0x42});
  px::tcp_message m;
  // Connect (and handshake) before measuring.
  if (!a.send(2, body) || !b.receive(m, 10s)) {
    state.SkipWithError("no connection");
    return;
  }
  std::int64_t messages = 0;
  for (auto _ : state) {
    for (int i = 0; i < burst; ++i) a.send(2, body);
    for (int i = 0; i < burst; ++i) {
      if (!b.receive(m, 10s)) {
        state.SkipWithError("a message did not arrive");
        return;
      }
    }
    messages += burst;
  }
  state.SetItemsProcessed(messages);
  state.SetBytesProcessed(messages * static_cast<std::int64_t>(body_size));
}

}  // namespace

BENCHMARK_CAPTURE(bm_transport, plain, link_kind::plain)->Arg(256)->Arg(4096)->UseRealTime();
BENCHMARK_CAPTURE(bm_transport, hmac, link_kind::hmac)->Arg(256)->Arg(4096)->UseRealTime();
#ifdef DISTKIT_BENCH_TLS
BENCHMARK_CAPTURE(bm_transport, tls_hmac, link_kind::tls_hmac)->Arg(256)->Arg(4096)->UseRealTime();
BENCHMARK_CAPTURE(bm_transport, tls_only, link_kind::tls_only)->Arg(256)->Arg(4096)->UseRealTime();
#endif

BENCHMARK_MAIN();
