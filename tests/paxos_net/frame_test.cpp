// SPDX-License-Identifier: MIT
// tests/paxos_net/frame_test.cpp: the Paxos wire frame refuses every corrupt, forged or replayed frame.
#include "distkit/paxos/frame.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "support/seed.hpp"

namespace {

using distkit::paxos::frame_decoder;
using distkit::paxos::frame_decoder_options;
using distkit::paxos::frame_encoder;
using distkit::paxos::frame_error;
using distkit::paxos::frame_error_kind;
using distkit::paxos::frame_format;
using distkit::paxos::frame_key;

auto bytes_of(std::string_view s) -> std::vector<std::byte> {
  auto b = std::as_bytes(std::span(s.data(), s.size()));
  return {b.begin(), b.end()};
}

// The former name still compiles (with a deprecation warning, silenced here) and is the same type.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static_assert(std::is_same_v<distkit::paxos::frame_decoder_config, frame_decoder_options>);
#pragma GCC diagnostic pop

const frame_key cluster_key{std::string_view("0123456789abcdef-cluster-key")};
const frame_key other_key{std::string_view("fedcba9876543210-other-key!!")};

auto decoder_config(bool keyed) -> frame_decoder_options {
  frame_decoder_options c;
  c.cluster_id = 42;
  c.node_id = 2;
  c.peers = {1, 3};
  c.max_body = 1024;
  if (keyed) c.key = cluster_key;
  return c;
}

auto encode_one(frame_encoder& enc, std::uint32_t to, std::string_view body) -> std::vector<std::byte> {
  std::vector<std::byte> out;
  enc.encode(to, bytes_of(body), out);
  return out;
}

auto refusal(frame_decoder& dec, const std::vector<std::byte>& wire) -> frame_error_kind {
  return dec.try_decode(wire).error;
}

}  // namespace

TEST_CASE("paxos frame round-trips a body with and without a cluster key", "[paxos_net][frame]") {
  for (bool keyed : {false, true}) {
    frame_encoder enc(42, 1, keyed ? std::optional<frame_key>(cluster_key) : std::nullopt, 100);
    frame_decoder dec(decoder_config(keyed));
    for (std::string_view body : {"", "x", "a paxos accept message with a value"}) {
      auto wire = encode_one(enc, 2, body);
      REQUIRE(wire.size() == frame_format::header_size + body.size() + (keyed ? frame_format::mac_size : 0));
      auto frame = dec.decode(wire);
      CHECK(frame.header.from == 1);
      CHECK(frame.header.to == 2);
      CHECK(frame.header.cluster_id == 42);
      CHECK(frame.size == wire.size());
      CHECK(std::string(reinterpret_cast<const char*>(frame.body.data()), frame.body.size()) == std::string(body));
    }
    CHECK(dec.stats().accepted() == 3);
    CHECK(dec.stats().refused_total() == 0);
  }
}

TEST_CASE("paxos frame has a fixed, documented layout", "[paxos_net][frame]") {
  frame_encoder enc(0x0102030405060708ULL, 7, std::nullopt, 0x1122334455667788ULL);
  auto wire = encode_one(enc, 9, "abc");
  REQUIRE(wire.size() == 43);
  CHECK(std::to_integer<char>(wire[0]) == 'D');
  CHECK(std::to_integer<char>(wire[1]) == 'K');
  CHECK(std::to_integer<char>(wire[2]) == 'P');
  CHECK(std::to_integer<char>(wire[3]) == 'X');
  CHECK(std::to_integer<int>(wire[4]) == 2);
  CHECK(std::to_integer<int>(wire[5]) == 0);
  CHECK(std::to_integer<int>(wire[8]) == 0x08);
  CHECK(std::to_integer<int>(wire[15]) == 0x01);
  CHECK(std::to_integer<int>(wire[16]) == 7);
  CHECK(std::to_integer<int>(wire[20]) == 9);
  CHECK(std::to_integer<int>(wire[24]) == 0x88);
  CHECK(std::to_integer<int>(wire[32]) == 3);
  std::uint32_t crc = distkit::detail::crc32c(wire.data(), 36);
  crc = distkit::detail::crc32c(wire.data() + 40, 3, crc);
  CHECK(distkit::detail::load_le<std::uint32_t>(wire.data() + 36) == crc);
}

TEST_CASE("paxos frame refuses hand-made corrupt headers, each for its own reason", "[paxos_net][frame]") {
  frame_encoder enc(42, 1, std::nullopt, 1);
  frame_decoder dec(decoder_config(false));
  const auto good = encode_one(enc, 2, "hello");

  auto with = [&](auto&& edit) {
    auto w = good;
    edit(w);
    return w;
  };
  CHECK(refusal(dec, with([](auto& w) { w[0] = std::byte{'X'}; })) == frame_error_kind::bad_magic);
  CHECK(std::to_integer<int>(good[4]) == 2);
  CHECK(refusal(dec, with([](auto& w) { w[4] = std::byte{1}; })) == frame_error_kind::bad_version);  // 0.1 peers
  CHECK(refusal(dec, with([](auto& w) { w[4] = std::byte{3}; })) == frame_error_kind::bad_version);
  CHECK(refusal(dec, with([](auto& w) { w[5] = std::byte{0x80}; })) == frame_error_kind::bad_flags);
  CHECK(refusal(dec, with([](auto& w) { w[6] = std::byte{1}; })) == frame_error_kind::bad_flags);
  CHECK(refusal(dec, with([](auto& w) { w[8] = std::byte{43}; })) == frame_error_kind::wrong_cluster);
  CHECK(refusal(dec, with([](auto& w) { w[20] = std::byte{3}; })) == frame_error_kind::wrong_receiver);
  CHECK(refusal(dec, with([](auto& w) { w[16] = std::byte{5}; })) == frame_error_kind::unknown_sender);
  CHECK(refusal(dec, with([](auto& w) { w[16] = std::byte{2}; })) == frame_error_kind::unknown_sender);
  CHECK(refusal(dec, with([](auto& w) { w[40] = std::byte{'j'}; })) == frame_error_kind::bad_checksum);
  CHECK(refusal(dec, with([](auto& w) { w[25] = std::byte{9}; })) == frame_error_kind::bad_checksum);
  // A signed frame where no key is configured is a configuration mismatch, not trusted.
  CHECK(refusal(dec, with([](auto& w) { w[5] = std::byte{1}; })) == frame_error_kind::bad_flags);

  CHECK(dec.stats().refused(frame_error_kind::bad_magic) == 1);
  CHECK(dec.stats().refused(frame_error_kind::bad_flags) == 3);
  CHECK(dec.stats().refused(frame_error_kind::unknown_sender) == 2);
  CHECK(dec.stats().refused(frame_error_kind::bad_version) == 2);
  CHECK(dec.stats().refused_total() == 12);
  CHECK(dec.stats().accepted() == 0);
  // The untouched frame still passes after all of that.
  CHECK(dec.try_decode(good).ok());
}

TEST_CASE("paxos frame refuses an oversized length prefix before reading a body", "[paxos_net][frame]") {
  frame_encoder enc(42, 1, std::nullopt, 1);
  frame_decoder dec(decoder_config(false));
  auto wire = encode_one(enc, 2, "x");
  // Claim a 4 GiB body in a 41-byte frame: refused from the header alone.
  distkit::detail::store_le<std::uint32_t>(wire.data() + 32, 0xFFFFFFFFU);
  distkit::paxos::frame_header h;
  CHECK(dec.check_header(std::span(wire).first(frame_format::header_size), h) == frame_error_kind::oversized);
  // Just above the configured cap, too.
  distkit::detail::store_le<std::uint32_t>(wire.data() + 32, 1025);
  CHECK(refusal(dec, wire) == frame_error_kind::oversized);
  auto big = encode_one(enc, 2, std::string(1025, 'b'));
  CHECK(refusal(dec, big) == frame_error_kind::oversized);
  CHECK(dec.try_decode(encode_one(enc, 2, std::string(1024, 'b'))).ok());
  CHECK(dec.stats().refused(frame_error_kind::oversized) == 3);
}

TEST_CASE("paxos frame refuses every truncation of a valid frame", "[paxos_net][frame]") {
  for (bool keyed : {false, true}) {
    frame_encoder enc(42, 3, keyed ? std::optional<frame_key>(cluster_key) : std::nullopt, 1);
    frame_decoder dec(decoder_config(keyed));
    auto wire = encode_one(enc, 2, "a body that is cut short");
    for (std::size_t n = 0; n < wire.size(); ++n) {
      INFO("prefix of " << n << " bytes, keyed " << keyed);
      auto r = dec.try_decode(std::span(wire).first(n));
      CHECK(r.error == frame_error_kind::truncated);
    }
    CHECK(dec.stats().refused(frame_error_kind::truncated) == wire.size());
    CHECK(dec.try_decode(wire).ok());
  }
}

TEST_CASE("paxos frame detects every single bit flip", "[paxos_net][frame][property]") {
  auto seed = distkit_test::test_seed("paxos frame detects every single bit flip");
  std::mt19937_64 rng(seed);
  for (bool keyed : {false, true}) {
    frame_encoder enc(42, 1, keyed ? std::optional<frame_key>(cluster_key) : std::nullopt, 1);
    std::string body(1 + rng() % 200, '\0');
    for (auto& c : body) c = static_cast<char>(rng());
    auto wire = encode_one(enc, 2, body);
    for (std::size_t bit = 0; bit < wire.size() * 8; ++bit) {
      frame_decoder dec(decoder_config(keyed));  // fresh: the flip must not pass as a replay refusal
      auto w = wire;
      w[bit / 8] ^= std::byte{static_cast<unsigned char>(1U << (bit % 8))};
      INFO("bit " << bit << " keyed " << keyed);
      CHECK_FALSE(dec.try_decode(w).ok());
    }
  }
}

TEST_CASE("paxos frame refuses unsigned, forged and wrong-key frames when keyed", "[paxos_net][frame]") {
  frame_decoder dec(decoder_config(true));
  frame_encoder unsigned_enc(42, 1, std::nullopt, 1);
  CHECK(refusal(dec, encode_one(unsigned_enc, 2, "put x")) == frame_error_kind::missing_mac);

  frame_encoder wrong(42, 1, other_key, 1);
  CHECK(refusal(dec, encode_one(wrong, 2, "put x")) == frame_error_kind::bad_mac);

  // A valid frame whose body is altered and its CRC recomputed: only the MAC catches it.
  frame_encoder right(42, 1, cluster_key, 10);
  auto forged = encode_one(right, 2, "put x=1");
  forged[frame_format::header_size + 6] = std::byte{'9'};
  std::uint32_t crc = distkit::detail::crc32c(forged.data(), frame_format::crc_offset);
  crc = distkit::detail::crc32c(forged.data() + frame_format::header_size, 7, crc);
  distkit::detail::store_le<std::uint32_t>(forged.data() + frame_format::crc_offset, crc);
  CHECK(refusal(dec, forged) == frame_error_kind::bad_mac);

  REQUIRE_THROWS_AS(dec.decode(forged), frame_error);
  REQUIRE_THROWS_AS(dec.decode(forged), distkit::corrupt_data_error);
  REQUIRE_THROWS_WITH(dec.decode(forged), Catch::Matchers::Contains("bad_mac"));
  CHECK(dec.stats().refused(frame_error_kind::bad_mac) == 5);
  CHECK(dec.stats().accepted() == 0);
  CHECK(dec.try_decode(encode_one(right, 2, "put x=1")).ok());
}

TEST_CASE("paxos frame refuses replayed sequence numbers per sender", "[paxos_net][frame]") {
  frame_decoder dec(decoder_config(true));
  frame_encoder a(42, 1, cluster_key, 100);
  frame_encoder b(42, 3, cluster_key, 5);
  auto a1 = encode_one(a, 2, "a1");
  auto a2 = encode_one(a, 2, "a2");
  auto b1 = encode_one(b, 2, "b1");
  CHECK(dec.try_decode(a1).ok());
  CHECK(refusal(dec, a1) == frame_error_kind::replayed);
  CHECK(dec.try_decode(b1).ok());  // another sender's numbers are its own
  CHECK(dec.try_decode(a2).ok());
  CHECK(refusal(dec, a1) == frame_error_kind::replayed);
  CHECK(refusal(dec, a2) == frame_error_kind::replayed);
  CHECK(refusal(dec, b1) == frame_error_kind::replayed);
  // A forged frame with a huge sequence number must not move the window (the MAC is checked first).
  frame_encoder forger(42, 1, other_key, 1'000'000);
  CHECK(refusal(dec, encode_one(forger, 2, "x")) == frame_error_kind::bad_mac);
  CHECK(dec.try_decode(encode_one(a, 2, "a3")).ok());
  CHECK(dec.stats().refused(frame_error_kind::replayed) == 4);
  // A restarted sender starts above its old numbers by default.
  frame_encoder restarted(42, 1, cluster_key);
  CHECK(restarted.next_sequence() > 1'000'000);
  CHECK(dec.try_decode(encode_one(restarted, 2, "after restart")).ok());
}

TEST_CASE("paxos frame configuration errors name the parameter", "[paxos_net][frame]") {
  REQUIRE_THROWS_AS(frame_key(std::string_view("short")), std::invalid_argument);
  REQUIRE_THROWS_WITH(frame_key(std::string_view("short")), Catch::Matchers::Contains("key"));
  auto c = decoder_config(false);
  c.max_body = 0;
  REQUIRE_THROWS_AS(frame_decoder(c), std::invalid_argument);
  REQUIRE_THROWS_WITH(frame_decoder(c), Catch::Matchers::Contains("max_body"));
  c.max_body = (std::size_t{1} << 30) + 1;
  REQUIRE_THROWS_WITH(frame_decoder(c), Catch::Matchers::Contains("max_body"));
  REQUIRE_THROWS_WITH(frame_key::from_file("/nonexistent/distkit/key"), Catch::Matchers::Contains("key file"));
}

TEST_CASE("paxos frame key files drop a trailing newline", "[paxos_net][frame]") {
  auto path = std::filesystem::temp_directory_path() / ("distkit_frame_key_" + std::to_string(::getpid()));
  {
    std::ofstream out(path, std::ios::binary);
    out << "0123456789abcdef-cluster-key\n";
  }
  auto key = frame_key::from_file(path);
  std::filesystem::remove(path);
  frame_encoder enc(42, 1, key, 1);
  frame_decoder dec(decoder_config(true));  // keyed with the same text, no newline
  CHECK(dec.try_decode(encode_one(enc, 2, "same key")).ok());
}

TEST_CASE("paxos frame keyrings: frames name their key; a rotation in three steps refuses nothing",
          "[paxos_net][frame][keyring]") {
  using distkit::paxos::frame_keyring;
  const frame_key old_key{std::string_view("the old cluster key, long enough")};
  const frame_key new_key{std::string_view("the new cluster key, long enough")};
  frame_keyring sender_ring{old_key};  // id 0, as a node with one cluster key has
  frame_encoder enc(42, 1, sender_ring, 1);
  auto config = decoder_config(false);
  config.keyring = frame_keyring{old_key};
  frame_decoder dec(config);

  auto a = encode_one(enc, 2, "signed with the old key");
  CHECK(distkit::detail::load_le<std::uint16_t>(a.data() + 6) == 0);
  CHECK(dec.try_decode(a).ok());

  // 1. Every receiver accepts the new key as well (id 7).
  frame_keyring both{old_key};
  both.add(7, new_key);
  dec.rekey(both);
  CHECK(dec.try_decode(encode_one(enc, 2, "still the old key")).ok());
  // 2. Every sender signs with it.
  both.sign_with(7);
  enc.rekey(both);
  auto b = encode_one(enc, 2, "signed with the new key");
  CHECK(distkit::detail::load_le<std::uint16_t>(b.data() + 6) == 7);
  auto b_header = dec.try_decode(b);
  REQUIRE(b_header.ok());
  CHECK(b_header.frame.header.key_id == 7);
  // 3. The old key goes: a frame still signed with it is refused, by name.
  frame_keyring only_new;
  only_new.add(7, new_key);
  dec.rekey(only_new);
  CHECK(dec.try_decode(encode_one(enc, 2, "new key")).ok());
  frame_encoder straggler(42, 3, frame_keyring{old_key}, 1);
  CHECK(refusal(dec, encode_one(straggler, 2, "old key, after it was removed")) == frame_error_kind::unknown_key);
  CHECK(dec.stats().refused(frame_error_kind::unknown_key) == 1);

  // A frame whose key id was changed in flight fails its MAC (the id is in the signed header).
  frame_decoder both_dec([&] {
    auto c = decoder_config(false);
    frame_keyring r{old_key};
    r.add(7, new_key);
    c.keyring = r;
    return c;
  }());
  auto c = encode_one(enc, 2, "id edited");
  c[6] = std::byte{0};
  CHECK(refusal(both_dec, c) == frame_error_kind::bad_checksum);
  // ... and with the checksum fixed up by the forger, its MAC.
  std::uint32_t crc = distkit::detail::crc32c(c.data(), frame_format::crc_offset);
  crc = distkit::detail::crc32c(c.data() + frame_format::header_size, 9, crc);
  distkit::detail::store_le<std::uint32_t>(c.data() + frame_format::crc_offset, crc);
  CHECK(refusal(both_dec, c) == frame_error_kind::bad_mac);
  // The same key under another id is another key id: refused where that id is unknown.
  frame_encoder wrong_id(
      42, 1,
      [&] {
        frame_keyring r;
        r.add(9, new_key);
        return r;
      }(),
      1);
  CHECK(refusal(both_dec, encode_one(wrong_id, 2, "id 9")) == frame_error_kind::unknown_key);

  // An unsigned decoder cannot become signed by a rekey, nor the other way round.
  frame_decoder plain(decoder_config(false));
  CHECK_THROWS_WITH(plain.rekey(both), Catch::Contains("keyring"));
  CHECK_THROWS_WITH(dec.rekey(frame_keyring{}), Catch::Contains("keyring"));
  CHECK_THROWS_WITH(both.remove(7), Catch::Contains("signing key"));
  CHECK_THROWS_WITH(both.sign_with(3), Catch::Contains("sign"));
}

TEST_CASE("paxos frame keyring files: one key, or ids with a signing key; errors name the line",
          "[paxos_net][frame][keyring]") {
  using distkit::paxos::frame_keyring;
  const auto dir = std::filesystem::temp_directory_path() / ("distkit_keyring_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name, std::ios::binary) << text;
    return dir / name;
  };
  auto single = frame_keyring::from_file(write("single", "just-one-cluster-key-here\n"));
  REQUIRE(single.size() == 1);
  CHECK(single.signing_id() == 0);
  CHECK(single.find(0) != nullptr);

  auto ring = frame_keyring::from_file(write(
      "ring",
      "# distkit keyring\n# rotation: 3 -> 4\n3 the-old-cluster-key-abcdef\n4 the-new-cluster-key-abcdef\nsign 4\n"));
  REQUIRE(ring.size() == 2);
  CHECK(ring.signing_id() == 4);
  frame_encoder enc(42, 1, ring, 1);
  auto config = decoder_config(false);
  config.keyring = ring;
  frame_decoder dec(config);
  CHECK(dec.try_decode(encode_one(enc, 2, "x")).ok());
  auto first = frame_keyring::from_file(
      write("first", "# distkit keyring\n5 a-cluster-key-0123456789\n6 b-cluster-key-0123456789\n"));
  CHECK(first.signing_id() == 5);

  CHECK_THROWS_WITH(frame_keyring::from_file(
                        write("dup", "# distkit keyring\n1 a-cluster-key-0123456789\n1 b-cluster-key-0123456789\n")),
                    Catch::Contains("duplicate key id at line 3"));
  CHECK_THROWS_WITH(frame_keyring::from_file(write("badid", "# distkit keyring\n70000 a-cluster-key-0123456789\n")),
                    Catch::Contains("0 to 65535"));
  CHECK_THROWS_WITH(
      frame_keyring::from_file(write("nosign", "# distkit keyring\n1 a-cluster-key-0123456789\nsign 2\n")),
      Catch::Contains("sign"));
  CHECK_THROWS_WITH(frame_keyring::from_file(write("short", "# distkit keyring\n1 short\n")),
                    Catch::Contains("16 bytes"));
  CHECK_THROWS_WITH(frame_keyring::from_file(write("empty", "# distkit keyring\n\n")), Catch::Contains("no key"));
  CHECK_THROWS_AS(frame_keyring::from_file(dir / "missing"), std::invalid_argument);
  std::filesystem::remove_all(dir);
}
