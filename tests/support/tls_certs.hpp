// SPDX-License-Identifier: MIT
// tests/support/tls_certs.hpp: throwaway CAs and node certificates made at test time (OpenSSL 3 API).
//
// Keys are EC P-256 (fast to make). Each certificate is written as PEM into a fresh directory
// under the system's temporary directory, removed with the `test_pki` (kept when the
// environment sets DISTKIT_TEST_KEEP_FILES).
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

namespace distkit_test {

struct pkey_deleter {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
struct x509_deleter {
  void operator()(X509* x) const noexcept { X509_free(x); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_deleter>;
using cert_ptr = std::unique_ptr<X509, x509_deleter>;

/// A certificate authority: its key, certificate and the certificate's PEM file.
struct test_ca {
  pkey_ptr key;
  cert_ptr cert;
  std::string cert_file;
};

/// A node's files: certificate chain (the certificate alone), key, and the issuing CA's file.
struct test_node_cert {
  std::string cert_file;
  std::string key_file;
  std::string ca_file;
};

/// Validity of a certificate relative to now, in seconds.
struct validity {
  long not_before = -3600;
  long not_after = 86400;
};

class test_pki {
 public:
  test_pki() {
    auto base = std::filesystem::temp_directory_path() /
                ("distkit-pki-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    std::filesystem::remove_all(base);
    std::filesystem::create_directories(base);
    dir_ = base;
  }
  test_pki(const test_pki&) = delete;
  auto operator=(const test_pki&) -> test_pki& = delete;
  ~test_pki() {
    if (std::getenv("DISTKIT_TEST_KEEP_FILES") != nullptr) return;  // to read the servers' logs
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  [[nodiscard]] auto dir() const -> const std::filesystem::path& { return dir_; }

  /// A self-signed CA named `name`, written to `<name>-ca.pem`.
  auto make_ca(const std::string& name) -> test_ca {
    test_ca ca;
    ca.key = new_key();
    ca.cert = build(name + " CA", ca.key.get(), nullptr, nullptr, true, {}, {-3600, 10 * 86400});
    ca.cert_file = (dir_ / (name + "-ca.pem")).string();
    write_cert(ca.cert.get(), ca.cert_file);
    return ca;
  }

  /// A certificate for `name` (its common name and DNS name) signed by `ca`, written to
  /// `<file>.pem` and `<file>.key`.
  auto issue(const test_ca& ca, const std::string& name, const std::string& file, validity v = {}) -> test_node_cert {
    auto key = new_key();
    auto cert = build(name, key.get(), ca.cert.get(), ca.key.get(), false, name, v);
    test_node_cert out;
    out.cert_file = (dir_ / (file + ".pem")).string();
    out.key_file = (dir_ / (file + ".key")).string();
    out.ca_file = ca.cert_file;
    write_cert(cert.get(), out.cert_file);
    write_key(key.get(), out.key_file);
    return out;
  }

  /// Writes several CA certificates into one bundle file.
  auto bundle(const std::string& file, std::initializer_list<const test_ca*> cas) -> std::string {
    auto path = (dir_ / file).string();
    FILE* f = std::fopen(path.c_str(), "w");
    if (f == nullptr) throw std::runtime_error("test_pki: cannot write " + path);
    for (const auto* ca : cas) PEM_write_X509(f, ca->cert.get());
    std::fclose(f);
    return path;
  }

 private:
  static auto counter() -> int& {
    static int n = 0;
    return n;
  }

  static auto new_key() -> pkey_ptr {
    pkey_ptr k(EVP_EC_gen("P-256"));
    if (!k) throw std::runtime_error("test_pki: EC key generation failed");
    return k;
  }

  static void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    if (ext == nullptr) throw std::runtime_error("test_pki: extension " + value);
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  }

  // Signs with `issuer_key` (self-signed when `issuer` is null).
  static auto build(const std::string& cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, bool is_ca,
                    const std::string& dns, validity v) -> cert_ptr {
    cert_ptr cert(X509_new());
    X509_set_version(cert.get(), 2);
    unsigned char serial[8];
    RAND_bytes(serial, sizeof(serial));
    serial[0] &= 0x7F;
    BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), v.not_before);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), v.not_after);
    X509_set_pubkey(cert.get(), key);
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509* signer = issuer != nullptr ? issuer : cert.get();
    X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
    if (is_ca) {
      add_ext(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
      add_ext(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
      add_ext(cert.get(), signer, NID_subject_key_identifier, "hash");
    } else {
      add_ext(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
      add_ext(cert.get(), signer, NID_key_usage, "critical,digitalSignature");
      add_ext(cert.get(), signer, NID_ext_key_usage, "serverAuth,clientAuth");
      add_ext(cert.get(), signer, NID_subject_alt_name, "DNS:" + dns);
      add_ext(cert.get(), signer, NID_authority_key_identifier, "keyid");
    }
    if (X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()) == 0) {
      throw std::runtime_error("test_pki: signing failed");
    }
    return cert;
  }

  static void write_cert(X509* cert, const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (f == nullptr) throw std::runtime_error("test_pki: cannot write " + path);
    PEM_write_X509(f, cert);
    std::fclose(f);
  }
  static void write_key(EVP_PKEY* key, const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (f == nullptr) throw std::runtime_error("test_pki: cannot write " + path);
    PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
  }

  std::filesystem::path dir_;
};

}  // namespace distkit_test
