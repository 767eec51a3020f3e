// SPDX-License-Identifier: MIT
// distkit/paxos/persist.hpp: the one function that writes a replica's `ready` to storage, and
// the durable order it keeps.
#pragma once

#include <cstdint>
#include <variant>

#include "distkit/paxos/concepts.hpp"
#include "distkit/paxos/message.hpp"
#include "distkit/paxos/replica.hpp"
#include "distkit/paxos/testing/mutations.hpp"

namespace distkit::inline v0::paxos {

/// How `persist` treats a ready cycle whose only durable change is a higher commit index.
enum class commit_sync : std::uint8_t {
  always,  ///< sync it like any other cycle (the default)
  /// Buffer the commit record without a sync; it becomes durable with the next sync. Losing
  /// it in a crash only makes the replica re-learn slots a quorum already holds durably.
  defer,
};

namespace internal {

template <paxos_storage Storage>
void persist_impl(Storage& storage, const ready& rd, commit_sync mode, testing::mutation mutations) {
  if (!rd.needs_sync()) return;
  if (mutations != testing::mutation::none) [[unlikely]] {
    if (testing::has(mutations, testing::mutation::commit_before_snapshot) && rd.snap) {
      // The bug this re-introduces: the WAL (with a commit record past the snapshot) is made
      // durable first, the snapshot after it.
      if (rd.promise && !testing::has(mutations, testing::mutation::skip_promise_persistence)) {
        storage.save_promise(*rd.promise);
      }
      if (!rd.entries.empty()) storage.append(rd.entries);
      if (rd.commit_index) storage.save_commit(*rd.commit_index);
      storage.sync();
      storage.save_snapshot(*rd.snap);
      storage.sync();
      return;
    }
  }
  // 1. A snapshot (taken here, or received from the leader) is durable before anything else of
  //    the cycle: a commit record past a received snapshot must never outlive it.
  if (rd.snap) {
    storage.save_snapshot(*rd.snap);
    storage.sync();
  }
  // 2. The promise, the entries (acceptances and chosen values, in log order) and, last, the
  //    commit index, made durable by one sync; storage keeps call order, so a torn write that
  //    keeps the commit record keeps everything before it.
  if (rd.promise) storage.save_promise(*rd.promise);
  if (!rd.entries.empty()) storage.append(rd.entries);
  if (rd.commit_index) storage.save_commit(*rd.commit_index);
  const bool commit_only = !rd.promise && rd.entries.empty();
  if (rd.snap && commit_only && !rd.commit_index) return;  // the snapshot's sync covered it
  if (commit_only && mode == commit_sync::defer) return;
  storage.sync();
}

}  // namespace internal

/// @brief Writes the durable part of `rd` to `storage`; the only code that does.
///
/// The order is the persistence invariant of the Paxos core, stated here once:
/// 1. a snapshot in `rd` (received from a leader, or taken locally) is made durable, with its
///    own sync, before any other record of the cycle; so a commit record that points past a
///    received snapshot is never durable while the snapshot is not, and recovery never takes
///    the stale entries below a snapshot index for chosen values;
/// 2. then the promise, the log entries and the commit index are written in that order and
///    made durable by one `sync()` (one fdatasync for the whole cycle); a storage keeps call
///    order within a sync, so a crash that tears the write keeps a prefix of it;
/// 3. only when `persist` returns may the caller send `rd.messages` that depend on the state
///    (promises, acceptances); the exceptions are listed by `may_send_before_sync`.
///
/// A crash or a failed write at any point leaves a state recovery handles safely: it marks a
/// slot chosen only up to a durable commit index or where a log entry carries the chosen
/// marker. With `commit_sync::defer`, a cycle that only raises the commit index is buffered
/// and rides on the next sync.
///
/// @tparam Storage models `paxos_storage` and keeps the order of the calls made between two
///         syncs (`memory_storage`, `file_storage` do).
/// @throws whatever `storage.sync()` throws (a failed sync is fatal: stop the replica).
/// **Thread safety:** as `storage`.
template <paxos_storage Storage>
void persist(Storage& storage, const ready& rd, commit_sync mode = commit_sync::always) {
  internal::persist_impl(storage, rd, mode, testing::mutation::none);
}

/// @brief True when `m`, a message of a ready cycle that has no promise, may be sent before
/// the cycle's state is durable: a leader's Phase 2a proposals and heartbeats (its own vote is
/// counted only after the sync, as in Raft's parallel leader write) and learner traffic about
/// values already chosen (catch-up, snapshots and their chunks), and a follower's heartbeat
/// acknowledgements (they vote for nothing; sent early, a sync of large entries does not make
/// the leader think its followers are gone). Promises and acceptances (Phase 1b/2b) always
/// wait for the sync; a cycle that changes the promise sends nothing early, so a ballot is
/// never used before it is durable.
[[nodiscard]] inline auto may_send_before_sync(const ready& rd, const message& m) noexcept -> bool {
  if (rd.promise) return false;
  return std::holds_alternative<accept_msg>(m) || std::holds_alternative<heartbeat_msg>(m) ||
         std::holds_alternative<catchup_request_msg>(m) || std::holds_alternative<catchup_reply_msg>(m) ||
         std::holds_alternative<snapshot_msg>(m) || std::holds_alternative<snapshot_chunk_msg>(m) ||
         std::holds_alternative<snapshot_ack_msg>(m) || std::holds_alternative<heartbeat_ack_msg>(m);
}

namespace testing {

/// `paxos::persist` with the test-only mutations in `m` applied (`commit_before_snapshot`
/// reorders the writes; `skip_promise_persistence` drops the promise).
template <paxos_storage Storage>
void persist(Storage& storage, const ready& rd, mutation m, commit_sync mode = commit_sync::always) {
  distkit::paxos::internal::persist_impl(storage, rd, mode, m);
}

}  // namespace testing
}  // namespace distkit::inline v0::paxos
