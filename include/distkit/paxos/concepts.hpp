// SPDX-License-Identifier: MIT
// distkit/paxos/concepts.hpp: the policies around the Paxos core (state machine, storage, transport).
#pragma once

#include <concepts>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "distkit/paxos/message.hpp"
#include "distkit/paxos/types.hpp"

namespace distkit::inline v0::paxos {

/// @brief The replicated state machine: deterministic, no I/O.
///
/// Requires `sm.apply(std::string_view command) -> std::string` (the result returned to the
/// client), `sm.snapshot() -> std::string` (const) and `sm.restore(std::string_view)`.
/// Two state machines that applied the same commands in the same order must be equal, and
/// `restore(snapshot())` must reproduce the state.
template <class S>
concept state_machine = requires(S& sm, const S& csm, std::string_view bytes) {
  { sm.apply(bytes) } -> std::convertible_to<std::string>;
  { csm.snapshot() } -> std::convertible_to<std::string>;
  sm.restore(bytes);
};

/// @brief A state machine that can tell a read-only command (one whose `apply` changes
/// nothing): `csm.is_read_only(command) -> bool`. A replica may then keep only small results of
/// such commands in its dedupe table and answer a retry by applying the command again.
template <class S>
concept read_only_aware = requires(const S& csm, std::string_view bytes) {
  { csm.is_read_only(bytes) } -> std::convertible_to<bool>;
};

/// What a replica finds in its storage when it starts: the durable acceptor state.
struct recovered_state {
  ballot promised;                 ///< highest promise made (accepted ballots count too)
  std::vector<log_entry> entries;  ///< accepted/learned entries, in write order (later wins)
  slot_t commit_index = 0;         ///< every slot up to here is chosen (values in entries/snapshot)
  std::optional<snapshot> snap;    ///< the latest durable snapshot
};

/// @brief Durable acceptor state. Writes are buffered until `sync()`, which makes every write
/// since the last sync durable at once (one fdatasync per ready cycle).
///
/// Requires: `s.load() -> recovered_state`; `s.save_promise(ballot)`;
/// `s.append(std::span<const log_entry>)`; `s.save_commit(slot_t)`;
/// `s.save_snapshot(const snapshot&)` (later syncs may drop entries the snapshot covers);
/// `s.sync()` which throws if durability cannot be guaranteed (treated as fatal).
template <class S>
concept paxos_storage =
    requires(S& s, const ballot& b, std::span<const log_entry> entries, slot_t slot, const snapshot& snap) {
      { s.load() } -> std::same_as<recovered_state>;
      s.save_promise(b);
      s.append(entries);
      s.save_commit(slot);
      s.save_snapshot(snap);
      s.sync();
    };

/// @brief Delivers messages to other replicas: `t.send(const message&)` (best effort: the
/// protocol tolerates loss, duplication and reordering). Must not call back into the replica.
template <class T>
concept paxos_transport = requires(T& t, const message& m) { t.send(m); };

}  // namespace distkit::inline v0::paxos
