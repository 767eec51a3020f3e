// SPDX-License-Identifier: MIT
// distkit/detail/md5.hpp: a dependency-free MD5 (RFC 1321) tuned for the short keys of ketama.
//
// MD5 is not a security primitive here: ketama-compatible placement needs the exact digest
// libmemcached computes. This one-shot version keeps the state in registers, fully unrolls the
// 64 steps and handles inputs of up to 55 bytes (one padded block) without any copy loop, which
// makes it several times faster than a call through OpenSSL's EVP interface for cache keys.
// The constants are floor(|sin(i + 1)| * 2^32), as RFC 1321 section 3.4 defines them.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "distkit/detail/endian.hpp"

namespace distkit::inline v0::detail {

[[nodiscard]] constexpr auto md5_rotl(std::uint32_t x, int s) noexcept -> std::uint32_t {
  return (x << s) | (x >> (32 - s));
}
// One MD5 step for each round function: x = y + ((x + f(y, z, v) + m) <<< s), where m already
// holds the message word plus the step's constant.
[[nodiscard]] constexpr auto md5_step_f(std::uint32_t x, std::uint32_t y, std::uint32_t z, std::uint32_t v,
                                        std::uint32_t m, int s) noexcept -> std::uint32_t {
  return y + md5_rotl(x + m + (v ^ (y & (z ^ v))), s);
}
[[nodiscard]] constexpr auto md5_step_g(std::uint32_t x, std::uint32_t y, std::uint32_t z, std::uint32_t v,
                                        std::uint32_t m, int s) noexcept -> std::uint32_t {
  // G(y, z, v) = (y & v) | (z & ~v); the two terms share no bits, so | is +, and the term
  // without y joins the additions that do not wait for the previous step.
  return y + md5_rotl(x + m + (z & ~v) + (y & v), s);
}
[[nodiscard]] constexpr auto md5_step_h(std::uint32_t x, std::uint32_t y, std::uint32_t z, std::uint32_t v,
                                        std::uint32_t m, int s) noexcept -> std::uint32_t {
  return y + md5_rotl(x + m + (y ^ z ^ v), s);
}
[[nodiscard]] constexpr auto md5_step_i(std::uint32_t x, std::uint32_t y, std::uint32_t z, std::uint32_t v,
                                        std::uint32_t m, int s) noexcept -> std::uint32_t {
  return y + md5_rotl(x + m + (z ^ (y | ~v)), s);
}

/// Runs the MD5 compression function over one 64-byte block held as 16 little-endian words.
inline void md5_compress(std::array<std::uint32_t, 4>& state, const std::uint32_t* w) noexcept {
  std::uint32_t a = state[0];
  std::uint32_t b = state[1];
  std::uint32_t c = state[2];
  std::uint32_t d = state[3];
  a = md5_step_f(a, b, c, d, w[0] + 0xd76aa478U, 7);
  d = md5_step_f(d, a, b, c, w[1] + 0xe8c7b756U, 12);
  c = md5_step_f(c, d, a, b, w[2] + 0x242070dbU, 17);
  b = md5_step_f(b, c, d, a, w[3] + 0xc1bdceeeU, 22);
  a = md5_step_f(a, b, c, d, w[4] + 0xf57c0fafU, 7);
  d = md5_step_f(d, a, b, c, w[5] + 0x4787c62aU, 12);
  c = md5_step_f(c, d, a, b, w[6] + 0xa8304613U, 17);
  b = md5_step_f(b, c, d, a, w[7] + 0xfd469501U, 22);
  a = md5_step_f(a, b, c, d, w[8] + 0x698098d8U, 7);
  d = md5_step_f(d, a, b, c, w[9] + 0x8b44f7afU, 12);
  c = md5_step_f(c, d, a, b, w[10] + 0xffff5bb1U, 17);
  b = md5_step_f(b, c, d, a, w[11] + 0x895cd7beU, 22);
  a = md5_step_f(a, b, c, d, w[12] + 0x6b901122U, 7);
  d = md5_step_f(d, a, b, c, w[13] + 0xfd987193U, 12);
  c = md5_step_f(c, d, a, b, w[14] + 0xa679438eU, 17);
  b = md5_step_f(b, c, d, a, w[15] + 0x49b40821U, 22);
  a = md5_step_g(a, b, c, d, w[1] + 0xf61e2562U, 5);
  d = md5_step_g(d, a, b, c, w[6] + 0xc040b340U, 9);
  c = md5_step_g(c, d, a, b, w[11] + 0x265e5a51U, 14);
  b = md5_step_g(b, c, d, a, w[0] + 0xe9b6c7aaU, 20);
  a = md5_step_g(a, b, c, d, w[5] + 0xd62f105dU, 5);
  d = md5_step_g(d, a, b, c, w[10] + 0x02441453U, 9);
  c = md5_step_g(c, d, a, b, w[15] + 0xd8a1e681U, 14);
  b = md5_step_g(b, c, d, a, w[4] + 0xe7d3fbc8U, 20);
  a = md5_step_g(a, b, c, d, w[9] + 0x21e1cde6U, 5);
  d = md5_step_g(d, a, b, c, w[14] + 0xc33707d6U, 9);
  c = md5_step_g(c, d, a, b, w[3] + 0xf4d50d87U, 14);
  b = md5_step_g(b, c, d, a, w[8] + 0x455a14edU, 20);
  a = md5_step_g(a, b, c, d, w[13] + 0xa9e3e905U, 5);
  d = md5_step_g(d, a, b, c, w[2] + 0xfcefa3f8U, 9);
  c = md5_step_g(c, d, a, b, w[7] + 0x676f02d9U, 14);
  b = md5_step_g(b, c, d, a, w[12] + 0x8d2a4c8aU, 20);
  a = md5_step_h(a, b, c, d, w[5] + 0xfffa3942U, 4);
  d = md5_step_h(d, a, b, c, w[8] + 0x8771f681U, 11);
  c = md5_step_h(c, d, a, b, w[11] + 0x6d9d6122U, 16);
  b = md5_step_h(b, c, d, a, w[14] + 0xfde5380cU, 23);
  a = md5_step_h(a, b, c, d, w[1] + 0xa4beea44U, 4);
  d = md5_step_h(d, a, b, c, w[4] + 0x4bdecfa9U, 11);
  c = md5_step_h(c, d, a, b, w[7] + 0xf6bb4b60U, 16);
  b = md5_step_h(b, c, d, a, w[10] + 0xbebfbc70U, 23);
  a = md5_step_h(a, b, c, d, w[13] + 0x289b7ec6U, 4);
  d = md5_step_h(d, a, b, c, w[0] + 0xeaa127faU, 11);
  c = md5_step_h(c, d, a, b, w[3] + 0xd4ef3085U, 16);
  b = md5_step_h(b, c, d, a, w[6] + 0x04881d05U, 23);
  a = md5_step_h(a, b, c, d, w[9] + 0xd9d4d039U, 4);
  d = md5_step_h(d, a, b, c, w[12] + 0xe6db99e5U, 11);
  c = md5_step_h(c, d, a, b, w[15] + 0x1fa27cf8U, 16);
  b = md5_step_h(b, c, d, a, w[2] + 0xc4ac5665U, 23);
  a = md5_step_i(a, b, c, d, w[0] + 0xf4292244U, 6);
  d = md5_step_i(d, a, b, c, w[7] + 0x432aff97U, 10);
  c = md5_step_i(c, d, a, b, w[14] + 0xab9423a7U, 15);
  b = md5_step_i(b, c, d, a, w[5] + 0xfc93a039U, 21);
  a = md5_step_i(a, b, c, d, w[12] + 0x655b59c3U, 6);
  d = md5_step_i(d, a, b, c, w[3] + 0x8f0ccc92U, 10);
  c = md5_step_i(c, d, a, b, w[10] + 0xffeff47dU, 15);
  b = md5_step_i(b, c, d, a, w[1] + 0x85845dd1U, 21);
  a = md5_step_i(a, b, c, d, w[8] + 0x6fa87e4fU, 6);
  d = md5_step_i(d, a, b, c, w[15] + 0xfe2ce6e0U, 10);
  c = md5_step_i(c, d, a, b, w[6] + 0xa3014314U, 15);
  b = md5_step_i(b, c, d, a, w[13] + 0x4e0811a1U, 21);
  a = md5_step_i(a, b, c, d, w[4] + 0xf7537e82U, 6);
  d = md5_step_i(d, a, b, c, w[11] + 0xbd3af235U, 10);
  c = md5_step_i(c, d, a, b, w[2] + 0x2ad7d2bbU, 15);
  b = md5_step_i(b, c, d, a, w[9] + 0xeb86d391U, 21);
  state[0] += a;
  state[1] += b;
  state[2] += c;
  state[3] += d;
}

/// Loads a 64-byte block as 16 little-endian words.
inline void md5_load_block(const unsigned char* p, std::uint32_t* w) noexcept {
  for (std::size_t i = 0; i < 16; ++i) w[i] = load_le<std::uint32_t>(p + 4 * i);
}

/// The MD5 state words (A, B, C, D) of `size` bytes at `data`; the digest is these four words
/// stored little-endian, in order.
[[nodiscard]] inline auto md5_words(const void* data, std::size_t size) noexcept -> std::array<std::uint32_t, 4> {
  std::array<std::uint32_t, 4> state{0x67452301U, 0xefcdab89U, 0x98badcfeU, 0x10325476U};
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint32_t w[16];
  std::size_t left = size;
  for (; left >= 64; left -= 64, p += 64) {
    md5_load_block(p, w);
    md5_compress(state, w);
  }
  // The tail, the 0x80 marker and the 64-bit bit length fill one block, or two when the tail
  // leaves fewer than 8 bytes free after the marker.
  unsigned char tail[128] = {};
  if (left != 0) std::memcpy(tail, p, left);
  tail[left] = 0x80;
  const std::size_t blocks = left < 56 ? 1 : 2;
  store_le<std::uint64_t>(tail + 64 * blocks - 8, static_cast<std::uint64_t>(size) * 8U);
  md5_load_block(tail, w);
  md5_compress(state, w);
  if (blocks == 2) {
    md5_load_block(tail + 64, w);
    md5_compress(state, w);
  }
  return state;
}

/// The 16-byte MD5 digest of `size` bytes at `data` (RFC 1321).
[[nodiscard]] inline auto md5_digest(const void* data, std::size_t size) noexcept -> std::array<unsigned char, 16> {
  const std::array<std::uint32_t, 4> state = md5_words(data, size);
  std::array<unsigned char, 16> out{};
  for (std::size_t i = 0; i < 4; ++i) store_le<std::uint32_t>(out.data() + 4 * i, state[i]);
  return out;
}

}  // namespace distkit::inline v0::detail
