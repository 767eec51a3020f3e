// SPDX-License-Identifier: MIT
// distkit/md5.hpp: MD5 as a hash policy (OpenSSL 3 EVP), for ketama-compatible rings.
//
// Link `distkit::openssl` to use it. The `EVP_MD` is fetched once per process and each thread
// reuses one digest context: a one-shot `EVP_Digest` call re-fetches and reallocates every time
// and costs about four times as much for short keys.
#pragma once

#include <openssl/evp.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "distkit/detail/endian.hpp"
#include "distkit/hash.hpp"

namespace distkit::inline v0 {

namespace detail {
struct md5_context {
  EVP_MD* md = nullptr;
  EVP_MD_CTX* ctx = nullptr;

  md5_context() noexcept : md(EVP_MD_fetch(nullptr, "MD5", nullptr)), ctx(EVP_MD_CTX_new()) {
    if (md == nullptr || ctx == nullptr) {
      // Without MD5 no ketama point can be computed; continuing would give wrong placements.
      std::fputs("distkit::md5_hash: OpenSSL has no MD5 (is the default provider loaded?)\n", stderr);
      std::abort();
    }
  }
  md5_context(const md5_context&) = delete;
  auto operator=(const md5_context&) -> md5_context& = delete;
  ~md5_context() {
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(md);
  }

  static auto local() noexcept -> md5_context& {
    thread_local md5_context context;
    return context;
  }
};
}  // namespace detail

/// @brief MD5 over the key's bytes; as a 64-bit hash, the digest's first 8 bytes read as a
/// little-endian integer. `digest()` gives all 16 bytes (ketama takes four 32-bit points from it).
///
/// **Thread safety:** safe; each thread uses its own digest context.
struct md5_hash {
  static constexpr std::uint8_t id = 4;
  static constexpr std::string_view name = "md5";
  using digest_type = std::array<unsigned char, 16>;

  [[nodiscard]] static auto digest(const void* data, std::size_t size) noexcept -> digest_type {
    auto& c = detail::md5_context::local();
    digest_type out{};
    unsigned int length = 0;
    // These calls only fail on allocation failure inside OpenSSL; the digest is then unusable.
    if (EVP_DigestInit_ex2(c.ctx, c.md, nullptr) != 1 || EVP_DigestUpdate(c.ctx, data, size) != 1 ||
        EVP_DigestFinal_ex(c.ctx, out.data(), &length) != 1) {
      std::fputs("distkit::md5_hash: OpenSSL digest failed\n", stderr);
      std::abort();
    }
    return out;
  }
  [[nodiscard]] static auto bytes(const void* data, std::size_t size) noexcept -> std::uint64_t {
    const digest_type d = digest(data, size);
    return detail::load_le<std::uint64_t>(d.data());
  }
  template <byte_hashable Key>
  [[nodiscard]] auto operator()(const Key& key) const noexcept -> std::uint64_t {
    const std::string_view b = detail::key_bytes(key);
    return bytes(b.data(), b.size());
  }
};

static_assert(hasher<md5_hash, std::string>);

}  // namespace distkit::inline v0
