// SPDX-License-Identifier: MIT
// fuzz/message.cpp: the Paxos message codec (distkit/paxos/message.hpp). Properties: decoding
// untrusted bytes either yields a message or throws paxos_corrupt_error (no crash, no huge
// allocation from a count field), and a decoded message survives encode/decode unchanged.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "distkit/paxos/message.hpp"
#include "fuzz_input.hpp"

namespace paxos = distkit::paxos;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  paxos::message m;
  try {
    m = paxos::decode(bytes);
  } catch (const paxos::paxos_corrupt_error&) {
    return 0;
  }
  const std::string again = paxos::encode(m);
  paxos::message back;
  try {
    back = paxos::decode(again);
  } catch (const paxos::paxos_corrupt_error&) {
    distkit_fuzz::fail("a decoded message does not decode after encoding");
  }
  if (!(back == m)) distkit_fuzz::fail("encode/decode changed a message");
  if (paxos::encode(back) != again) distkit_fuzz::fail("encoding is not stable");
  return 0;
}
