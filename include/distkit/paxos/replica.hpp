// SPDX-License-Identifier: MIT
// distkit/paxos/replica.hpp: the Multi-Paxos replica, a deterministic core driven like etcd/raft.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "distkit/detail/crc32c.hpp"
#include "distkit/detail/error.hpp"
#include "distkit/paxos/concepts.hpp"
#include "distkit/paxos/log.hpp"
#include "distkit/paxos/message.hpp"
#include "distkit/paxos/progress.hpp"
#include "distkit/paxos/testing/mutations.hpp"
#include "distkit/paxos/types.hpp"

namespace distkit::inline v0::paxos {

/// Configuration of one replica. Time is counted in ticks (calls to `replica::tick()`).
struct replica_options {
  node_id id = 0;                     ///< this replica; must be in `nodes`
  std::vector<node_id> nodes;         ///< every replica of the cluster (1..64, unique)
  std::uint32_t heartbeat_ticks = 1;  ///< leader heartbeat (and retransmit) period
  std::uint32_t election_ticks = 10;  ///< follower timeout; elections wait in [e, 2e) ticks
  std::size_t max_batch = 256;        ///< commands per slot
  std::size_t window = 64;            ///< slots in flight (proposed, not chosen) at once
  std::size_t max_pending = 1 << 20;  ///< queued commands before `propose` answers busy
  slot_t snapshot_interval = 10'000;  ///< take a snapshot after this many applied slots (0: never)
  slot_t log_retention = 1'000;       ///< chosen slots kept in memory behind a snapshot for catch-up
  std::size_t max_catchup = 256;      ///< values per catch-up reply
  // Byte bounds, in the manner of etcd/raft's MaxSizePerMsg and MaxUncommittedEntriesSize. Every
  // message a replica sends encodes to at most `max_message_bytes`, which must not exceed the
  // transport's frame limit; every replica of a cluster must use the same bounds.
  std::size_t max_message_bytes = std::size_t{8} << 20;  ///< any one message, encoded
  /// A slot's batch, encoded (20 bytes + payload per command); `propose` refuses a command
  /// that alone exceeds it (`propose_status::too_large`).
  std::size_t max_batch_bytes = std::size_t{4} << 20;
  /// Values in a catch-up reply, entries in one promise (at least one always goes; a longer
  /// promise tail continues in further messages).
  std::size_t max_catchup_bytes = std::size_t{4} << 20;
  std::size_t snapshot_chunk_bytes = std::size_t{1} << 20;  ///< snapshot bytes per chunk
  std::size_t max_pending_bytes = std::size_t{64} << 20;    ///< queued command bytes before `busy`
  /// Batch bytes in flight (proposed, not chosen) before the leader waits, with `window`: what
  /// the followers' links must carry at once (MaxInflightMsgs x MaxSizePerMsg in etcd/raft).
  std::size_t max_inflight_bytes = std::size_t{16} << 20;
  /// A read-only command's result longer than this is not kept in the dedupe table (state
  /// machines that model `read_only_aware` only): a retry of it is answered by applying it
  /// again, which reads the state at the retry's slot (still linearizable: the client has no
  /// answer yet). Every replica of a cluster must use the same value.
  std::size_t max_cached_result_bytes = std::numeric_limits<std::size_t>::max();
  /// Client sessions, registered through the log (the Raft thesis, section 6.3): a client
  /// first proposes a command with `client_id == register_session_client` and a secret
  /// `request_id`, and uses the id it gets back (`applied_command::result`) as its
  /// `client_id`. A command whose `client_id` is not a live session is not applied
  /// (`applied_command::no_session`), so a client cannot skip or answer another's requests by
  /// forging its id, and the dedupe table is bounded by `max_sessions`. Off: client ids are
  /// trusted and the table keeps one entry per id ever seen. Every replica of a cluster must
  /// use the same three values.
  bool client_sessions = false;
  /// Sessions kept; registering one more evicts the least recently active. 0: no bound.
  std::size_t max_sessions = 0;
  /// A session that sent no command for more than this many slots expires (log time, the same
  /// on every replica). 0: never.
  slot_t session_timeout_slots = 0;
  std::uint64_t seed = 1;  ///< seeds the election back-off (with the id)
};

/// @brief What the replica needs done, in this order: persist its state with
/// `paxos::persist(storage, ready)` (the one function that knows the durable order of
/// `snap`, `promise`, `entries` and `commit_index`); then send `messages`; then answer
/// `applied`; then call `replica::advance()`. Messages are only valid once the state they
/// follow is durable (see `may_send_before_sync` for the few that are not bound by it).
struct ready {
  std::optional<ballot> promise;         ///< persisted with `save_promise`
  std::vector<log_entry> entries;        ///< persisted with `append`
  std::optional<slot_t> commit_index;    ///< persisted with `save_commit`, after `snap`
  std::optional<snapshot> snap;          ///< persisted with `save_snapshot`, durable first
  std::vector<message> messages;         ///< send after the sync
  std::vector<applied_command> applied;  ///< chosen commands applied to the state machine

  /// True when something must be persisted (so a sync is needed before sending).
  [[nodiscard]] auto needs_sync() const noexcept -> bool {
    return promise.has_value() || !entries.empty() || commit_index.has_value() || snap.has_value();
  }
  [[nodiscard]] auto empty() const noexcept -> bool { return !needs_sync() && messages.empty() && applied.empty(); }
};

/// The answer to `replica::propose`.
enum class propose_status : std::uint8_t {
  accepted,    ///< queued; the result arrives in `ready::applied` once chosen
  not_leader,  ///< ask `leader_hint()` instead
  busy,        ///< too many queued commands (or bytes); retry later
  too_large,   ///< the command alone exceeds `max_batch_bytes`: it can never be proposed
};

/// @brief Counters of one replica: refused proposals and ignored messages by reason, and the
/// traffic of the byte-bounded paths. All are monotonic.
struct replica_stats {
  std::uint64_t refused_not_leader = 0;    ///< `propose` on a non-leader
  std::uint64_t refused_busy = 0;          ///< `propose` over `max_pending` or `max_pending_bytes`
  std::uint64_t refused_too_large = 0;     ///< `propose` of a command over `max_batch_bytes`
  std::uint64_t ignored_misaddressed = 0;  ///< stepped messages for another node or from a non-member
  std::uint64_t promise_parts_cut = 0;     ///< promises whose tail was cut (continued on request)
  std::uint64_t catchup_replies_cut = 0;   ///< catch-up replies cut short by `max_catchup_bytes`
  std::uint64_t snapshot_chunks_sent = 0;  ///< chunks (and announcements) sent
  std::uint64_t snapshot_chunks_received = 0;
  std::uint64_t snapshot_chunks_corrupt = 0;       ///< bad chunk CRC or bounds: dropped, offset re-requested
  std::uint64_t snapshot_chunks_out_of_order = 0;  ///< a gap or a repeat: dropped (a gap re-requested)
  std::uint64_t snapshots_corrupt = 0;             ///< assembled bytes failed the whole CRC or the decode: restarted
  std::uint64_t snapshots_assembled = 0;           ///< received complete and verified, then installed
  std::uint64_t elections_started = 0;             ///< times this replica became a candidate
  std::uint64_t catchup_values_sent = 0;           ///< chosen values sent in catch-up replies
  std::uint64_t catchup_bytes_sent = 0;            ///< their encoded bytes
  std::uint64_t snapshot_bytes_sent = 0;           ///< snapshot bytes sent in chunks
};

/// Roles of a replica.
enum class role : std::uint8_t { follower, candidate, leader };

/// @brief A Multi-Paxos replica: acceptor, learner and (when elected) the stable leader.
///
/// A pure, deterministic state machine in the etcd/raft style: feed it messages with `step`,
/// time with `tick` and client commands with `propose`; collect work with `ready()`; perform it
/// (persist + sync, send, answer clients); then call `advance()`. It never performs I/O.
///
/// Protocol: the leader runs Phase 1 once (a prepare for every slot from its first unchosen
/// one), re-proposes the highest-ballot value found for each open slot and fills gaps with
/// no-ops, then runs one Phase 2 round trip per slot, each slot a batch of up to `max_batch`
/// commands, with up to `window` slots in flight. Followers learn chosen slots from the
/// leader's commit index when they accepted the leader's value, and otherwise catch up
/// (chosen values, or a snapshot when the sender compacted them). Elections use randomised
/// timeouts; a follower that heard from its leader within `election_ticks` refuses to promise
/// to anybody else, so a stable leader is not disturbed. Commands carry (client_id,
/// request_id); a retried request is applied once and answered with the cached result.
///
/// The replica runs the protocol (ballots, promises, accepts, elections, the leader's progress
/// in `progress.hpp`); the log it drives (entries, the chosen index, applying, the dedupe
/// table, compaction) is `internal::replica_log` in `log.hpp`, which states its invariants.
///
/// @tparam StateMachine models `state_machine`.
///
/// @throws std::invalid_argument from the constructor for a bad `replica_options` field.
///
/// **Thread safety:** none; drive one replica from one thread.
/// **Complexity:** `step`/`propose` are O(log n) in the in-memory log size; a ready cycle is
/// linear in the work it returns.
///
/// @code
/// #include "distkit/paxos/kv_state_machine.hpp"
/// distkit::paxos::replica<distkit::paxos::kv_state_machine> r{{.id = 1, .nodes = {1, 2, 3}}};
/// r.tick();
/// while (r.has_ready()) { auto rd = r.ready(); /* persist, sync, send */ r.advance(); }
/// @endcode
template <state_machine StateMachine>
class replica {
 public:
  explicit replica(replica_options opts, StateMachine sm = StateMachine{}, recovered_state recovered = {})
      : opts_(std::move(opts)),
        log_(internal::log_options{.snapshot_interval = opts_.snapshot_interval,
                                   .log_retention = opts_.log_retention,
                                   .max_cached_result_bytes = opts_.max_cached_result_bytes,
                                   .sessions = opts_.client_sessions,
                                   .max_sessions = opts_.max_sessions,
                                   .session_timeout = opts_.session_timeout_slots},
             std::move(sm)) {
    validate();
    for (std::size_t i = 0; i < opts_.nodes.size(); ++i) {
      if (opts_.nodes[i] == opts_.id) self_ = i;
    }
    quorum_ = opts_.nodes.size() / 2 + 1;
    rng_.seed(opts_.seed * 0x9E3779B97F4A7C15ULL + opts_.id + 1);
    progress_.reset_peers(opts_.nodes.size());
    recover(std::move(recovered));
    reset_election_timer();
  }

  // ---- inputs ---------------------------------------------------------------------------

  /// Advances time by one tick: heartbeats and retransmissions (leader), elections (others).
  void tick() {
    ++now_;
    if (role_ == role::leader) {
      if (now_ >= heartbeat_due_) {
        heartbeat_due_ = now_ + opts_.heartbeat_ticks;
        broadcast_heartbeat();
        retransmit();
      }
      // Step down when a quorum has not been heard from for an election timeout: a leader cut
      // off from the majority stops taking commands it cannot commit.
      if (now_ - leader_since_ > opts_.election_ticks) {
        std::size_t alive = 1;
        for (std::size_t i = 0; i < progress_.heard.size(); ++i) {
          if (i != self_ && now_ - progress_.heard[i] <= opts_.election_ticks) ++alive;
        }
        if (alive < quorum_) become_follower(std::nullopt);
      }
    } else if (now_ >= election_deadline_) {
      start_election();
    }
  }

  /// Handles one message addressed to this replica (others are ignored).
  void step(const message& m) {
    if (misaddressed(m)) return;
    std::visit([this](const auto& x) { this->on(x); }, m);
  }
  void step(message&& m) {
    if (misaddressed(m)) return;
    std::visit([this](auto&& x) { this->on(std::forward<decltype(x)>(x)); }, std::move(m));
  }

  /// Queues a client command on the leader. Batches form from the commands queued between
  /// two `ready()` calls. A client must use increasing `request_id`s with one request
  /// outstanding at a time (retries reuse the id); `client_id` 0 turns dedupe off.
  /// A command whose encoding alone exceeds `max_batch_bytes` is refused (`too_large`) on
  /// every replica; one over the queue bounds is refused with `busy`.
  [[nodiscard]] auto propose(std::uint64_t client_id, std::uint64_t request_id, std::string command) -> propose_status {
    const std::size_t bytes = encoded_size(paxos::command{0, 0, {}}) + command.size();
    if (bytes + 4 > opts_.max_batch_bytes) {
      ++stats_.refused_too_large;
      return propose_status::too_large;
    }
    if (role_ != role::leader) {
      ++stats_.refused_not_leader;
      return propose_status::not_leader;
    }
    if (pending_.empty()) pending_bytes_ = 0;  // the queue is cleared on a change of role
    if (pending_.size() >= opts_.max_pending || pending_bytes_ + bytes > opts_.max_pending_bytes) {
      ++stats_.refused_busy;
      return propose_status::busy;
    }
    pending_bytes_ += bytes;
    pending_.push_back(paxos::command{client_id, request_id, std::move(command)});
    return propose_status::accepted;
  }

  // ---- outputs --------------------------------------------------------------------------

  /// True when `ready()` has work.
  [[nodiscard]] auto has_ready() -> bool {
    flush_proposals();
    return !out_.empty() || log_.has_unstable() || self_promise_pending_ || !self_acks_pending_.empty();
  }

  /// Takes the work accumulated since the last cycle. Call `advance()` after performing it.
  [[nodiscard]] auto ready() -> paxos::ready {
    flush_proposals();
    log_.maybe_snapshot();
    paxos::ready r = std::move(out_);
    out_ = paxos::ready{};
    r.entries = log_.take_entries();
    r.commit_index = log_.take_commit();
    r.snap = log_.take_snapshot();
    r.applied = log_.take_applied();
    if (mutations_ != testing::mutation::none) [[unlikely]] {
      if (testing::has(mutations_, testing::mutation::skip_promise_persistence)) r.promise.reset();
    }
    inflight_self_acks_ = std::move(self_acks_pending_);
    self_acks_pending_.clear();
    inflight_self_promise_ = self_promise_pending_;
    self_promise_pending_ = false;
    inflight_snapshot_ = r.snap.has_value();
    return r;
  }

  /// Tells the replica the last `ready()` was persisted and its messages sent.
  void advance() {
    if (inflight_self_promise_) {
      inflight_self_promise_ = false;
      if (role_ == role::candidate) count_promise(self_, own_entries_from(log_.chosen_index() + 1));
    }
    auto acks = std::move(inflight_self_acks_);
    inflight_self_acks_.clear();
    for (auto s : acks) count_accept(self_, s);
    if (inflight_snapshot_) {
      inflight_snapshot_ = false;
      log_.compact();
    }
  }

  // ---- observers ------------------------------------------------------------------------

  [[nodiscard]] auto id() const noexcept -> node_id { return opts_.id; }
  [[nodiscard]] auto current_role() const noexcept -> role { return role_; }
  [[nodiscard]] auto is_leader() const noexcept -> bool { return role_ == role::leader; }
  /// The leader this replica last heard from (itself when leading), if any.
  [[nodiscard]] auto leader_hint() const noexcept -> std::optional<node_id> { return leader_; }
  [[nodiscard]] auto promised() const noexcept -> ballot { return promised_; }
  /// Every slot up to here is chosen and applied.
  [[nodiscard]] auto chosen_index() const noexcept -> slot_t { return log_.chosen_index(); }
  /// Running checksum of the applied log (slot numbers and values), equal on every replica
  /// at the same chosen index.
  [[nodiscard]] auto checksum() const noexcept -> std::uint64_t { return log_.checksum(); }
  /// Entries of the dedupe table: clients seen, or live sessions with `client_sessions`.
  [[nodiscard]] auto dedupe_entries() const noexcept -> std::size_t { return log_.dedupe_entries(); }
  [[nodiscard]] auto state() const noexcept -> const StateMachine& { return log_.state(); }
  [[nodiscard]] auto options() const noexcept -> const replica_options& { return opts_; }
  /// The value this replica holds for `slot` (accepted or chosen), if any.
  [[nodiscard]] auto entry_at(slot_t slot) const -> std::optional<log_entry> {
    auto it = log_.entries().find(slot);
    if (it == log_.entries().end()) return std::nullopt;
    return log_entry{slot, it->second.bal, it->second.value, it->second.chosen};
  }
  /// The next slot the leader proposes into (meaningful while leading; always above
  /// `chosen_index()` then).
  [[nodiscard]] auto next_slot() const noexcept -> slot_t { return progress_.next_slot; }
  /// Number of commands queued and not yet in a slot.
  [[nodiscard]] auto pending_commands() const noexcept -> std::size_t { return pending_.size(); }
  /// Refusals, ignored messages and byte-bounded traffic so far.
  [[nodiscard]] auto stats() const noexcept -> const replica_stats& { return stats_; }

 private:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  friend struct testing::mutation_access;

  /// Where a slot was learned chosen; `commit_and_apply` treats every source alike except
  /// for the one test-only mutation that re-introduces a source-specific bug.
  enum class chosen_source : std::uint8_t { quorum, leader_commit, catchup, snapshot };

  void validate() const {
    if (opts_.nodes.empty() || opts_.nodes.size() > 64) {
      distkit::detail::throw_invalid_argument("paxos::replica", "nodes", "must hold 1 to 64 replicas",
                                              opts_.nodes.size());
    }
    for (std::size_t i = 0; i < opts_.nodes.size(); ++i) {
      for (std::size_t j = i + 1; j < opts_.nodes.size(); ++j) {
        if (opts_.nodes[i] == opts_.nodes[j]) {
          distkit::detail::throw_invalid_argument("paxos::replica", "nodes", "must be unique", opts_.nodes[i]);
        }
      }
    }
    if (std::find(opts_.nodes.begin(), opts_.nodes.end(), opts_.id) == opts_.nodes.end()) {
      distkit::detail::throw_invalid_argument("paxos::replica", "id", "must be one of nodes", opts_.id);
    }
    if (opts_.heartbeat_ticks == 0) {
      distkit::detail::throw_invalid_argument("paxos::replica", "heartbeat_ticks", "must be positive",
                                              opts_.heartbeat_ticks);
    }
    if (opts_.election_ticks <= opts_.heartbeat_ticks) {
      distkit::detail::throw_invalid_argument("paxos::replica", "election_ticks", "must exceed heartbeat_ticks",
                                              opts_.election_ticks);
    }
    if (opts_.max_batch == 0)
      distkit::detail::throw_invalid_argument("paxos::replica", "max_batch", "must be positive", 0);
    if (opts_.window == 0) distkit::detail::throw_invalid_argument("paxos::replica", "window", "must be positive", 0);
    if (opts_.max_catchup == 0)
      distkit::detail::throw_invalid_argument("paxos::replica", "max_catchup", "must be positive", 0);
    validate_byte_bounds();
  }

  // Each bound leaves room for the fixed fields of its message, so that a batch, a catch-up
  // value, a promise entry or a snapshot chunk always fits in one message.
  void validate_byte_bounds() const {
    constexpr std::size_t min_message = 4 * message_overhead;
    if (opts_.max_message_bytes < min_message) {
      distkit::detail::throw_invalid_argument("paxos::replica", "max_message_bytes", "must be at least 512",
                                              opts_.max_message_bytes);
    }
    const std::size_t room = opts_.max_message_bytes - message_overhead;
    auto check = [&](const char* name, std::size_t v, std::size_t min) {
      if (v < min || v > room) {
        distkit::detail::throw_invalid_argument("paxos::replica", name,
                                                "must be in [" + std::to_string(min) + ", max_message_bytes - " +
                                                    std::to_string(message_overhead) + " = " + std::to_string(room) +
                                                    "]",
                                                v);
      }
    };
    check("max_batch_bytes", opts_.max_batch_bytes, 64);
    check("max_catchup_bytes", opts_.max_catchup_bytes, 1);
    check("snapshot_chunk_bytes", opts_.snapshot_chunk_bytes, 1);
    if (opts_.max_inflight_bytes < opts_.max_batch_bytes) {
      distkit::detail::throw_invalid_argument("paxos::replica", "max_inflight_bytes",
                                              "must be at least max_batch_bytes", opts_.max_inflight_bytes);
    }
    if (opts_.max_pending_bytes < opts_.max_batch_bytes) {
      distkit::detail::throw_invalid_argument("paxos::replica", "max_pending_bytes", "must be at least max_batch_bytes",
                                              opts_.max_pending_bytes);
    }
  }

  /// True (and counted) for a message this replica must not step: addressed to another node,
  /// or from itself or a non-member.
  [[nodiscard]] auto misaddressed(const message& m) noexcept -> bool {
    const auto from = message_from(m);
    if (message_to(m) == opts_.id && from != opts_.id && index_of(from) != npos) return false;
    ++stats_.ignored_misaddressed;
    return true;
  }

  [[nodiscard]] auto index_of(node_id n) const noexcept -> std::size_t {
    for (std::size_t i = 0; i < opts_.nodes.size(); ++i) {
      if (opts_.nodes[i] == n) return i;
    }
    return npos;
  }
  [[nodiscard]] auto bit(std::size_t i) const noexcept -> std::uint64_t { return std::uint64_t{1} << i; }
  [[nodiscard]] static auto popcount(std::uint64_t x) noexcept -> std::size_t {
    return static_cast<std::size_t>(std::popcount(x));
  }

  template <class M>
  void send(M m) {
    out_.messages.emplace_back(std::move(m));
  }

  void reset_election_timer() {
    std::uniform_int_distribution<std::uint64_t> d(opts_.election_ticks, 2ULL * opts_.election_ticks - 1);
    election_deadline_ = now_ + d(rng_);
  }

  // ---- recovery -------------------------------------------------------------------------

  // Recovery marks a slot chosen only when it is known chosen: it is at or below the durable
  // commit index (a commit record is only written after the values and any received snapshot
  // it covers are durable: see `persist`), or its entry carries the chosen marker. Every other
  // entry is an acceptance, however it was written (the log states it). An acceptance's
  // ballot counts as a promise; a learned value's does not.
  void recover(recovered_state rs) {
    promised_ = rs.promised;
    for (const auto& e : rs.entries) {
      if (!e.chosen) promised_ = std::max(promised_, e.accepted);
    }
    log_.recover(std::move(rs));  // a follower at construction: no leader progress to restore
    out_ = paxos::ready{};        // recovery replays what is already durable; nothing to send
  }

  // ---- elections ------------------------------------------------------------------------

  void start_election() {
    ++stats_.elections_started;
    role_ = role::candidate;
    leader_.reset();
    my_ballot_ = ballot::next_after(std::max(promised_, highest_seen_), opts_.id);
    promised_ = my_ballot_;
    out_.promise = promised_;
    promise_votes_ = 0;
    promise_entries_.clear();
    self_promise_pending_ = true;
    pending_.clear();
    for (std::size_t i = 0; i < opts_.nodes.size(); ++i) {
      if (i != self_) send(prepare_msg{opts_.id, opts_.nodes[i], my_ballot_, log_.chosen_index() + 1});
    }
    reset_election_timer();
  }

  void become_follower(std::optional<node_id> leader) {
    role_ = role::follower;
    leader_ = leader;
    progress_.inflight.clear();
    pending_.clear();
    reset_election_timer();
  }

  [[nodiscard]] auto own_entries_from(slot_t first) const -> std::vector<log_entry> {
    std::vector<log_entry> out;
    const bool report_chosen = !testing::has(mutations_, testing::mutation::learned_at_zero_ballot);
    const auto& entries = log_.entries();
    for (auto it = entries.lower_bound(first); it != entries.end(); ++it) {
      out.push_back(log_entry{it->first, it->second.bal, it->second.value, report_chosen && it->second.chosen});
    }
    return out;
  }

  // Phase 1 ranking: a value a voter knows is chosen outranks every acceptance; otherwise the
  // highest accepted ballot wins.
  void count_promise(std::size_t voter, std::vector<log_entry> entries) {
    if (promise_votes_ & bit(voter)) return;
    promise_votes_ |= bit(voter);
    for (auto& e : entries) {
      if (e.slot <= log_.chosen_index()) continue;
      auto it = promise_entries_.find(e.slot);
      if (it == promise_entries_.end()) {
        promise_entries_.emplace(e.slot, std::move(e));
      } else if (!it->second.chosen && (e.chosen || it->second.accepted < e.accepted)) {
        it->second = std::move(e);
      }
    }
    if (popcount(promise_votes_) >= quorum_) become_leader();
  }

  void become_leader() {
    role_ = role::leader;
    leader_ = opts_.id;
    leader_since_ = now_;
    std::fill(progress_.heard.begin(), progress_.heard.end(), now_);
    progress_.inflight.clear();
    slot_t last = log_.chosen_index();
    if (!promise_entries_.empty()) last = std::max(last, promise_entries_.rbegin()->first);
    progress_.next_slot = last + 1;
    // Re-propose the highest-ballot value of every open slot; fill the gaps with no-ops.
    for (slot_t s = log_.chosen_index() + 1; s <= last; ++s) {
      auto it = promise_entries_.find(s);
      batch v;
      if (it != promise_entries_.end()) v = std::move(it->second.value);
      propose_slot(s, std::move(v));
    }
    promise_entries_.clear();
    heartbeat_due_ = now_ + opts_.heartbeat_ticks;
    broadcast_heartbeat();
  }

  // ---- leader: phase 2 ------------------------------------------------------------------

  void flush_proposals() {
    if (role_ != role::leader) return;
    std::size_t inflight_bytes = progress_.inflight_bytes();
    while (!pending_.empty() && progress_.inflight.size() < opts_.window &&
           (progress_.inflight.empty() || inflight_bytes < opts_.max_inflight_bytes)) {
      // Up to max_batch commands and max_batch_bytes; `propose` made sure one always fits.
      batch v;
      v.reserve(std::min(opts_.max_batch, pending_.size()));
      std::size_t bytes = encoded_size(batch{});
      while (!pending_.empty() && v.size() < opts_.max_batch) {
        const std::size_t n = encoded_size(pending_.front());
        if (!v.empty() && bytes + n > opts_.max_batch_bytes) break;
        bytes += n;
        pending_bytes_ -= std::min(n, pending_bytes_);
        v.push_back(std::move(pending_.front()));
        pending_.pop_front();
      }
      inflight_bytes += bytes;
      propose_slot(progress_.next_slot++, std::move(v));
    }
  }

  void propose_slot(slot_t s, batch v) {
    // The leader never proposes into a slot it knows is chosen (`commit_and_apply` keeps
    // `progress_.next_slot` above the chosen index); only a test mutation breaks this.
    DISTKIT_ASSERT(s > log_.chosen_index() || mutations_ != testing::mutation::none);
    progress_.inflight[s] = internal::slot_progress{0, now_, encoded_size(v)};
    for (std::size_t i = 0; i < opts_.nodes.size(); ++i) {
      if (i != self_) send(accept_msg{opts_.id, opts_.nodes[i], my_ballot_, s, v, log_.chosen_index()});
    }
    log_.propose(s, my_ballot_, std::move(v));
    self_acks_pending_.push_back(s);
  }

  void count_accept(std::size_t voter, slot_t s) {
    if (role_ != role::leader) return;
    auto it = progress_.inflight.find(s);
    if (it == progress_.inflight.end()) return;
    it->second.acks |= bit(voter);
    if (popcount(it->second.acks) >= quorum_) {
      progress_.inflight.erase(it);
      log_.mark_chosen(s);
      commit_and_apply(chosen_source::quorum);
    }
  }

  void retransmit() {
    for (auto& [s, f] : progress_.inflight) {
      if (f.sent + retransmit_ticks(f.bytes) > now_) continue;
      f.sent = now_;
      auto l = log_.entries().find(s);
      if (l == log_.entries().end()) continue;
      for (std::size_t i = 0; i < opts_.nodes.size(); ++i) {
        if (i != self_ && !(f.acks & bit(i))) {
          send(accept_msg{opts_.id, opts_.nodes[i], my_ballot_, s, l->second.value, log_.chosen_index()});
        }
      }
    }
  }

  void broadcast_heartbeat() {
    for (std::size_t i = 0; i < opts_.nodes.size(); ++i) {
      if (i != self_) send(heartbeat_msg{opts_.id, opts_.nodes[i], my_ballot_, log_.chosen_index()});
    }
  }

  // ---- learning and applying ------------------------------------------------------------

  /// The one path that moves the chosen index over log slots: the log applies every
  /// contiguous slot marked chosen, then `on_chosen_moved` restores the invariants that depend
  /// on it.
  void commit_and_apply(chosen_source src) {
    const slot_t before = log_.chosen_index();
    log_.apply_chosen();
    on_chosen_moved(before, src);
  }

  /// Called after the chosen index moved from `before` (slots applied, or a snapshot
  /// installed): keeps a leader from proposing into a chosen slot. (The log queued the durable
  /// commit index.)
  void on_chosen_moved(slot_t before, chosen_source src) {
    if (log_.chosen_index() == before) return;
    if (role_ != role::leader) return;
    if (mutations_ != testing::mutation::none) [[unlikely]] {
      if (src == chosen_source::catchup && testing::has(mutations_, testing::mutation::late_catchup_past_leader)) {
        return;
      }
    }
    progress_.chosen_through(log_.chosen_index());
  }

  /// A leader at `b` says slots up to `commit` are chosen. A slot we accepted at `b` holds the
  /// leader's value, so it is learned; anything else needs catch-up.
  void learn_commit(const ballot& b, node_id from, slot_t commit) {
    log_.mark_chosen_through(b, commit);
    commit_and_apply(chosen_source::leader_commit);
    if (log_.chosen_index() < commit) request_catchup(from);
  }

  void request_catchup(node_id from) {
    const slot_t chosen = log_.chosen_index();
    if (catchup_asked_ != 0 && now_ < catchup_asked_ + std::uint64_t{opts_.heartbeat_ticks} * 2 &&
        catchup_asked_index_ == chosen) {
      return;  // one outstanding request per chosen index, repeated if it gets lost
    }
    catchup_asked_ = now_ == 0 ? 1 : now_;
    catchup_asked_index_ = chosen;
    send(catchup_request_msg{opts_.id, from, chosen + 1});
  }

  // ---- snapshots ------------------------------------------------------------------------

  [[nodiscard]] auto first_retained() const noexcept -> slot_t { return log_.first_retained(); }

  void send_snapshot(std::size_t peer) {
    if (!log_.last_snapshot()) return;
    if (progress_.snapshot_tick[peer] != 0 && now_ < progress_.snapshot_tick[peer] + opts_.election_ticks) return;
    send_snapshot_chunk(peer, 0, /*announce=*/true);
  }

  // ---- byte-bounded transfers: promise tails, catch-up values, snapshot chunks ------------

  /// Promises `b` to `to` with the accepted entries from `first` on, as many as
  /// `max_catchup_bytes` allows (at least one); a cut tail names the slot to ask again from.
  void send_promise(node_id to, const ballot& b, slot_t first) {
    promise_msg p{opts_.id, to, b, true, promised_, log_.chosen_index(), {}};
    std::size_t bytes = 0;
    const bool report_chosen = !testing::has(mutations_, testing::mutation::learned_at_zero_ballot);
    const auto& entries = log_.entries();
    for (auto it = entries.lower_bound(first); it != entries.end(); ++it) {
      log_entry e{it->first, it->second.bal, it->second.value, report_chosen && it->second.chosen};
      const std::size_t n = encoded_size(e);
      if (!p.accepted.empty() && bytes + n > opts_.max_catchup_bytes) {
        p.resume_from = it->first;
        ++stats_.promise_parts_cut;
        break;
      }
      bytes += n;
      p.accepted.push_back(std::move(e));
    }
    send(std::move(p));
  }

  /// A promise whose tail continues in further messages is gathered here. Returns true when `m`
  /// completes the voter's promise (its `accepted` then holds the whole tail); false when the
  /// rest was asked for, or `m` is a repeat of a part already taken.
  auto gather_promise(promise_msg& m) -> bool {
    if (promise_parts_ballot_ != my_ballot_) {
      promise_parts_.assign(opts_.nodes.size(), promise_part{});
      promise_parts_ballot_ = my_ballot_;
    }
    auto& part = promise_parts_[index_of(m.from)];
    if (part.asked_from != 0 && !m.accepted.empty() && m.accepted.front().slot < part.asked_from) return false;
    if (m.resume_from != 0 && m.resume_from <= part.asked_from) return false;
    for (auto& e : m.accepted) part.entries.push_back(std::move(e));
    if (m.resume_from != 0) {
      part.asked_from = m.resume_from;
      send(prepare_msg{opts_.id, m.from, my_ballot_, m.resume_from});
      return false;
    }
    m.accepted = std::move(part.entries);
    part = promise_part{};
    return true;
  }

  /// Ticks between two sends of an unacknowledged slot: a heartbeat for small batches, longer
  /// for large ones (one more heartbeat per 256 KiB, at most half an election timeout), so a
  /// follower still writing megabytes is not sent them again and again.
  [[nodiscard]] auto retransmit_ticks(std::size_t bytes) const noexcept -> std::uint64_t {
    const std::uint64_t scaled = std::uint64_t{opts_.heartbeat_ticks} * (1 + (bytes >> 18));
    return std::max<std::uint64_t>(opts_.heartbeat_ticks, std::min<std::uint64_t>(scaled, opts_.election_ticks / 2));
  }

  /// Adds `v` to a catch-up reply holding `bytes` so far, unless it would pass
  /// `max_catchup_bytes` (the first value always goes).
  auto catchup_fits(std::size_t& bytes, bool first, const batch& v) -> bool {
    const std::size_t n = encoded_size(v);
    if (!first && bytes + n > opts_.max_catchup_bytes) {
      ++stats_.catchup_replies_cut;
      return false;
    }
    bytes += n;
    return true;
  }

  /// The codec bytes of the log's latest snapshot and their CRC-32C, built once per snapshot.
  void build_snapshot_wire() {
    const auto& last = *log_.last_snapshot();
    if (snapshot_wire_index_ == last.index && !snapshot_wire_.empty()) return;
    snapshot_wire_.clear();
    internal::writer w(snapshot_wire_);
    w.snap(last);
    snapshot_wire_crc_ = distkit::detail::crc32c(snapshot_wire_);
    snapshot_wire_index_ = last.index;
  }

  /// Sends the chunk at `offset` of the snapshot in `snapshot_wire_` to `peer`, or
  /// (`announce`) an empty one at 0 of the latest snapshot that asks the peer where to start. A
  /// transfer under way keeps its snapshot even after a newer one is taken.
  void send_snapshot_chunk(std::size_t peer, std::uint64_t offset, bool announce) {
    if (announce) build_snapshot_wire();
    progress_.snapshot_tick[peer] = now_ == 0 ? 1 : now_;
    snapshot_chunk_msg c{opts_.id,
                         opts_.nodes[peer],
                         snapshot_wire_index_,
                         snapshot_wire_.size(),
                         snapshot_wire_crc_,
                         announce ? std::uint64_t{0} : offset,
                         0,
                         {}};
    if (!announce) {
      const auto n = std::min<std::uint64_t>(opts_.snapshot_chunk_bytes, snapshot_wire_.size() - offset);
      c.bytes.assign(snapshot_wire_, static_cast<std::size_t>(offset), static_cast<std::size_t>(n));
    }
    c.chunk_crc = distkit::detail::crc32c(c.bytes);
    ++stats_.snapshot_chunks_sent;
    stats_.snapshot_bytes_sent += c.bytes.size();
    send(std::move(c));
  }

  void send_snapshot_ack(node_id to, slot_t index, std::uint64_t next_offset) {
    send(snapshot_ack_msg{opts_.id, to, index, next_offset});
  }

  // ---- message handlers -----------------------------------------------------------------

  void observe(const ballot& b) { highest_seen_ = std::max(highest_seen_, b); }

  /// True when a live leader other than `from` makes this replica refuse to promise.
  [[nodiscard]] auto leader_is_alive(node_id from) const noexcept -> bool {
    if (role_ == role::leader) return true;  // a leader steps down by itself when cut off
    return leader_ && *leader_ != from && now_ < last_leader_contact_ + opts_.election_ticks;
  }

  void on(prepare_msg m) {
    observe(m.bal);
    if (m.bal > promised_ && !leader_is_alive(m.from)) {
      promised_ = m.bal;
      out_.promise = promised_;
      if (role_ != role::follower) become_follower(std::nullopt);
      leader_.reset();
      reset_election_timer();
      send_promise(m.from, m.bal, m.first_slot);
    } else if (m.bal == promised_ && m.bal.node == m.from && role_ != role::leader) {
      send_promise(m.from, m.bal, m.first_slot);  // the rest of a cut tail, promised already
    } else {
      send(promise_msg{opts_.id, m.from, m.bal, false, promised_, log_.chosen_index(), {}});
    }
  }

  void on(promise_msg m) {
    observe(m.promised);
    if (role_ != role::candidate || m.bal != my_ballot_) return;
    if (!m.ok) {
      if (m.promised > my_ballot_) become_follower(std::nullopt);
      return;
    }
    if (m.chosen_index > log_.chosen_index()) {
      // The voter knows chosen slots this candidate does not: catch up first, run again later.
      become_follower(std::nullopt);
      request_catchup(m.from);
      return;
    }
    if (!gather_promise(m)) return;
    count_promise(index_of(m.from), std::move(m.accepted));
  }

  void on(accept_msg m) {
    observe(m.bal);
    if (m.bal < promised_) {
      send(accepted_msg{opts_.id, m.from, m.bal, m.slot, false, promised_});
      return;
    }
    if (m.bal > promised_) {
      promised_ = m.bal;  // the accept record below carries it durably; otherwise persist it
      if (m.slot <= log_.chosen_index()) out_.promise = promised_;
    }
    follow(m.from, m.bal);
    // A value known chosen stays (with its marker); the leader's value for it is the same. A
    // resent accept (one value per slot and ballot) is acknowledged without a second write.
    if (m.slot > log_.chosen_index()) log_.accept(m.slot, m.bal, std::move(m.value));
    send(accepted_msg{opts_.id, m.from, m.bal, m.slot, true, promised_});
    learn_commit(m.bal, m.from, m.commit_index);
  }

  void follow(node_id leader, const ballot& b) {
    if (role_ != role::follower) become_follower(leader);
    leader_ = leader;
    leader_ballot_ = b;
    last_leader_contact_ = now_;
    reset_election_timer();
  }

  // What every reply to the leader starts with: learn the sender's promise, ignore replies to a
  // ballot we no longer lead with, note that the peer is alive, and step up again when a refusal
  // shows a higher promise. Returns the peer's index when the reply is a yes for our ballot.
  template <class Reply>
  auto accept_leader_reply(const Reply& m) -> std::optional<std::size_t> {
    observe(m.promised);
    if (role_ != role::leader || m.bal != my_ballot_) return std::nullopt;
    const auto i = index_of(m.from);
    progress_.heard[i] = now_;
    if (!m.ok) {
      if (m.promised > my_ballot_) preempted();
      return std::nullopt;
    }
    return i;
  }

  void on(accepted_msg m) {
    if (const auto i = accept_leader_reply(m)) count_accept(*i, m.slot);
  }

  /// A peer promised a higher ballot than ours while we lead. Its promise may come from a
  /// candidate that could not win (our followers refused it); rather than leave the cluster
  /// leaderless, run Phase 1 again above it at once. Our followers still back us (they follow
  /// us, so stickiness does not refuse our prepare); a real successor refuses and we yield.
  void preempted() { start_election(); }

  void on(heartbeat_msg m) {
    observe(m.bal);
    if (m.bal < promised_) {
      send(heartbeat_ack_msg{opts_.id, m.from, m.bal, false, promised_, log_.chosen_index()});
      return;
    }
    follow(m.from, m.bal);
    send(heartbeat_ack_msg{opts_.id, m.from, m.bal, true, promised_, log_.chosen_index()});
    learn_commit(m.bal, m.from, m.commit_index);
  }

  void on(heartbeat_ack_msg m) {
    const auto i = accept_leader_reply(m);
    if (i && m.chosen_index + 1 < first_retained()) send_snapshot(*i);
  }

  void on(catchup_request_msg m) {
    auto i = index_of(m.from);
    const slot_t chosen = log_.chosen_index();
    if (m.first_slot > chosen) return;
    if (m.first_slot < first_retained()) {
      send_snapshot(i);
      return;
    }
    catchup_reply_msg r{opts_.id, m.from, m.first_slot, {}, chosen};
    std::size_t bytes = 0;
    const auto& entries = log_.entries();
    for (slot_t s = m.first_slot; s <= chosen && r.values.size() < opts_.max_catchup; ++s) {
      auto it = entries.find(s);
      if (it == entries.end() || !catchup_fits(bytes, r.values.empty(), it->second.value)) break;
      r.values.push_back(it->second.value);
    }
    if (r.values.empty()) return;
    stats_.catchup_values_sent += r.values.size();
    stats_.catchup_bytes_sent += bytes;
    send(std::move(r));
  }

  // Every value of a catch-up reply is chosen. Each is written with the chosen marker, so a
  // torn save that keeps the entry and loses the commit record still recovers it as chosen.
  void on(catchup_reply_msg m) {
    const slot_t before = log_.chosen_index();
    if (m.first_slot > before + 1) return;  // not contiguous with what we know
    const bool marker = !testing::has(mutations_, testing::mutation::learned_at_zero_ballot);
    for (std::size_t k = 0; k < m.values.size(); ++k) log_.learn(m.first_slot + k, std::move(m.values[k]), marker);
    commit_and_apply(chosen_source::catchup);
    const slot_t after = log_.chosen_index();
    if (after != before) catchup_asked_ = 0;
    if (after < m.chosen_index && after != before) request_catchup(m.from);
  }

  void on(snapshot_msg m) {
    const slot_t before = log_.chosen_index();
    if (m.snap.index <= before) return;
    // Accepted entries above the snapshot stay; a leader re-proposal covers the rest.
    // `persist` makes this snapshot durable before the commit record that points at it.
    log_.install(std::move(m.snap));
    catchup_asked_ = 0;
    on_chosen_moved(before, chosen_source::snapshot);
    commit_and_apply(chosen_source::snapshot);  // entries above it may be marked chosen
  }

  /// A received snapshot chunk: appended when it continues the assembly, otherwise dropped
  /// and the offset reached re-requested; the assembled bytes are verified, decoded and then
  /// installed through the same path as a whole snapshot.
  void on(snapshot_chunk_msg m) {
    ++stats_.snapshot_chunks_received;
    if (m.index <= log_.chosen_index()) {
      send_snapshot_ack(m.from, m.index, m.total);  // nothing needed: the sender stops
      return;
    }
    const bool same =
        assembly_ && assembly_->index == m.index && assembly_->total == m.total && assembly_->total_crc == m.total_crc;
    const std::uint64_t reached = same ? assembly_->bytes.size() : 0;
    if (m.offset > m.total || m.bytes.size() > m.total - m.offset || distkit::detail::crc32c(m.bytes) != m.chunk_crc) {
      ++stats_.snapshot_chunks_corrupt;
      send_snapshot_ack(m.from, m.index, reached);
      return;
    }
    if (!same && m.offset == 0) {
      assembly_ = snapshot_assembly{m.index, m.total, m.total_crc, {}};
    } else if (m.offset != reached || !same) {
      // A gap (a lost chunk) or an announcement: ask from the offset reached. A repeat of a
      // chunk already taken is dropped without an answer, so duplicate transfers die out.
      const bool announcement = m.offset == 0 && m.bytes.empty();
      if (!announcement) ++stats_.snapshot_chunks_out_of_order;
      if (announcement || m.offset > reached) send_snapshot_ack(m.from, m.index, reached);
      return;
    }
    auto& a = *assembly_;
    a.bytes.append(m.bytes);
    if (a.bytes.size() < a.total) {
      if (!m.bytes.empty())
        send_snapshot_ack(m.from, m.index, a.bytes.size());
      else if (m.offset == 0)
        send_snapshot_ack(m.from, m.index, 0);
      return;
    }
    std::string whole = std::move(a.bytes);
    const auto crc = a.total_crc;
    assembly_.reset();
    std::optional<snapshot> s;
    if (distkit::detail::crc32c(whole) == crc) {
      try {
        internal::reader r(whole);
        s = r.snap();
        r.expect_end();
      } catch (const paxos_corrupt_error&) {
        s.reset();
      }
    }
    if (!s || s->index != m.index) {
      ++stats_.snapshots_corrupt;
      send_snapshot_ack(m.from, m.index, 0);  // start again
      return;
    }
    ++stats_.snapshots_assembled;
    send_snapshot_ack(m.from, m.index, m.total);
    on(snapshot_msg{m.from, opts_.id, std::move(*s)});
  }

  /// The peer asks for the chunk of our snapshot at an offset (or says it is done).
  void on(snapshot_ack_msg m) {
    if (snapshot_wire_.empty() || m.index != snapshot_wire_index_) return;  // one we no longer hold
    if (m.next_offset >= snapshot_wire_.size()) return;
    send_snapshot_chunk(index_of(m.from), m.next_offset, /*announce=*/false);
  }

  struct promise_part {
    slot_t asked_from = 0;           ///< the slot the last continuation asked from (0: none yet)
    std::vector<log_entry> entries;  ///< the parts received so far
  };
  struct snapshot_assembly {
    slot_t index = 0;             ///< the snapshot's last slot
    std::uint64_t total = 0;      ///< its encoded size
    std::uint32_t total_crc = 0;  ///< CRC-32C of all of its bytes
    std::string bytes;            ///< the prefix received so far
  };

  // Configuration and identity.
  replica_options opts_;    ///< validated options
  std::size_t self_ = 0;    ///< this replica's index in `opts_.nodes`
  std::size_t quorum_ = 1;  ///< votes needed: a majority (a test mutation lowers it)
  std::mt19937_64 rng_;     ///< election back-off

  // Role and ballots.
  role role_ = role::follower;     ///< follower, candidate or leader
  ballot promised_;                ///< the highest ballot promised (durable through `out_.promise`)
  ballot highest_seen_;            ///< the highest ballot seen in any message; a new election goes above it
  ballot my_ballot_;               ///< the ballot of this replica's last election
  ballot leader_ballot_;           ///< the ballot of the leader it follows
  std::optional<node_id> leader_;  ///< the leader it follows (itself when leading), if known

  // Time, in ticks.
  std::uint64_t now_ = 0;                  ///< ticks since start
  std::uint64_t election_deadline_ = 0;    ///< a follower or candidate campaigns at this tick
  std::uint64_t last_leader_contact_ = 0;  ///< tick of the last message from the leader it follows
  std::uint64_t heartbeat_due_ = 0;        ///< leader: tick of the next heartbeat and retransmit pass
  std::uint64_t leader_since_ = 0;         ///< leader: tick it was elected
  std::uint64_t catchup_asked_ = 0;        ///< tick of the outstanding catch-up request (0: none)
  slot_t catchup_asked_index_ = 0;         ///< the chosen index that request was made at

  // The log: entries, chosen marker and index, the state machine, dedupe, compaction, and the
  // writes (entries, commit index, snapshot) and applied commands queued for the next ready.
  internal::replica_log<StateMachine> log_;  ///< see log.hpp for its invariants

  // Phase 1 (candidate).
  std::uint64_t promise_votes_ = 0;              ///< bit i: replica i promised `my_ballot_`
  std::map<slot_t, log_entry> promise_entries_;  ///< the highest-ranked value reported per open slot

  // Leader.
  std::deque<paxos::command> pending_;  ///< commands queued for the next batches
  internal::leader_progress progress_;  ///< proposals in flight, next slot, peers heard, snapshot transfers

  // The ready cycle.
  paxos::ready out_;                        ///< work accumulated for the next `ready()`
  bool self_promise_pending_ = false;       ///< its own promise counts once the next ready is durable
  bool inflight_self_promise_ = false;      ///< ...and that ready was handed out, awaiting `advance()`
  bool inflight_snapshot_ = false;          ///< the ready handed out carries a snapshot: compact on `advance()`
  std::vector<slot_t> self_acks_pending_;   ///< its own accepts, counted once the next ready is durable
  std::vector<slot_t> inflight_self_acks_;  ///< ...those of the ready handed out, awaiting `advance()`

  replica_stats stats_;                                    ///< counters by reason
  std::size_t pending_bytes_ = 0;                          ///< encoded bytes of `pending_`
  ballot promise_parts_ballot_;                            ///< the ballot `promise_parts_` belong to
  std::vector<promise_part> promise_parts_;                ///< per voter: a promise tail arriving in parts
  std::string snapshot_wire_;                              ///< the log's latest snapshot encoded, for chunked sends
  std::uint32_t snapshot_wire_crc_ = 0;                    ///< CRC-32C of `snapshot_wire_`
  slot_t snapshot_wire_index_ = 0;                         ///< the snapshot `snapshot_wire_` holds
  std::optional<snapshot_assembly> assembly_;              ///< a snapshot being received in chunks
  testing::mutation mutations_ = testing::mutation::none;  // test-only bugs (see testing/mutations.hpp)
};

// A friend class rather than a friend function template: clang 16 calls a call of a constrained
// friend function template ambiguous.
struct testing::mutation_access {
  template <state_machine StateMachine>
  static void set(replica<StateMachine>& r, testing::mutation m) noexcept {
    r.mutations_ = m;
    const std::size_t majority = r.opts_.nodes.size() / 2 + 1;
    r.quorum_ =
        testing::has(m, testing::mutation::quorum_minus_one) ? std::max<std::size_t>(1, majority - 1) : majority;
  }
};

template <state_machine StateMachine>
void testing::set_mutations(replica<StateMachine>& r, testing::mutation m) noexcept {
  testing::mutation_access::set(r, m);
}

}  // namespace distkit::inline v0::paxos
