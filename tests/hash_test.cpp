// SPDX-License-Identifier: MIT
// Known-answer tests for the shipped hash policies against published reference vectors.
#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "distkit/hash.hpp"
#include "distkit/md5.hpp"

namespace {

auto hex(const distkit::md5_hash::digest_type& d) -> std::string {
  std::string out;
  char buf[3];
  for (unsigned char c : d) {
    std::snprintf(buf, sizeof buf, "%02x", c);
    out += buf;
  }
  return out;
}

// The input buffer of LLVM's xxh3 known-answer test: xorshift64 bytes, seed 1.
auto xorshift_buffer(std::size_t size) -> std::vector<std::uint8_t> {
  std::vector<std::uint8_t> a(size);
  std::uint64_t x = 1;
  for (auto& byte : a) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    byte = static_cast<std::uint8_t>(x);
  }
  return a;
}

}  // namespace

TEST_CASE("xxh3_hash matches the reference XXH3-64 on every length class", "[hash][xxh3]") {
  const auto buffer = xorshift_buffer(2243);
  struct vector_case {
    std::size_t length;
    std::uint64_t expected;
  };
  // Lengths chosen to cross each internal path of XXH3: 0, 1-3, 4-8, 9-16, 17-128, 129-240, >240.
  const std::array<vector_case, 20> cases{
      {{0, 0x2d06800538d394c2ULL},   {1, 0xd0d496e05c553485ULL},  {2, 0x84d625edb7055eacULL},
       {3, 0x6ea2d59aca5c3778ULL},   {4, 0xbf65290914e80242ULL},  {5, 0xc01fd099ad4fc8e4ULL},
       {6, 0x9e3ea8187399caa5ULL},   {7, 0x9da8b60540644f5aULL},  {8, 0xabc1413da6cd0209ULL},
       {9, 0x8bc89400bfed51f6ULL},   {16, 0x7e46916754d7c9b8ULL}, {17, 0xed4be912ba5f836dULL},
       {32, 0xf59b59b58c304fd1ULL},  {33, 0x9013fb74ca603e0cULL}, {64, 0xfa5271fcce0db1c3ULL},
       {65, 0x79c42431727f1012ULL},  {96, 0x591ee0ddf9c9ccd1ULL}, {97, 0x8ffc6a3111fe19daULL},
       {128, 0x06a146ee9a2da378ULL}, {403, 0xcefeb3ffa532ad8cULL}}};
  for (const auto& c : cases) {
    INFO("length " << c.length);
    CHECK(distkit::xxh3_hash::bytes(buffer.data(), c.length) == c.expected);
  }
  CHECK(distkit::xxh3_hash{}(std::string("a")) == 0xE6C632B61E964E1FULL);
  CHECK(distkit::xxh3_hash{}(std::string_view("abc")) == 0x78AF5F94892F3950ULL);
}

TEST_CASE("xxh64_hash matches the reference XXH64 with seed 0", "[hash][xxh64]") {
  const distkit::xxh64_hash h;
  CHECK(h(std::string("")) == 0xEF46DB3751D8E999ULL);
  CHECK(h(std::string("a")) == 0xD24EC4F1A98C6E5BULL);
  CHECK(h(std::string("abc")) == 0x44BC2CF5AD770999ULL);
  CHECK(h(std::string_view("foo")) == 0x33bf00a859c4ba3fULL);
  CHECK(h("bar") == 0x48a37c90ad27a659ULL);
  CHECK(h(std::string("0123456789abcdefghijklmnopqrstuvwxyz")) == 0x69196c1b3af0bff9ULL);
}

TEST_CASE("fnv1a_hash matches the published FNV-1a 64 values", "[hash][fnv1a]") {
  const distkit::fnv1a_hash h;
  CHECK(h(std::string("")) == 0xcbf29ce484222325ULL);
  CHECK(h(std::string("a")) == 0xaf63dc4c8601ec8cULL);
  CHECK(h(std::string("b")) == 0xaf63df4c8601f1a5ULL);
  CHECK(h(std::string("foobar")) == 0x85944171f73967e8ULL);
}

TEST_CASE("md5_hash matches the RFC 1321 test suite", "[hash][md5]") {
  auto digest_of = [](const std::string& s) { return hex(distkit::md5_hash::digest(s.data(), s.size())); };
  CHECK(digest_of("") == "d41d8cd98f00b204e9800998ecf8427e");
  CHECK(digest_of("a") == "0cc175b9c0f1b6a831c399e269772661");
  CHECK(digest_of("abc") == "900150983cd24fb0d6963f7d28e17f72");
  CHECK(digest_of("message digest") == "f96b697d7cb7938d525a2f31aaf161d0");
  CHECK(digest_of("abcdefghijklmnopqrstuvwxyz") == "c3fcd3d76192e4007dfb496cca67e13b");
  CHECK(digest_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") ==
        "d174ab98d277d9f5a5611c2c9f419d9f");
  CHECK(digest_of("12345678901234567890123456789012345678901234567890123456789012345678901234567890") ==
        "57edf4a22be3c955ac49da2e2107b67a");
  SECTION("as a 64-bit hash it is the digest's first eight bytes, little-endian") {
    CHECK(distkit::md5_hash{}(std::string("")) == 0x04b2008fd98c1dd4ULL);
  }
  SECTION("the reused per-thread context gives the same answer on repeated calls") {
    for (int i = 0; i < 3; ++i) CHECK(digest_of("abc") == "900150983cd24fb0d6963f7d28e17f72");
  }
}

TEST_CASE("hash policies hash a key by its bytes", "[hash][keys]") {
  const distkit::xxh3_hash h;
  const std::string s = "distkit";
  CHECK(h(s) == h(std::string_view(s)));
  CHECK(h(s) == h("distkit"));
  const std::uint64_t n = 42;
  CHECK(h(n) == distkit::xxh3_hash::bytes(&n, sizeof n));
  const std::array<std::byte, 3> raw{std::byte{1}, std::byte{2}, std::byte{3}};
  CHECK(h(std::span<const std::byte>(raw)) == distkit::xxh3_hash::bytes(raw.data(), raw.size()));
}

TEST_CASE("every shipped hash policy models the hasher concept", "[hash][concepts]") {
  STATIC_REQUIRE(distkit::hasher<distkit::xxh3_hash, std::string>);
  STATIC_REQUIRE(distkit::hasher<distkit::xxh3_hash, std::uint32_t>);
  STATIC_REQUIRE(distkit::hasher<distkit::xxh64_hash, std::string_view>);
  STATIC_REQUIRE(distkit::hasher<distkit::fnv1a_hash, std::uint64_t>);
  STATIC_REQUIRE(distkit::hasher<distkit::md5_hash, std::string>);
  STATIC_REQUIRE_FALSE(distkit::hasher<distkit::xxh3_hash, double>);  // +0.0 == -0.0 but bytes differ
  STATIC_REQUIRE(distkit::hasher_id<distkit::xxh3_hash> == 1);
  STATIC_REQUIRE(distkit::hasher_id<std::hash<int>> == 0);
}
