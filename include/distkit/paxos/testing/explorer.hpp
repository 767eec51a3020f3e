// SPDX-License-Identifier: MIT
// distkit/paxos/testing/explorer.hpp: a bounded exhaustive explorer of the interleavings of
// messages, timers, client commands and one torn crash over real replicas, with states
// deduplicated by hash and the simulator's safety invariants checked after every step.
#pragma once

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "distkit/detail/error.hpp"
#include "distkit/hash.hpp"
#include "distkit/paxos/kv_state_machine.hpp"
#include "distkit/paxos/message.hpp"
#include "distkit/paxos/persist.hpp"
#include "distkit/paxos/replica.hpp"
#include "distkit/paxos/storage.hpp"
#include "distkit/paxos/testing/mutations.hpp"

namespace distkit::inline v0::paxos::testing {

/// One step of the fixed prefix an exploration starts after (see `explorer_options::prefix`).
struct explorer_prefix_step {
  enum class op : std::uint8_t {
    tick,     ///< let time pass at `node` until it has work
    propose,  ///< propose command `cmd` at `node`
    settle,   ///< deliver every message in flight, and every reply, until none is left
  };
  op kind = op::settle;
  std::uint32_t node = 0;      ///< replica index (0-based)
  std::uint32_t cmd = 0;       ///< command index (0-based)
  std::uint64_t isolated = 0;  ///< settle: messages to or from these replicas (bit i) are dropped
  std::uint64_t held = 0;      ///< settle: messages to these replicas (bit i) stay in flight
  /// settle: messages of these kinds (bit k: the k-th alternative of `message`) stay in flight
  std::uint64_t held_kinds = 0;
};

/// Bounds of an exploration. Every budget is part of the explored state, so the space is
/// finite even without `max_depth`; `max_depth` and `max_states` cut it further.
struct explorer_options {
  std::size_t replicas = 3;              ///< replicas in the cluster (1..8)
  std::size_t commands = 2;              ///< client commands (`put k <i>`), each proposed once at a leader
  std::size_t max_depth = 28;            ///< transitions on one path
  std::uint64_t max_states = 2'000'000;  ///< distinct states before the search stops (reported)
  std::uint32_t ticks = 3;               ///< time steps per replica (see `explorer`)
  std::uint32_t crashes = 1;             ///< crash-restarts, each at any point of a persist or between steps
  std::uint32_t duplicates = 1;          ///< deliveries that leave the message in flight
  std::uint32_t drops = 1;               ///< messages removed without delivery
  std::uint32_t retries = 0;             ///< extra proposals of a command not yet acknowledged
  /// Test-only bugs switched on in every replica and in `testing::persist` (see
  /// `testing::mutation`), to show that the explorer reports the violations they cause.
  mutation mutations = mutation::none;
  replica_options replica = default_replica();  ///< id, nodes and seed are set per replica
  /// Steps taken, without branching, before the exhaustive search starts from the state they
  /// reach (for instance: elect replica 1, choose a command, settle). Empty: start from the
  /// initial state. Prefix steps use no budget except the commands they propose.
  std::vector<explorer_prefix_step> prefix{};

  /// Small timeouts and a snapshot after every applied slot, so elections, compaction and
  /// snapshot transfer all happen within a few steps.
  static auto default_replica() -> replica_options {
    replica_options o;
    o.heartbeat_ticks = 1;
    o.election_ticks = 2;
    o.max_batch = 1;
    o.window = 2;
    o.snapshot_interval = 1;
    o.log_retention = 0;
    o.max_catchup = 4;
    return o;
  }
};

/// The outcome of an exploration.
struct explorer_result {
  bool ok = true;                  ///< no invariant broke in the explored space
  std::string violation;           ///< the first broken invariant
  std::vector<std::string> trace;  ///< the transitions that lead to it, one line each
  std::uint64_t states = 0;        ///< distinct states reached (by hash)
  std::uint64_t transitions = 0;   ///< transitions executed
  std::size_t depth = 0;           ///< deepest path explored (the violation's depth when one is found)
  bool exhausted = true;           ///< false when `max_states` stopped the search
  double seconds = 0;              ///< wall time of the exploration
};

/// @brief A stateless-model-checker-style depth-first search over `replicas` real
/// `replica<StateMachine>` instances, each with its own `memory_storage`.
///
/// A state is every replica (copied), its storage, the multiset of messages in flight, the
/// budgets used and the ghost state of the invariants. From each state the explorer tries every
/// transition:
/// - deliver any message in flight (distinct messages once each), then run the receiver's ready
///   cycles (persist + sync, send, answer clients, advance); messages stay in flight until they
///   are delivered or dropped, so any of them may arrive late and in any order;
/// - deliver a message and keep a copy in flight (a duplicate; `duplicates` budget);
/// - drop a message (`drops` budget);
/// - let time pass at one replica (`ticks` budget per replica): tick it until it has work, at
///   most twice its election timeout, so one step is a heartbeat, a retransmission or an
///   election;
/// - propose the next client command at a leader (and, with `retries`, again at another);
/// - crash a replica and restart it from its storage (`crashes` budget): between two steps, or
///   during the first persist of any of the steps above, keeping each possible prefix of the
///   records that persist writes (a torn save), the messages of that cycle unsent.
///
/// States are deduplicated by a 64-bit hash of their canonical encoding; a state seen before is
/// explored again only when reached with more depth left. The hash covers what each replica
/// shows through its public interface (role, promise, leader, chosen index, checksum, every
/// log entry with its ballot, queued commands, state-machine bytes) and its local clock, but
/// not its private timers and vote tallies: two states that differ only there are explored
/// once. After every transition the explorer checks the simulator's safety invariants: at
/// most one value is chosen per slot (durable acceptances by a majority at one ballot), no
/// acceptance below a promise the acceptor made, every applied slot holds the chosen value,
/// replicas agree on every slot both applied, checksums agree at equal chosen index, and every
/// acknowledged command is in its slot on every replica that applied that slot.
///
/// @tparam StateMachine models `state_machine` (default `kv_state_machine`; the commands are
///         its `put`s).
///
/// **Thread safety:** none; each exploration is independent and deterministic.
///
/// @code
/// distkit::paxos::testing::explorer<> ex{{.commands = 2, .max_depth = 4}};
/// auto r = ex.run();
/// if (!r.ok) for (const auto& line : r.trace) std::cout << line << '\n';
/// @endcode
template <state_machine StateMachine = kv_state_machine>
class explorer {
 public:
  explicit explorer(explorer_options opts) : opts_(std::move(opts)) {
    if (opts_.replicas == 0 || opts_.replicas > 8) {
      distkit::detail::throw_invalid_argument("paxos::testing::explorer", "replicas", "must be in [1, 8]",
                                              opts_.replicas);
    }
    if (opts_.commands > 16) {
      distkit::detail::throw_invalid_argument("paxos::testing::explorer", "commands", "must be at most 16",
                                              opts_.commands);
    }
    majority_ = opts_.replicas / 2 + 1;
    // Slots only hold commands and the no-ops a new leader fills gaps with.
    max_slot_ = 2 * (opts_.commands + opts_.retries) + 4;
  }

  /// Explores the bounded space; stops at the first violation.
  auto run() -> explorer_result {
    const auto start = std::chrono::steady_clock::now();
    result_ = explorer_result{};
    visited_.clear();
    path_.clear();
    world w = initial();
    run_prefix(w);
    if (!w.violation.empty()) {
      result_.ok = false;
      result_.violation = w.violation;
    } else {
      visited_.emplace(digest(w), static_cast<std::uint32_t>(opts_.max_depth));
      result_.states = 1;
      search(w, 0);
    }
    result_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!result_.ok) result_.trace = replay_trace();
    return result_;
  }

 private:
  struct world;

  /// Runs `opts_.prefix`, recording its steps in `path_` (with the tick budget restored).
  void run_prefix(world& w) {
    for (const auto& p : opts_.prefix) {
      if (p.node >= opts_.replicas || p.cmd >= std::max<std::size_t>(opts_.commands, 1)) {
        distkit::detail::throw_invalid_argument("paxos::testing::explorer", "prefix",
                                                "names a replica or command out of range", p.node);
      }
      if (p.kind == explorer_prefix_step::op::settle) {
        for (std::size_t k = 0; k < 1000 && w.violation.empty(); ++k) {
          auto held = [&](const flight& f) {
            return ((p.held >> (message_to(f.msg) - 1)) & 1U) != 0 || ((p.held_kinds >> f.msg.index()) & 1U) != 0;
          };
          auto it = std::find_if_not(w.inflight.begin(), w.inflight.end(), held);
          if (it == w.inflight.end()) break;
          const auto ends =
              (std::uint64_t{1} << (message_from(it->msg) - 1)) | (std::uint64_t{1} << (message_to(it->msg) - 1));
          path_.push_back(action{(ends & p.isolated) ? act::drop : act::deliver, 0, 0, it->hash, 0});
          apply(w, path_.back(), nullptr);
        }
        w.drops = 0;
        continue;
      }
      path_.push_back(p.kind == explorer_prefix_step::op::tick ? action{act::tick, p.node, 0, 0, 0}
                                                               : action{act::propose, p.node, p.cmd, 0, 0});
      apply(w, path_.back(), nullptr);
    }
    for (auto& n : w.nodes) n.ticks_used = 0;
    prefix_length_ = path_.size();
  }

 private:
  // ---- state ----------------------------------------------------------------------------

  struct flight {
    std::uint64_t hash = 0;  // of the message's encoding: identifies it across replays
    message msg;
  };
  struct node_state {
    std::optional<replica<StateMachine>> r;
    memory_storage disk;
    std::uint32_t now = 0;  // ticks since the last restart (the replica's clock)
    std::uint32_t ticks_used = 0;
    std::uint32_t incarnation = 0;
  };
  struct votes {
    std::uint64_t value = 0;
    std::uint64_t mask = 0;
  };
  struct world {
    std::vector<node_state> nodes;
    std::vector<flight> inflight;  // sorted by hash: a canonical multiset
    std::uint32_t crashes = 0, duplicates = 0, drops = 0, retries = 0;
    std::vector<std::uint32_t> proposals;    // per command: how often proposed
    std::vector<std::uint64_t> proposed_at;  // per command: bitmask of replicas it was proposed at
    std::vector<slot_t> acked_slot;          // per command: the slot its answer came from (0: none)
    std::map<std::pair<slot_t, ballot>, votes> votes_at;
    std::map<slot_t, std::uint64_t> chosen;
    std::map<slot_t, std::uint64_t> checksums;
    std::vector<ballot> promise_seen;   // highest ballot each replica promised in a sent message
    std::size_t last_sync_records = 0;  // records written by the first persist of the last step
    std::string violation;
  };

  enum class act : std::uint8_t { deliver, duplicate, drop, tick, propose, restart };
  struct action {
    act kind = act::deliver;
    std::uint32_t node = 0;  // tick/propose/restart: the replica; propose: also `cmd`
    std::uint32_t cmd = 0;   // propose: the command
    std::uint64_t msg = 0;   // deliver/duplicate/drop: the message hash
    std::uint32_t torn = 0;  // 0: no crash; k+1: crash in the first persist, keeping k records
  };

  // ---- persistence ----------------------------------------------------------------------

  /// Forwards the first `limit` records to `s` and drops the rest: a save torn after `limit`
  /// records (storages keep call order, so a crash keeps a prefix of a persist's writes,
  /// across the syncs it makes). Remembers the log entries it let through (they are durable votes).
  class torn_writes {
   public:
    torn_writes(memory_storage& s, std::size_t limit) : s_(s), left_(limit) {}
    [[nodiscard]] auto load() -> recovered_state { return s_.load(); }
    void save_promise(const ballot& b) {
      if (take()) s_.save_promise(b);
    }
    void append(std::span<const log_entry> entries) {
      offered_ += entries.size();
      const std::size_t n = std::min(left_, entries.size());
      left_ -= n;
      s_.append(entries.first(n));
      kept_.insert(kept_.end(), entries.begin(), entries.begin() + static_cast<std::ptrdiff_t>(n));
    }
    void save_commit(slot_t c) {
      if (take()) s_.save_commit(c);
    }
    void save_snapshot(const snapshot& snap) {
      if (take()) s_.save_snapshot(snap);
    }
    void sync() { s_.sync(); }
    [[nodiscard]] auto kept_entries() const -> const std::vector<log_entry>& { return kept_; }
    /// Records the persist wrote (kept or not).
    [[nodiscard]] auto offered() const noexcept -> std::size_t { return offered_; }

   private:
    auto take() -> bool {
      ++offered_;
      if (left_ == 0) return false;
      --left_;
      return true;
    }
    memory_storage& s_;
    std::size_t left_;
    std::size_t offered_ = 0;
    std::vector<log_entry> kept_;
  };

  // ---- setup ----------------------------------------------------------------------------

  auto make_options(std::size_t i, std::uint32_t incarnation) const -> replica_options {
    auto o = opts_.replica;
    o.id = static_cast<node_id>(i + 1);
    o.nodes.clear();
    for (std::size_t j = 0; j < opts_.replicas; ++j) o.nodes.push_back(static_cast<node_id>(j + 1));
    o.seed = 7919ULL * (incarnation + 1);
    return o;
  }

  auto initial() const -> world {
    world w;
    w.nodes.resize(opts_.replicas);
    for (std::size_t i = 0; i < opts_.replicas; ++i) {
      w.nodes[i].r.emplace(make_options(i, 0), StateMachine{}, w.nodes[i].disk.load());
      set_mutations(*w.nodes[i].r, opts_.mutations);
    }
    w.proposals.assign(opts_.commands, 0);
    w.proposed_at.assign(opts_.commands, 0);
    w.acked_slot.assign(opts_.commands, 0);
    w.promise_seen.assign(opts_.replicas, ballot{});
    return w;
  }

  static auto command_text(std::size_t c) -> std::string {
    return kv_state_machine::encode_put("k", "v" + std::to_string(c + 1));
  }

  // ---- transitions ----------------------------------------------------------------------

  static auto find_flight(const world& w, std::uint64_t h) -> std::size_t {
    auto it = std::lower_bound(w.inflight.begin(), w.inflight.end(), h,
                               [](const flight& f, std::uint64_t x) { return f.hash < x; });
    return static_cast<std::size_t>(it - w.inflight.begin());
  }

  static void push_flight(world& w, message m) {
    auto bytes = encode(m);
    std::uint64_t h = xxh3_hash::bytes(bytes.data(), bytes.size());
    auto pos = find_flight(w, h);
    w.inflight.insert(w.inflight.begin() + static_cast<std::ptrdiff_t>(pos), flight{h, std::move(m)});
  }

  /// Applies `a` to `w`; `describe` receives a readable line when not null.
  void apply(world& w, const action& a, std::string* describe) const {
    w.last_sync_records = 0;
    switch (a.kind) {
      case act::deliver:
      case act::duplicate:
      case act::drop: {
        auto pos = find_flight(w, a.msg);
        message m = w.inflight[pos].msg;
        if (describe) {
          *describe = std::string(a.kind == act::deliver     ? "deliver "
                                  : a.kind == act::duplicate ? "duplicate "
                                                             : "drop ") +
                      describe_message(m);
        }
        if (a.kind != act::duplicate) w.inflight.erase(w.inflight.begin() + static_cast<std::ptrdiff_t>(pos));
        if (a.kind == act::duplicate) ++w.duplicates;
        if (a.kind == act::drop) {
          ++w.drops;
          return;
        }
        const std::size_t to = message_to(m) - 1;
        w.nodes[to].r->step(std::move(m));
        drive(w, to, a.torn, describe);
        break;
      }
      case act::tick: {
        auto& n = w.nodes[a.node];
        ++n.ticks_used;
        std::uint32_t k = 0;
        const std::uint32_t limit = 2 * opts_.replica.election_ticks;
        do {
          n.r->tick();
          ++n.now;
          ++k;
        } while (k < limit && !n.r->has_ready());
        if (describe) {
          *describe = "time passes at " + std::to_string(a.node + 1) + " (" + std::to_string(k) + " tick" +
                      (k == 1 ? "" : "s") + ", clock " + std::to_string(n.now) + ")";
        }
        drive(w, a.node, a.torn, describe);
        break;
      }
      case act::propose: {
        auto& n = w.nodes[a.node];
        if (w.proposals[a.cmd] > 0) ++w.retries;
        ++w.proposals[a.cmd];
        w.proposed_at[a.cmd] |= std::uint64_t{1} << a.node;
        auto st = n.r->propose(a.cmd + 1, 1, command_text(a.cmd));
        if (describe) {
          *describe = "propose v" + std::to_string(a.cmd + 1) + " at " + std::to_string(a.node + 1) +
                      (st == propose_status::accepted ? "" : " (refused)");
        }
        drive(w, a.node, a.torn, describe);
        break;
      }
      case act::restart:
        if (describe) *describe = "crash and restart " + std::to_string(a.node + 1) + " between steps";
        restart(w, a.node);
        break;
    }
    if (w.violation.empty()) check(w);
  }

  void restart(world& w, std::size_t i) const {
    auto& n = w.nodes[i];
    ++w.crashes;
    ++n.incarnation;
    n.now = 0;
    n.r.reset();
    n.r.emplace(make_options(i, n.incarnation), StateMachine{}, n.disk.load());
    set_mutations(*n.r, opts_.mutations);
  }

  /// Runs replica `i`'s ready cycles. With `torn` = k+1 the first cycle that persists anything
  /// crashes after k of its records, and the replica restarts from its storage.
  void drive(world& w, std::size_t i, std::uint32_t torn, std::string* describe) const {
    auto& n = w.nodes[i];
    bool first_sync = true;
    while (n.r->has_ready()) {
      auto rd = n.r->ready();
      if (rd.needs_sync()) {
        const bool tear = first_sync && torn != 0;
        torn_writes s(n.disk, tear ? torn - 1 : std::numeric_limits<std::size_t>::max());
        testing::persist(s, rd, opts_.mutations);
        if (first_sync && !tear) w.last_sync_records = s.offered();
        for (const auto& e : s.kept_entries()) record_vote(w, i, e);
        if (tear) {
          if (describe) {
            *describe += "; crash during its persist, " + std::to_string(torn - 1) + " of " +
                         std::to_string(s.offered()) + " records durable; restart";
          }
          restart(w, i);
          return;
        }
        first_sync = false;
      }
      for (auto& m : rd.messages) {
        if (const auto* p = std::get_if<promise_msg>(&m); p && p->ok) {
          w.promise_seen[i] = std::max(w.promise_seen[i], p->bal);
        }
        push_flight(w, std::move(m));
      }
      for (const auto& a : rd.applied) {
        if (a.client_id == 0 || a.client_id > opts_.commands) continue;
        const std::size_t c = a.client_id - 1;
        // The client waits on every replica it proposed at: an answer from one of them is an
        // acknowledgement.
        if ((w.proposed_at[c] >> i) & 1U) {
          if (w.acked_slot[c] == 0) w.acked_slot[c] = a.slot;
        }
      }
      n.r->advance();
    }
  }

  // ---- invariants -----------------------------------------------------------------------

  static auto value_hash(const batch& b) -> std::uint64_t {
    std::uint64_t h = 0x12345678ULL + b.size();
    for (const auto& c : b) {
      h = h * 0x100000001B3ULL ^ c.client_id;
      h = h * 0x100000001B3ULL ^ c.request_id;
      h = h * 0x100000001B3ULL ^ xxh3_hash::bytes(c.payload.data(), c.payload.size());
    }
    return h;
  }

  void fail(world& w, const std::string& what) const {
    if (w.violation.empty()) w.violation = what;
  }

  void record_vote(world& w, std::size_t voter, const log_entry& e) const {
    if (!e.accepted.valid() || e.chosen) return;  // a learned value, not an acceptance
    if (e.accepted < w.promise_seen[voter]) {
      fail(w, "replica " + std::to_string(voter + 1) + " accepted slot " + std::to_string(e.slot) +
                  " below a ballot it had promised (a promise was forgotten)");
      return;
    }
    const auto h = value_hash(e.value);
    auto& v = w.votes_at[{e.slot, e.accepted}];
    if (v.mask != 0 && v.value != h) {
      fail(w, "two values accepted for slot " + std::to_string(e.slot) + " at one ballot");
      return;
    }
    v.value = h;
    v.mask |= std::uint64_t{1} << voter;
    if (static_cast<std::size_t>(std::popcount(v.mask)) >= majority_) {
      auto [it, inserted] = w.chosen.emplace(e.slot, h);
      if (!inserted && it->second != h) {
        fail(w, "slot " + std::to_string(e.slot) + ": a second value was chosen (a majority accepted it)");
      }
    }
  }

  void check(world& w) const {
    for (std::size_t i = 0; i < w.nodes.size() && w.violation.empty(); ++i) {
      const auto& r = *w.nodes[i].r;
      const auto who = "replica " + std::to_string(i + 1);
      for (slot_t s = 1; s <= r.chosen_index(); ++s) {
        auto e = r.entry_at(s);
        if (!e) continue;  // covered by a snapshot
        const auto h = value_hash(e->value);
        auto it = w.chosen.find(s);
        if (it == w.chosen.end()) {
          return fail(w, who + " applied slot " + std::to_string(s) + " but no majority accepted a value there");
        }
        if (it->second != h) {
          return fail(w, who + " applied a value at slot " + std::to_string(s) + " that is not the chosen one");
        }
        for (std::size_t j = 0; j < i; ++j) {
          const auto& o = *w.nodes[j].r;
          if (o.chosen_index() < s) continue;
          auto f = o.entry_at(s);
          if (f && value_hash(f->value) != h) {
            return fail(w, "replicas " + std::to_string(j + 1) + " and " + std::to_string(i + 1) +
                               " applied different values at slot " + std::to_string(s));
          }
        }
        for (std::size_t c = 0; c < opts_.commands; ++c) {
          if (w.acked_slot[c] != s) continue;
          const bool has =
              std::any_of(e->value.begin(), e->value.end(), [&](const command& x) { return x.client_id == c + 1; });
          if (!has) {
            return fail(w, "acknowledged command v" + std::to_string(c + 1) + " is lost: " + who + " applied slot " +
                               std::to_string(s) + " without it");
          }
        }
      }
      auto [it, inserted] = w.checksums.emplace(r.chosen_index(), r.checksum());
      if (!inserted && it->second != r.checksum()) {
        return fail(w, who + " applied a different log prefix (checksum at chosen index " +
                           std::to_string(r.chosen_index()) + ")");
      }
    }
  }

  // ---- hashing --------------------------------------------------------------------------

  auto digest(const world& w) const -> std::uint64_t {
    std::string out;
    paxos::internal::writer wr(out);
    for (const auto& n : w.nodes) {
      const auto& r = *n.r;
      wr.u8(static_cast<std::uint8_t>(r.current_role()));
      wr.bal(r.promised());
      wr.u32(r.leader_hint().value_or(0));
      wr.u64(r.chosen_index());
      wr.u64(r.checksum());
      wr.u64(r.pending_commands());
      wr.u32(n.now);
      wr.u32(n.ticks_used);
      wr.bytes(r.state().snapshot());
      for (slot_t s = 1; s <= max_slot_; ++s) {
        if (auto e = r.entry_at(s)) wr.entry(*e);
      }
      // What a restart would recover.
      auto rs = const_cast<memory_storage&>(n.disk).load();
      wr.bal(rs.promised);
      wr.u64(rs.commit_index);
      wr.u64(rs.snap ? rs.snap->index : 0);
      wr.u32(static_cast<std::uint32_t>(rs.entries.size()));
      for (const auto& e : rs.entries) wr.entry(e);
    }
    wr.u32(static_cast<std::uint32_t>(w.inflight.size()));
    for (const auto& f : w.inflight) wr.u64(f.hash);
    wr.u32(w.crashes);
    wr.u32(w.duplicates);
    wr.u32(w.drops);
    wr.u32(w.retries);
    for (std::size_t c = 0; c < opts_.commands; ++c) {
      wr.u32(w.proposals[c]);
      wr.u64(w.proposed_at[c]);
      wr.u64(w.acked_slot[c]);
    }
    for (const auto& [k, v] : w.votes_at) {
      wr.u64(k.first);
      wr.bal(k.second);
      wr.u64(v.value);
      wr.u64(v.mask);
    }
    for (const auto& [s, h] : w.chosen) {
      wr.u64(s);
      wr.u64(h);
    }
    for (const auto& [s, h] : w.checksums) {
      wr.u64(s);
      wr.u64(h);
    }
    for (const auto& b : w.promise_seen) wr.bal(b);
    return xxh3_hash::bytes(out.data(), out.size());
  }

  // ---- search ---------------------------------------------------------------------------

  auto actions(const world& w) const -> std::vector<action> {
    std::vector<action> out;
    for (std::size_t k = 0; k < w.inflight.size(); ++k) {
      if (k > 0 && w.inflight[k].hash == w.inflight[k - 1].hash) continue;
      const auto h = w.inflight[k].hash;
      out.push_back(action{act::deliver, 0, 0, h, 0});
      if (w.duplicates < opts_.duplicates) out.push_back(action{act::duplicate, 0, 0, h, 0});
      if (w.drops < opts_.drops) out.push_back(action{act::drop, 0, 0, h, 0});
    }
    for (std::uint32_t i = 0; i < w.nodes.size(); ++i) {
      if (w.nodes[i].ticks_used < opts_.ticks) out.push_back(action{act::tick, i, 0, 0, 0});
    }
    for (std::uint32_t i = 0; i < w.nodes.size(); ++i) {
      if (!w.nodes[i].r->is_leader()) continue;
      for (std::uint32_t c = 0; c < opts_.commands; ++c) {
        if ((w.proposed_at[c] >> i) & 1U) continue;
        if (w.proposals[c] == 0) {
          out.push_back(action{act::propose, i, c, 0, 0});
          break;  // commands are proposed in order: the clients are interchangeable
        }
        if (w.acked_slot[c] == 0 && w.retries < opts_.retries) out.push_back(action{act::propose, i, c, 0, 0});
      }
    }
    if (w.crashes < opts_.crashes) {
      for (std::uint32_t i = 0; i < w.nodes.size(); ++i) out.push_back(action{act::restart, i, 0, 0, 0});
    }
    return out;
  }

  /// Depth-first search from `w` at `depth`; returns false once the search must stop.
  auto search(const world& w, std::size_t depth) -> bool {
    if (depth >= opts_.max_depth) return true;
    for (const auto& a : actions(w)) {
      std::size_t records = 0;
      if (!step(w, a, depth, &records)) return false;
      if (a.kind == act::restart || a.kind == act::drop || w.crashes >= opts_.crashes || records == 0) continue;
      // The same step with a crash in its first persist, for every prefix of its records.
      for (std::size_t k = 0; k <= records; ++k) {
        auto torn = a;
        torn.torn = static_cast<std::uint32_t>(k + 1);
        if (!step(w, torn, depth, nullptr)) return false;
      }
    }
    return true;
  }

  auto step(const world& from, const action& a, std::size_t depth, std::size_t* records) -> bool {
    world w = from;
    apply(w, a, nullptr);
    if (records) *records = w.last_sync_records;
    ++result_.transitions;
    path_.push_back(a);
    result_.depth = std::max(result_.depth, depth + 1);
    if (!w.violation.empty()) {
      result_.ok = false;
      result_.violation = w.violation;
      result_.depth = depth + 1;
      return false;
    }
    const auto h = digest(w);
    const auto left = static_cast<std::uint32_t>(opts_.max_depth - depth - 1);
    auto [it, inserted] = visited_.emplace(h, left);
    bool go = inserted;
    if (inserted) {
      ++result_.states;
      if (result_.states >= opts_.max_states) {
        result_.exhausted = false;
        path_.pop_back();
        return false;
      }
    } else if (it->second < left) {
      it->second = left;
      go = true;
    }
    bool cont = true;
    if (go) cont = search(w, depth + 1);
    if (cont) path_.pop_back();
    return cont;
  }

  /// Re-runs the path to the violation, describing each transition.
  auto replay_trace() const -> std::vector<std::string> {
    std::vector<std::string> out;
    world w = initial();
    std::size_t n = 0;
    for (const auto& a : path_) {
      std::string line;
      apply(w, a, &line);
      if (n == prefix_length_ && n != 0) out.push_back("-- the exhaustive search starts here --");
      out.push_back(std::to_string(++n) + ". " + line);
      if (n == prefix_length_) {
        for (auto& node : w.nodes) node.ticks_used = 0;
      }
    }
    return out;
  }

  static auto bal_str(const ballot& b) -> std::string {
    return "(" + std::to_string(b.counter) + "," + std::to_string(b.node) + ")";
  }
  static auto batch_str(const batch& b) -> std::string {
    if (b.empty()) return "no-op";
    std::string s;
    for (const auto& c : b) s += (s.empty() ? "v" : "+v") + std::to_string(c.client_id);
    return s;
  }
  static auto describe_message(const message& m) -> std::string {
    std::ostringstream o;
    o << message_from(m) << "->" << message_to(m) << " ";
    std::visit(
        [&](const auto& x) {
          using kind = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<kind, prepare_msg>) {
            o << "prepare " << bal_str(x.bal) << " from slot " << x.first_slot;
          } else if constexpr (std::is_same_v<kind, promise_msg>) {
            o << "promise " << bal_str(x.bal) << (x.ok ? " ok" : " refused") << " chosen " << x.chosen_index << " [";
            for (const auto& e : x.accepted)
              o << " " << e.slot << ":" << batch_str(e.value) << "@" << bal_str(e.accepted);
            o << " ]";
          } else if constexpr (std::is_same_v<kind, accept_msg>) {
            o << "accept " << bal_str(x.bal) << " slot " << x.slot << " = " << batch_str(x.value) << " commit "
              << x.commit_index;
          } else if constexpr (std::is_same_v<kind, accepted_msg>) {
            o << "accepted " << bal_str(x.bal) << " slot " << x.slot << (x.ok ? " ok" : " refused");
          } else if constexpr (std::is_same_v<kind, heartbeat_msg>) {
            o << "heartbeat " << bal_str(x.bal) << " commit " << x.commit_index;
          } else if constexpr (std::is_same_v<kind, heartbeat_ack_msg>) {
            o << "heartbeat-ack " << bal_str(x.bal) << (x.ok ? " ok" : " refused") << " chosen " << x.chosen_index;
          } else if constexpr (std::is_same_v<kind, catchup_request_msg>) {
            o << "catch-up request from slot " << x.first_slot;
          } else if constexpr (std::is_same_v<kind, catchup_reply_msg>) {
            o << "catch-up reply from slot " << x.first_slot << " [";
            for (const auto& v : x.values) o << " " << batch_str(v);
            o << " ] chosen " << x.chosen_index;
          } else if constexpr (std::is_same_v<kind, snapshot_chunk_msg>) {
            o << "snapshot chunk at " << x.index << " bytes [" << x.offset << ", " << x.offset + x.bytes.size()
              << ") of " << x.total;
          } else if constexpr (std::is_same_v<kind, snapshot_ack_msg>) {
            o << "snapshot ack at " << x.index << " next offset " << x.next_offset;
          } else {
            o << "snapshot at " << x.snap.index;
          }
        },
        m);
    return o.str();
  }

  explorer_options opts_;
  std::size_t majority_ = 1;
  slot_t max_slot_ = 4;                                       // log entries hashed per replica: slots 1..max_slot_
  std::unordered_map<std::uint64_t, std::uint32_t> visited_;  // state hash -> most depth left when seen
  std::vector<action> path_;                                  // the prefix, then the current search path
  std::size_t prefix_length_ = 0;
  explorer_result result_;
};

}  // namespace distkit::inline v0::paxos::testing
