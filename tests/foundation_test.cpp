// SPDX-License-Identifier: MIT
// The shared pieces: version, namespaces, error messages, CRC-32C and little-endian helpers.
#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "distkit/detail/crc32c.hpp"
#include "distkit/detail/endian.hpp"
#include "distkit/detail/error.hpp"
#include "distkit/distkit.hpp"

TEST_CASE("distkit::v0 and distkit name the same entities", "[foundation][namespace]") {
  STATIC_REQUIRE(std::is_same_v<distkit::v0::manual_clock, distkit::manual_clock>);
  STATIC_REQUIRE(std::is_same_v<distkit::v0::xxh3_hash, distkit::xxh3_hash>);
  CHECK(distkit::version.major == DISTKIT_VERSION_MAJOR);
  CHECK(distkit::version.minor == DISTKIT_VERSION_MINOR);
  CHECK(DISTKIT_VERSION == DISTKIT_VERSION_MAJOR * 10000 + DISTKIT_VERSION_MINOR * 100 + DISTKIT_VERSION_PATCH);
}

TEST_CASE("configuration errors name the component, the parameter, the rule and the value", "[foundation][errors]") {
  using Catch::Matchers::Equals;
  REQUIRE_THROWS_AS(
      distkit::detail::throw_invalid_argument("bloom_filter", "false_positive_rate", "must be in (0, 1)", 1.5),
      std::invalid_argument);
  REQUIRE_THROWS_WITH(
      distkit::detail::throw_invalid_argument("bloom_filter", "false_positive_rate", "must be in (0, 1)", 1.5),
      Equals("distkit::bloom_filter: false_positive_rate must be in (0, 1), got 1.5"));
  REQUIRE_THROWS_WITH(distkit::detail::throw_invalid_argument("worker_pool", "threads", "must be at least 1", 0),
                      Equals("distkit::worker_pool: threads must be at least 1, got 0"));
  REQUIRE_THROWS_WITH(
      distkit::detail::throw_invalid_argument("hash_ring", "node", "is already in the ring", std::string("cache-1")),
      Equals("distkit::hash_ring: node is already in the ring, got \"cache-1\""));
  REQUIRE_THROWS_WITH(
      distkit::detail::throw_invalid_argument("rate_limiter", "limit", "must be positive", std::uint8_t{0}),
      Equals("distkit::rate_limiter: limit must be positive, got 0"));
  REQUIRE_THROWS_AS(distkit::detail::throw_logic_error("worker_pool", "submit after shutdown"), std::logic_error);
}

TEST_CASE("crc32c matches the published check value and composes", "[foundation][crc32c]") {
  CHECK(distkit::detail::crc32c(std::string_view("123456789")) == 0xE3069283U);
  CHECK(distkit::detail::crc32c(std::string_view("")) == 0U);
  // RFC 3720 (iSCSI) B.4: 32 bytes of zeros, of 0xFF, and an ascending sequence.
  std::array<unsigned char, 32> buf{};
  CHECK(distkit::detail::crc32c(buf.data(), buf.size()) == 0x8A9136AAU);
  buf.fill(0xFF);
  CHECK(distkit::detail::crc32c(buf.data(), buf.size()) == 0x62A8AB43U);
  for (unsigned i = 0; i < 32; ++i) buf[i] = static_cast<unsigned char>(i);
  CHECK(distkit::detail::crc32c(buf.data(), buf.size()) == 0x46DD794EU);

  const std::string text = "the quick brown fox jumps over the lazy dog, twice over";
  for (std::size_t split = 0; split <= text.size(); ++split) {
    const auto first = distkit::detail::crc32c(text.data(), split);
    REQUIRE(distkit::detail::crc32c(text.data() + split, text.size() - split, first) ==
            distkit::detail::crc32c(std::string_view(text)));
  }
  // The software path agrees with whichever path crc32c() picked on this host.
  CHECK(~distkit::detail::crc32c_update_sw(~0U, reinterpret_cast<const unsigned char*>(text.data()), text.size()) ==
        distkit::detail::crc32c(std::string_view(text)));
}

TEST_CASE("little-endian helpers round-trip and fix the byte order", "[foundation][endian]") {
  std::array<unsigned char, 8> bytes{};
  distkit::detail::store_le<std::uint32_t>(bytes.data(), 0x11223344U);
  CHECK(bytes[0] == 0x44);
  CHECK(bytes[3] == 0x11);
  CHECK(distkit::detail::load_le<std::uint32_t>(bytes.data()) == 0x11223344U);
  distkit::detail::store_le<std::uint64_t>(bytes.data(), 0x0102030405060708ULL);
  CHECK(bytes[0] == 0x08);
  CHECK(distkit::detail::load_le<std::uint64_t>(bytes.data()) == 0x0102030405060708ULL);
  STATIC_REQUIRE(distkit::detail::byteswap(std::uint16_t{0x1234}) == 0x3412);
}
