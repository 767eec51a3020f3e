// SPDX-License-Identifier: MIT
// distkit/paxos/progress.hpp: what a leader tracks of its proposals and its peers, the part of
// etcd/raft's Progress and inflights that Multi-Paxos needs.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

#include "distkit/paxos/types.hpp"

namespace distkit::inline v0::paxos::internal {

/// One slot the leader proposed that it has not yet seen chosen.
struct slot_progress {
  std::uint64_t acks = 0;  ///< bit i: the replica at index i accepted it at the leader's ballot
  std::uint64_t sent = 0;  ///< the tick it was last sent (or resent) at
  std::size_t bytes = 0;   ///< encoded size of the slot's batch
};

/// @brief The leader's progress tracker: its proposals in flight (slot, acknowledgements,
/// bytes), the next slot it proposes into, when it last heard from each peer, and when it
/// last started a snapshot transfer to each. Reset whenever the replica changes role.
///
/// Invariant kept by the replica: while it leads, `next_slot` is above its chosen index and
/// no slot at or below the chosen index is in flight (see `replica::on_chosen_moved`).
struct leader_progress {
  std::map<slot_t, slot_progress> inflight;  ///< proposed, not yet known chosen, by slot
  slot_t next_slot = 1;                      ///< the slot the next batch is proposed into
  std::vector<std::uint64_t> heard;          ///< per replica index: tick of its last reply to our ballot
  std::vector<std::uint64_t> snapshot_tick;  ///< per replica index: tick a snapshot transfer last began (0: never)

  /// Sizes the per-peer vectors for `peers` replicas (all zero).
  void reset_peers(std::size_t peers) {
    heard.assign(peers, 0);
    snapshot_tick.assign(peers, 0);
  }
  /// Encoded bytes of every batch in flight.
  [[nodiscard]] auto inflight_bytes() const noexcept -> std::size_t {
    std::size_t n = 0;
    for (const auto& [s, f] : inflight) n += f.bytes;
    return n;
  }
  /// A chosen index moved to `chosen`: nothing at or below it is in flight any more, and the
  /// next proposal goes above it.
  void chosen_through(slot_t chosen) {
    inflight.erase(inflight.begin(), inflight.upper_bound(chosen));
    next_slot = std::max(next_slot, chosen + 1);
  }
};

}  // namespace distkit::inline v0::paxos::internal
