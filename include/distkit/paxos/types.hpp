// SPDX-License-Identifier: MIT
// distkit/paxos/types.hpp: ballots, commands, log entries and snapshots of the Paxos core.
#pragma once

#include <compare>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "distkit/errors.hpp"

namespace distkit::inline v0::paxos {

/// Identifies a replica. Ids are chosen by the user and must be unique in a cluster.
using node_id = std::uint32_t;

/// A log position. Slot 0 is never used: slots start at 1, and "index 0" means "nothing yet".
using slot_t = std::uint64_t;

/// @brief A Paxos ballot (proposal number): a counter, then the proposer's node id.
///
/// Ordering is lexicographic, so two proposers never share a ballot: the node id breaks ties.
/// The zero ballot `{0, 0}` is "no ballot" and is below every ballot a proposer uses.
///
/// **Thread safety:** a value type.
struct ballot {
  std::uint64_t counter = 0;
  node_id node = 0;

  friend constexpr auto operator<=>(const ballot&, const ballot&) noexcept = default;
  friend constexpr auto operator==(const ballot&, const ballot&) noexcept -> bool = default;

  /// True for every ballot a proposer can use (counter >= 1).
  [[nodiscard]] constexpr auto valid() const noexcept -> bool { return counter != 0; }
  /// The smallest ballot of `node` above `other`.
  [[nodiscard]] static constexpr auto next_after(const ballot& other, node_id node) noexcept -> ballot {
    return ballot{other.counter + 1, node};
  }
};

/// One client command: the client, its request number (increasing per client) and the bytes.
/// Replicas apply each (client_id, request_id) at most once.
struct command {
  std::uint64_t client_id = 0;
  std::uint64_t request_id = 0;
  std::string payload;

  friend auto operator==(const command&, const command&) -> bool = default;
};

/// The value of one slot: a batch of commands. An empty batch is a no-op (fills a gap).
using batch = std::vector<command>;

/// An accepted or chosen value for a slot, as the acceptor stores and reports it.
///
/// `chosen` marks a value the replica knows is chosen (learned from a leader's commit index,
/// a catch-up reply or a quorum of acceptances). The marker outranks every acceptance, in a
/// promise and on recovery, whatever `accepted` holds; `accepted` of a chosen entry is the
/// replica's own acceptance ballot of the same value when it had one, and carries no rank.
struct log_entry {
  slot_t slot = 0;
  ballot accepted;  ///< the ballot the value was accepted at (no rank when `chosen`)
  batch value;
  bool chosen = false;  ///< the value is known to be chosen

  friend auto operator==(const log_entry&, const log_entry&) -> bool = default;
};

/// A state-machine snapshot covering every slot up to and including `index`.
struct snapshot {
  slot_t index = 0;            ///< last slot the snapshot covers
  std::uint64_t checksum = 0;  ///< running checksum of the applied log at `index`
  std::string data;            ///< replica-encoded: dedupe table + state machine bytes

  friend auto operator==(const snapshot&, const snapshot&) -> bool = default;
};

/// Thrown when a Paxos message or record is malformed (truncated, oversized, unknown type).
class paxos_corrupt_error : public corrupt_data_error {
 public:
  using corrupt_data_error::corrupt_data_error;
};

}  // namespace distkit::inline v0::paxos
