// SPDX-License-Identifier: MIT
// fuzz/frame.cpp: the Paxos frame decoder (distkit/paxos/frame.hpp) on raw bytes and on frames
// written by the real encoder and then damaged. Properties: no crash, no read outside the
// input, an accepted frame lies inside the input with a body within the bound, and an
// undamaged frame stream from a legitimate sender is accepted whole.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "distkit/paxos/frame.hpp"
#include "fuzz_input.hpp"

namespace paxos = distkit::paxos;

namespace {

constexpr std::size_t max_body = 4096;

auto key(bool other) -> const paxos::frame_key& {
  static const paxos::frame_key a{std::string_view("fuzz-cluster-key-0123456789")};
  static const paxos::frame_key b{std::string_view("another-cluster-key-98765432")};
  return other ? b : a;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  distkit_fuzz::input in(data, size);
  const auto mode = in.take<std::uint8_t>();
  const bool keyed = (mode & 1U) != 0;
  std::optional<paxos::frame_key> decoder_key;
  if (keyed) decoder_key = key(false);
  paxos::frame_decoder dec(
      {.cluster_id = 7, .node_id = 2, .peers = {1, 3}, .max_body = max_body, .key = decoder_key, .keyring = {}});

  std::vector<std::byte> wire;
  bool expect_all = false;
  std::size_t frames = 0;
  if ((mode & 2U) != 0) {
    // Frames from the real encoder, then (maybe) damaged.
    const auto shape = in.take<std::uint8_t>();
    const std::uint64_t cluster = (shape & 1U) != 0 ? in.take<std::uint64_t>() : 7;
    const paxos::frame_node_id from = (shape & 2U) != 0 ? in.take<std::uint32_t>() : 1;
    const paxos::frame_node_id to = (shape & 4U) != 0 ? in.take<std::uint32_t>() : 2;
    const bool sender_keyed = (shape & 8U) != 0 ? !keyed : keyed;
    const bool other_key = (shape & 16U) != 0;
    std::optional<paxos::frame_key> encoder_key;
    if (sender_keyed) encoder_key = key(other_key);
    const auto first = in.take<std::uint64_t>() >> 8;  // room for the frames that follow
    paxos::frame_encoder enc(cluster, from, encoder_key, first);
    frames = in.take<std::uint8_t>() % 4 + 1;
    for (std::size_t i = 0; i < frames; ++i) {
      const std::string body = in.bytes(max_body);
      enc.encode(to, std::as_bytes(std::span(body.data(), body.size())), wire);
    }
    const unsigned flips = in.take<std::uint8_t>() % 4U;
    for (unsigned i = 0; i < flips && !wire.empty(); ++i) {
      const std::size_t at = in.take<std::uint32_t>() % wire.size();
      wire[at] ^= std::byte{static_cast<std::uint8_t>(in.take<std::uint8_t>() | 1U)};
    }
    const bool cut = (shape & 32U) != 0;
    if (cut) wire.resize(in.take<std::uint32_t>() % (wire.size() + 1));
    expect_all = flips == 0 && !cut && cluster == 7 && (from == 1 || from == 3) && to == 2 && sender_keyed == keyed &&
                 (!keyed || !other_key);
  } else {
    const auto rest = in.rest();
    wire.assign(rest.begin(), rest.end());
  }

  // As the transport reads: header first (nothing trusted), then the whole frame.
  std::span<const std::byte> rest(wire);
  std::size_t accepted = 0;
  while (!rest.empty()) {
    const auto r = dec.try_decode(rest);
    if (!r.ok()) break;
    const auto& f = r.frame;
    if (f.size < paxos::frame_format::header_size || f.size > rest.size()) distkit_fuzz::fail("frame size");
    if (f.header.body_length > max_body || f.body.size() != f.header.body_length) distkit_fuzz::fail("body length");
    if (f.body.data() != rest.data() + paxos::frame_format::header_size) distkit_fuzz::fail("body position");
    rest = rest.subspan(f.size);
    ++accepted;
  }
  if (expect_all && accepted != frames) distkit_fuzz::fail("a legitimate frame was refused");

  // The throwing form refuses with frame_error and nothing else.
  paxos::frame_decoder again(
      {.cluster_id = 7, .node_id = 2, .peers = {}, .max_body = max_body, .key = decoder_key, .keyring = {}});
  try {
    (void)again.decode(wire);
  } catch (const paxos::frame_error&) {
  }
  return 0;
}
