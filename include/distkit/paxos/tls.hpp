// SPDX-License-Identifier: MIT
// distkit/paxos/tls.hpp: mutual TLS 1.3 settings for the Paxos peer port (Asio ssl over OpenSSL 3).
//
// Link `distkit::tcp` (standalone Asio and OpenSSL's libssl and libcrypto).
//
// Each node holds a certificate chain and key signed by the cluster's CA, and trusts only that
// CA. Both ends of every peer connection present and verify a certificate (TLS 1.3 only, no
// session resumption, so every connection is verified against the CA in use when it opens).
// With `bind_node_id`, a node's certificate names its node id as `<identity_prefix><id>` (a DNS
// subject alternative name, or the common name when the certificate has no DNS names): the
// connecting side checks it against the peer it dials, the accepting side against the sender id
// of the hello that opens the connection.
#pragma once

#ifndef ASIO_STANDALONE
#define ASIO_STANDALONE
#endif
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <asio.hpp>
#include <asio/ssl.hpp>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "distkit/detail/error.hpp"

namespace distkit::inline v0::paxos {

/// @brief Mutual TLS 1.3 on the peer port: where the node's certificate, key and CA bundle are.
///
/// All three files are PEM. They are read when the transport starts and again by
/// `tcp_transport::reload_tls`.
///
/// @code
/// #include <distkit/paxos/tcp_transport.hpp>
/// #include <cstdio>
/// distkit::paxos::tcp_transport_options cfg;
/// cfg.node_id = 1;
/// cfg.peers = {{2, {"127.0.0.1", 7002}}, {3, {"127.0.0.1", 7003}}};
/// cfg.tls = distkit::paxos::tcp_tls_options{
///     .cert_chain_file = "node-1.pem", .private_key_file = "node-1.key", .ca_file = "cluster-ca.pem"};
/// distkit::paxos::tcp_transport net(std::move(cfg));  // tls_config_error if a file does not load
/// // Once the files were replaced: new connections use them, a file that does not load keeps
/// // the ones in use.
/// if (auto r = net.reload_tls(); !r) std::fprintf(stderr, "TLS reload: %s\n", r.error.c_str());
/// @endcode
struct tcp_tls_options {
  /// The node's certificate, then any intermediate certificates up to (not including) the CA.
  std::string cert_chain_file{};
  /// The private key of the node's certificate (unencrypted).
  std::string private_key_file{};
  /// The CA certificates a peer's certificate must chain to (one or more, concatenated).
  std::string ca_file{};
  /// A peer's certificate must name its node id: `identity_prefix` + the decimal id, as a DNS
  /// subject alternative name (or as the common name if the certificate has no DNS names).
  bool bind_node_id = true;
  std::string identity_prefix = "node-";
};

/// @brief A certificate, key or CA file that could not be read or used; the message says which
/// file and what OpenSSL reported.
class tls_config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// @brief The outcome of `tcp_transport::reload_tls`: on failure the context in use stays and
/// `error` says why.
struct tls_reload_result {
  bool ok = false;
  std::string error{};
  explicit operator bool() const noexcept { return ok; }
};

namespace detail {

/// The name a certificate must carry for node `id`.
inline auto tls_identity(const tcp_tls_options& o, std::uint64_t id) -> std::string {
  return o.identity_prefix + std::to_string(id);
}

/// OpenSSL's queued errors as one line (and the queue emptied).
inline auto openssl_errors() -> std::string {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? std::string("no OpenSSL error reported") : out;
}

/// Checks the parameters that need no file access.
inline void validate_tls(const tcp_tls_options& o) {
  if (o.cert_chain_file.empty()) {
    distkit::detail::throw_invalid_argument("paxos::tcp_transport", "tls.cert_chain_file", "must name a file", "\"\"");
  }
  if (o.private_key_file.empty()) {
    distkit::detail::throw_invalid_argument("paxos::tcp_transport", "tls.private_key_file", "must name a file", "\"\"");
  }
  if (o.ca_file.empty()) {
    distkit::detail::throw_invalid_argument("paxos::tcp_transport", "tls.ca_file", "must name a file", "\"\"");
  }
  if (o.bind_node_id && o.identity_prefix.empty()) {
    distkit::detail::throw_invalid_argument("paxos::tcp_transport", "tls.identity_prefix",
                                            "must not be empty when bind_node_id is set", "\"\"");
  }
}

/// A context for both ends of peer connections (TLS 1.3 only, the node's chain and key, the CA,
/// peer certificates required and verified, no session tickets or resumption), with the options
/// it was made from.
struct tls_state {
  tls_state() : ctx(asio::ssl::context::tls) {}
  tcp_tls_options options;
  asio::ssl::context ctx;
};

/// Reads the files of `o` into a new context.
/// @throws std::invalid_argument for an empty file name; tls_config_error naming the file that
///         does not load.
inline auto make_tls_state(const tcp_tls_options& o) -> std::shared_ptr<tls_state> {
  validate_tls(o);
  ERR_clear_error();
  auto state = std::make_shared<tls_state>();
  state->options = o;
  SSL_CTX* native = state->ctx.native_handle();
  auto fail = [&](const std::string& what) -> void {
    throw tls_config_error("distkit::paxos::tcp_transport: " + what + ": " + openssl_errors());
  };
  if (SSL_CTX_set_min_proto_version(native, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(native, TLS1_3_VERSION) != 1) {
    fail("TLS 1.3 is not available");
  }
  SSL_CTX_set_options(native, SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(native, 0);
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_OFF);
  if (SSL_CTX_use_certificate_chain_file(native, o.cert_chain_file.c_str()) != 1) {
    fail("tls.cert_chain_file '" + o.cert_chain_file + "' does not load");
  }
  if (SSL_CTX_use_PrivateKey_file(native, o.private_key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    fail("tls.private_key_file '" + o.private_key_file + "' does not load");
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    fail("tls.private_key_file '" + o.private_key_file + "' does not match tls.cert_chain_file");
  }
  if (SSL_CTX_load_verify_locations(native, o.ca_file.c_str(), nullptr) != 1) {
    fail("tls.ca_file '" + o.ca_file + "' does not load");
  }
#if !defined(DISTKIT_TLS_MUTATION_NO_PEER_VERIFY)  // test-only mutation: the TLS tests must catch it
  SSL_CTX_set_verify(native, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
#else
  SSL_CTX_set_verify(native, SSL_VERIFY_NONE, nullptr);
#endif
  return state;
}

/// One connection's TLS stream over the connection's socket; it keeps its context alive.
struct tls_session {
  tls_session(std::shared_ptr<tls_state> s, asio::ip::tcp::socket& socket)
      : state(std::move(s)), stream(socket, state->ctx) {}
  std::shared_ptr<tls_state> state;
  asio::ssl::stream<asio::ip::tcp::socket&> stream;
};

struct x509_free_deleter {
  void operator()(X509* x) const noexcept { X509_free(x); }
};
using x509_ptr = std::unique_ptr<X509, x509_free_deleter>;

/// True if a handshake failed in TLS itself (an OpenSSL error: a certificate refused by either
/// side, a protocol error, an alert), not because the connection closed or failed under it.
inline auto is_tls_refusal(const asio::error_code& ec) -> bool {
  return ec.category() == asio::error::get_ssl_category();
}

/// True if `cert` names `name` (a DNS subject alternative name, or its common name when it has
/// none), by OpenSSL's host-name rules without wildcards.
inline auto tls_cert_names(X509* cert, const std::string& name) -> bool {
  if (cert == nullptr) return false;
  return X509_check_host(cert, name.data(), name.size(), X509_CHECK_FLAG_NO_WILDCARDS, nullptr) == 1;
}

}  // namespace detail
}  // namespace distkit::inline v0::paxos
