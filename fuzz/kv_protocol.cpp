// SPDX-License-Identifier: MIT
// fuzz/kv_protocol.cpp: what paxos_kv's client port parses from a stranger: the request body
// (examples/paxos_kv/kv_protocol.hpp), the key-value command inside it and the state machine's
// snapshot bytes (distkit/paxos/kv_state_machine.hpp). Properties: no crash; a parsed request
// re-encodes to the same bytes; a malformed command is answered "!bad" and changes nothing;
// a value never grows past the state machine's bound; snapshot/restore is the identity.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "distkit/paxos/kv_state_machine.hpp"
#include "fuzz_input.hpp"
#include "paxos_kv/kv_protocol.hpp"

namespace paxos = distkit::paxos;

namespace {

constexpr std::size_t max_value = 64;

// Applies a command (also as a fresh state machine would see it after a restore).
void exercise(paxos::kv_state_machine& sm, std::string_view command) {
  const std::string before = sm.snapshot();
  const std::string answer = sm.apply(command);
  if (answer == "!bad" && sm.snapshot() != before) distkit_fuzz::fail("a malformed command changed the state");
  paxos::kv_state_machine copy(max_value);
  copy.restore(sm.snapshot());
  if (!(copy == sm)) distkit_fuzz::fail("snapshot/restore changed the state");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  // 1. The request body as the server parses it.
  if (auto req = paxos_kv::decode_request(body)) {
    const std::string again = paxos_kv::encode_request(req->kind, req->client_id, req->request_id, req->command);
    if (std::string_view(again).substr(4) != body) distkit_fuzz::fail("request did not re-encode to its bytes");
    paxos::kv_state_machine sm(max_value);
    // A few commands from the same input: the first is the request's, the rest follow it.
    exercise(sm, req->command);
    distkit_fuzz::input in(data, size);
    for (int i = 0; i < 4 && !in.empty(); ++i) exercise(sm, in.bytes(256));
    // Every stored value within the bound: the snapshot is small.
    for (const auto& key : {std::string(), std::string("k")}) {
      if (sm.value(key).size() > max_value) distkit_fuzz::fail("a value grew past max_value_bytes");
    }
  }
  // 2. Snapshot bytes from a peer.
  paxos::kv_state_machine restored(max_value);
  try {
    restored.restore(body);
    paxos::kv_state_machine copy;
    copy.restore(restored.snapshot());
    if (!(copy == restored)) distkit_fuzz::fail("a restored snapshot does not survive a second round");
  } catch (const paxos::paxos_corrupt_error&) {
  }
  // 3. The member list of the command line.
  try {
    (void)paxos_kv::parse_members(body);
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
