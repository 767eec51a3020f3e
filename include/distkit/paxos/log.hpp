// SPDX-License-Identifier: MIT
// distkit/paxos/log.hpp: a replica's log — entries, the chosen marker and index, applying to the
// state machine, the client dedupe table and compaction — cut along etcd/raft's raftLog seams.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "distkit/hash.hpp"
#include "distkit/paxos/concepts.hpp"
#include "distkit/paxos/message.hpp"
#include "distkit/paxos/types.hpp"

namespace distkit::inline v0::paxos {

/// With client sessions (`replica_options::client_sessions`), the `client_id` of a command
/// that registers a session: its `request_id` is the client's secret (a random nonce), its
/// payload is ignored, and its result is the new session's id (8 bytes, little-endian), which
/// the client then uses as its `client_id`. The id is derived from the secret and the slot, so
/// another client cannot guess it.
inline constexpr std::uint64_t register_session_client = std::numeric_limits<std::uint64_t>::max();

/// One applied command, reported so the driver can answer the client that sent it.
struct applied_command {
  slot_t slot = 0;               ///< the slot the command was chosen in
  std::uint64_t client_id = 0;   ///< the client that sent it (0: no dedupe)
  std::uint64_t request_id = 0;  ///< the client's request number
  std::string result;            ///< what the state machine answered
  bool duplicate = false;        ///< a retry of an already applied request: `result` is the cached one
  /// With client sessions: `client_id` is no live session (never registered, expired or
  /// evicted), so the command was not applied; `result` is empty.
  bool no_session = false;
};

namespace internal {

/// The part of `replica_options` the log uses.
struct log_options {
  slot_t snapshot_interval = 10'000;  ///< take a snapshot after this many applied slots (0: never)
  slot_t log_retention = 1'000;       ///< chosen slots kept in memory behind a snapshot
  /// Read-only results longer than this are not kept in the dedupe table.
  std::size_t max_cached_result_bytes = std::numeric_limits<std::size_t>::max();
  bool sessions = false;         ///< client ids are sessions registered through the log
  std::size_t max_sessions = 0;  ///< sessions kept (the least recently active go first); 0: no bound
  slot_t session_timeout = 0;    ///< a session idle for more slots than this expires; 0: never
};

/// One slot of the in-memory log.
struct slot_state {
  ballot bal;           ///< the ballot this replica accepted the value at ({0,0}: learned, never accepted)
  batch value;          ///< the value
  bool chosen = false;  ///< known chosen (marker, durable in the WAL record when learned)
};

/// @brief A replica's log: what etcd/raft splits into `raftLog` (entries, committed and
/// applied indexes), `unstable` (writes not yet handed to storage) and the snapshot it
/// compacts to. The replica decides *what* is accepted and *when* a slot is known chosen (the
/// protocol); the log holds the values, applies chosen slots in order, answers retried client
/// requests from its dedupe table and compacts.
///
/// Invariants:
/// - **Chosen.** A slot is marked chosen only when this replica knows it is chosen: a quorum
///   accepted it at the leader's ballot, the leader said so and this replica holds the value it
///   accepted at that ballot, the value came in a catch-up reply (every value of one is
///   chosen), or recovery found it at or below the durable commit index or carrying the chosen
///   marker. A chosen slot's value never changes afterwards: `accept` and `learn` leave it
///   alone, and `propose` rewrites a slot above the chosen index only with the value Phase 1
///   found for it, which for a chosen slot is the chosen value (Phase 1's rule: a chosen marker
///   outranks every acceptance, then the highest accepted ballot wins).
/// - **Chosen index.** Every slot up to `chosen_index()` is chosen and applied, in slot order,
///   exactly once per incarnation (a snapshot covers those below its index). Only
///   `apply_chosen` moves it over log slots, and only across a contiguous run of chosen slots;
///   only a snapshot install moves it over slots the log does not hold.
/// - **Applying.** Only chosen slots are applied, each once, in order. A command with a
///   `client_id` whose `request_id` is not above the client's last applied one is not applied
///   again: a repeat of the last one is answered from the dedupe table, an older one not at
///   all. The checksum covers every applied slot's number and value.
/// - **Sessions** (when enabled). The dedupe table holds only sessions registered through the
///   log, at most `max_sessions`; a command whose `client_id` is not a live session is not
///   applied. Registration, expiry (idle for more than `session_timeout` slots) and eviction
///   (the least recently active first, ties by id) happen while applying, as functions of the
///   chosen commands alone, so every replica holds the same sessions at the same slot.
/// - **Compaction.** A snapshot is taken only at the chosen index, so it holds only applied
///   (chosen) state. Memory keeps `log_retention` chosen slots behind the latest snapshot for
///   catch-up and drops nothing above it; only slots at or below a snapshot's index, which the
///   snapshot's state already includes, are ever dropped. Storage drops them when it makes
///   the snapshot durable.
/// - **Unstable.** Every write that must be durable before the replica's next messages
///   (entries, the commit index, a snapshot) is queued here in the order it was made and handed
///   out by `take_*` in one ready cycle; `paxos::persist` makes a snapshot durable before the
///   commit index that may point past it.
///
/// @tparam StateMachine models `state_machine`.
template <state_machine StateMachine>
class replica_log {
 public:
  using entry_map = std::map<slot_t, slot_state>;

  explicit replica_log(log_options opts, StateMachine sm) : opts_(opts), sm_(std::move(sm)) {}

  // ---- observers ------------------------------------------------------------------------

  /// Every slot up to here is chosen and applied.
  [[nodiscard]] auto chosen_index() const noexcept -> slot_t { return chosen_index_; }
  /// Running checksum of the applied log, equal on every replica at the same chosen index.
  [[nodiscard]] auto checksum() const noexcept -> std::uint64_t { return checksum_; }
  [[nodiscard]] auto state() const noexcept -> const StateMachine& { return sm_; }
  /// Entries of the dedupe table (clients, or live sessions).
  [[nodiscard]] auto dedupe_entries() const noexcept -> std::size_t { return clients_.size(); }
  /// The slots held in memory (accepted or chosen), above the compacted prefix.
  [[nodiscard]] auto entries() const noexcept -> const entry_map& { return entries_; }
  /// The latest snapshot (taken or installed), if any.
  [[nodiscard]] auto last_snapshot() const noexcept -> const std::optional<snapshot>& { return last_snapshot_; }
  /// The first slot a peer can catch up from without a snapshot.
  [[nodiscard]] auto first_retained() const noexcept -> slot_t {
    return entries_.empty() ? chosen_index_ + 1 : std::min(entries_.begin()->first, chosen_index_ + 1);
  }

  // ---- writes ---------------------------------------------------------------------------

  /// An acceptance of `value` at `b` for `s` (above the chosen index). A value known chosen
  /// stays (with its marker); a resent accept (one value per slot and ballot) is not written
  /// twice.
  void accept(slot_t s, const ballot& b, batch&& value) {
    auto& st = entries_[s];
    if (!st.chosen && st.bal != b) {
      unstable_entries_.push_back(log_entry{s, b, value});
      st = slot_state{b, std::move(value), false};
    }
  }

  /// The leader's own proposal of `value` at `b` for `s`: written whatever the slot held (see
  /// the invariant on chosen values for why that keeps a chosen value).
  void propose(slot_t s, const ballot& b, batch value) {
    unstable_entries_.push_back(log_entry{s, b, value});
    entries_[s] = slot_state{b, std::move(value), false};
  }

  /// A value learned chosen for `s` (from a catch-up reply). Written with the chosen marker
  /// (`marker`; only a test mutation turns it off), keeping our own acceptance ballot when it
  /// holds this very value, so a torn save that keeps the entry and loses the commit record
  /// still recovers it as chosen. Slots already chosen are left alone.
  void learn(slot_t s, batch&& value, bool marker) {
    if (s <= chosen_index_) return;
    auto& st = entries_[s];
    if (st.chosen) return;  // already durable with the marker
    const ballot b = marker && st.value == value ? st.bal : ballot{};
    unstable_entries_.push_back(log_entry{s, b, value, marker});
    st = slot_state{b, std::move(value), true};
  }

  /// Marks `s` chosen if the log holds it (a quorum accepted the leader's value).
  void mark_chosen(slot_t s) {
    auto it = entries_.find(s);
    if (it != entries_.end()) it->second.chosen = true;
  }

  /// A leader at `b` says slots up to `commit` are chosen: marks chosen each slot above the
  /// chosen index, in order, that is chosen already or was accepted at `b` (so holds the
  /// leader's value), stopping at the first that is neither.
  void mark_chosen_through(const ballot& b, slot_t commit) {
    for (slot_t s = chosen_index_ + 1; s <= commit; ++s) {
      auto it = entries_.find(s);
      if (it == entries_.end() || (!it->second.chosen && it->second.bal != b)) break;
      it->second.chosen = true;
    }
  }

  /// The one path that moves the chosen index over log slots: applies every contiguous slot
  /// marked chosen after it, and queues the new commit index. Returns true when it moved.
  auto apply_chosen() -> bool {
    const slot_t before = chosen_index_;
    for (;;) {
      auto it = entries_.find(chosen_index_ + 1);
      if (it == entries_.end() || !it->second.chosen) break;
      ++chosen_index_;
      apply(chosen_index_, it->second.value);
    }
    if (chosen_index_ == before) return false;
    unstable_commit_ = chosen_index_;
    return true;
  }

  /// Installs a snapshot received from a peer (above the chosen index): restores the state and
  /// the dedupe table, drops the slots it covers and queues it, with the commit index at it,
  /// for `persist` (which makes the snapshot durable first). Accepted entries above it stay.
  void install(snapshot s) {
    restore(s);
    unstable_snap_ = std::move(s);
    unstable_commit_ = chosen_index_;
  }

  /// Takes a snapshot at the chosen index when `snapshot_interval` slots were applied since
  /// the last one, and queues it for persistence.
  void maybe_snapshot() {
    if (opts_.snapshot_interval == 0 || chosen_index_ < snap_index_ + opts_.snapshot_interval) return;
    snapshot s{chosen_index_, checksum_, encode_snapshot_data()};
    snap_index_ = s.index;
    last_snapshot_ = s;
    unstable_snap_ = std::move(s);
  }

  /// Drops from memory the slots more than `log_retention` behind the latest snapshot (call
  /// once the snapshot is durable).
  void compact() {
    if (snap_index_ <= opts_.log_retention) return;
    const slot_t keep_from = snap_index_ - opts_.log_retention;
    entries_.erase(entries_.begin(), entries_.lower_bound(keep_from));
  }

  /// Rebuilds the log from storage: the snapshot, then every entry above it (later records
  /// win), then marks chosen what is at or below the durable commit index and applies. A slot
  /// is chosen on recovery only when known chosen: at or below the commit index (a commit
  /// record is only durable after the values and any received snapshot it covers) or carrying
  /// the chosen marker. Recovery replays what is durable: nothing is queued.
  void recover(recovered_state rs) {
    if (rs.snap) restore(*rs.snap);
    for (auto& e : rs.entries) {
      if (e.slot <= snap_index_) continue;
      entries_[e.slot] = slot_state{e.accepted, std::move(e.value), e.chosen};
    }
    for (auto it = entries_.upper_bound(chosen_index_); it != entries_.end() && it->first <= rs.commit_index; ++it) {
      it->second.chosen = true;
    }
    apply_chosen();
    unstable_entries_.clear();
    unstable_commit_.reset();
    unstable_snap_.reset();
    applied_.clear();
  }

  // ---- the unstable part: handed to the replica's ready cycle -----------------------------

  /// True when a write or an applied command waits to be taken.
  [[nodiscard]] auto has_unstable() const noexcept -> bool {
    return !unstable_entries_.empty() || unstable_commit_.has_value() || unstable_snap_.has_value() ||
           !applied_.empty();
  }
  [[nodiscard]] auto take_entries() noexcept -> std::vector<log_entry> { return std::exchange(unstable_entries_, {}); }
  [[nodiscard]] auto take_commit() noexcept -> std::optional<slot_t> { return std::exchange(unstable_commit_, {}); }
  [[nodiscard]] auto take_snapshot() noexcept -> std::optional<snapshot> { return std::exchange(unstable_snap_, {}); }
  [[nodiscard]] auto take_applied() noexcept -> std::vector<applied_command> { return std::exchange(applied_, {}); }

 private:
  /// The dedupe table's record of one client.
  struct client_entry {
    std::uint64_t request_id = 0;  ///< the client's last applied request
    std::string result;            ///< its result, returned again to a retry
    bool result_dropped = false;   ///< a large read-only result, read again on a retry
    slot_t last_active = 0;        ///< with sessions: the slot of its last command (or registration)
  };

  static auto mix(std::uint64_t h, std::uint64_t v) noexcept -> std::uint64_t {
    h ^= v + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
    h *= 0xBF58476D1CE4E5B9ULL;
    return h ^ (h >> 31);
  }

  void apply(slot_t s, const batch& value) {
    std::uint64_t h = mix(checksum_, s);
    std::uint64_t index = 0;  // the command's place in the batch
    for (const auto& c : value) {
      h = mix(h, c.client_id);
      h = mix(h, c.request_id);
      h = mix(h, xxh3_hash::bytes(c.payload.data(), c.payload.size()));
      applied_command a{s, c.client_id, c.request_id, {}, false, false};
      ++index;
      if (opts_.sessions && c.client_id == register_session_client) {
        a.result = register_session(c.request_id, s, index);
        applied_.push_back(std::move(a));
        continue;
      }
      if (opts_.sessions && c.client_id != 0 && !touch_session(c.client_id, s)) {
        a.no_session = true;
        applied_.push_back(std::move(a));
        continue;
      }
      if (c.client_id != 0) {
        auto& e = clients_[c.client_id];
        if (c.request_id <= e.request_id) {
          if (c.request_id == e.request_id) {
            a.result = e.result_dropped ? sm_.apply(c.payload) : e.result;
            a.duplicate = true;
            applied_.push_back(std::move(a));
          }
          continue;
        }
        a.result = sm_.apply(c.payload);
        e.request_id = c.request_id;
        e.result_dropped = drop_result(c.payload, a.result);
        if (e.result_dropped) {
          e.result.clear();
        } else {
          e.result = a.result;
        }
      } else {
        a.result = sm_.apply(c.payload);
      }
      applied_.push_back(std::move(a));
    }
    checksum_ = h;
  }

  // ---- sessions -------------------------------------------------------------------------

  /// A new session for the client whose secret is `nonce`, registered at slot `s` (the
  /// `index`-th command of its batch): expired and (over the bound) least recently active
  /// sessions go first. Returns the id, 8 bytes little-endian.
  auto register_session(std::uint64_t nonce, slot_t s, std::uint64_t index) -> std::string {
    expire_sessions(s);
    while (opts_.max_sessions != 0 && clients_.size() >= opts_.max_sessions && !by_activity_.empty()) {
      clients_.erase(by_activity_.begin()->second);
      by_activity_.erase(by_activity_.begin());
    }
    std::uint64_t id = mix(mix(mix(0x5E5510ULL, nonce), s), index);
    while (id == 0 || id == register_session_client || clients_.contains(id)) id = mix(id, nonce);
    client_entry e;
    e.last_active = s;
    clients_.emplace(id, std::move(e));
    by_activity_.emplace(s, id);
    std::string out;
    writer w(out);
    w.u64(id);
    return out;
  }

  /// True when `id` is a live session at slot `s`, which then counts as its last activity.
  auto touch_session(std::uint64_t id, slot_t s) -> bool {
    auto it = clients_.find(id);
    if (it == clients_.end()) return false;
    by_activity_.erase({it->second.last_active, id});
    if (opts_.session_timeout != 0 && s - it->second.last_active > opts_.session_timeout) {
      clients_.erase(it);
      return false;
    }
    it->second.last_active = s;
    by_activity_.emplace(s, id);
    return true;
  }

  /// Drops the sessions idle for more than `session_timeout` slots at slot `s`.
  void expire_sessions(slot_t s) {
    if (opts_.session_timeout == 0) return;
    while (!by_activity_.empty() && s - by_activity_.begin()->first > opts_.session_timeout) {
      clients_.erase(by_activity_.begin()->second);
      by_activity_.erase(by_activity_.begin());
    }
  }

  [[nodiscard]] auto drop_result(std::string_view command, const std::string& result) const -> bool {
    if constexpr (read_only_aware<StateMachine>) {
      return result.size() > opts_.max_cached_result_bytes && sm_.is_read_only(command);
    } else {
      return false;
    }
  }

  [[nodiscard]] auto encode_snapshot_data() const -> std::string {
    std::string out;
    writer w(out);
    w.u64(clients_.size());
    std::vector<std::uint64_t> ids;
    ids.reserve(clients_.size());
    for (const auto& [id, e] : clients_) ids.push_back(id);
    std::sort(ids.begin(), ids.end());  // deterministic bytes
    for (auto id : ids) {
      const auto& e = clients_.at(id);
      w.u64(id);
      w.u64(e.request_id);
      w.bytes(e.result);
    }
    w.bytes(sm_.snapshot());
    // Entries whose result was dropped, after the state (absent when there are none, so the
    // bytes are those of a table that keeps every result).
    std::vector<std::uint64_t> dropped;
    for (auto id : ids) {
      if (clients_.at(id).result_dropped) dropped.push_back(id);
    }
    if (!dropped.empty() || opts_.sessions) {
      w.u64(dropped.size());
      for (auto id : dropped) w.u64(id);
    }
    // With sessions, each one's last active slot (after the dropped-result list, which is then
    // always written).
    if (opts_.sessions) {
      w.u64(ids.size());
      for (auto id : ids) {
        w.u64(id);
        w.u64(clients_.at(id).last_active);
      }
    }
    return out;
  }

  /// Sets the state, dedupe table, chosen index and checksum to those of `s` and drops the
  /// slots it covers. Throws `paxos_corrupt_error` when its data does not decode.
  void restore(const snapshot& s) {
    reader r(s.data);
    auto n = r.u64();
    if (n > r.remaining() / 20) reader::fail("snapshot client count");
    clients_.clear();
    for (std::uint64_t i = 0; i < n; ++i) {
      auto id = r.u64();
      client_entry e;
      e.request_id = r.u64();
      e.result = r.bytes();
      clients_[id] = std::move(e);
    }
    auto sm_bytes = r.bytes();
    if (r.remaining() > 0) {
      auto d = r.u64();
      if (d > r.remaining() / 8) reader::fail("snapshot dropped-result count");
      for (std::uint64_t i = 0; i < d; ++i) {
        auto it = clients_.find(r.u64());
        if (it == clients_.end()) reader::fail("snapshot dropped-result client");
        it->second.result_dropped = true;
      }
    }
    // Sessions' last activity; a snapshot written without sessions counts them active at it.
    for (auto& [id, e] : clients_) e.last_active = s.index;
    if (r.remaining() > 0) {
      auto k = r.u64();
      if (k > r.remaining() / 16) reader::fail("snapshot session count");
      for (std::uint64_t i = 0; i < k; ++i) {
        auto it = clients_.find(r.u64());
        if (it == clients_.end()) reader::fail("snapshot session client");
        it->second.last_active = r.u64();
      }
    }
    r.expect_end();
    by_activity_.clear();
    if (opts_.sessions) {
      for (const auto& [id, e] : clients_) by_activity_.emplace(e.last_active, id);
    }
    sm_.restore(sm_bytes);
    snap_index_ = s.index;
    chosen_index_ = s.index;
    checksum_ = s.checksum;
    last_snapshot_ = s;
    entries_.erase(entries_.begin(), entries_.upper_bound(s.index));
  }

  log_options opts_;  ///< snapshot interval, retention and the dedupe table's result bound
  StateMachine sm_;   ///< the replicated state machine, at `chosen_index_`

  // Entries, the chosen index and what is applied.
  entry_map entries_;           ///< accepted and chosen values above the compacted prefix, by slot
  slot_t chosen_index_ = 0;     ///< every slot up to here is chosen and applied
  std::uint64_t checksum_ = 0;  ///< running hash of the applied log (slot numbers and values)
  std::unordered_map<std::uint64_t, client_entry> clients_;  ///< dedupe: last applied request per client
  /// With sessions: (last active slot, id) of every session, oldest first (expiry, eviction).
  std::set<std::pair<slot_t, std::uint64_t>> by_activity_;

  // Compaction.
  slot_t snap_index_ = 0;                  ///< the last slot of the latest snapshot (0: none)
  std::optional<snapshot> last_snapshot_;  ///< the latest snapshot, for lagging peers

  // Unstable: queued for the next ready cycle, in the order the writes were made.
  std::vector<log_entry> unstable_entries_;  ///< entries to persist with `append`
  std::optional<slot_t> unstable_commit_;    ///< the commit index to persist with `save_commit`
  std::optional<snapshot> unstable_snap_;    ///< a snapshot (taken or received) to persist first
  std::vector<applied_command> applied_;     ///< commands applied, for the driver to answer
};

}  // namespace internal
}  // namespace distkit::inline v0::paxos
