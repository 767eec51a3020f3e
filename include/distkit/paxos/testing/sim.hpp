// SPDX-License-Identifier: MIT
// distkit/paxos/testing/sim.hpp: a seeded, single-threaded simulation of a Paxos cluster under
// faults, with safety invariants checked at every step and a linearizability check of the
// clients. The replicas run the real core, the real `persist` and (optionally) the real
// `file_storage` over a crashing in-memory file system.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "distkit/detail/endian.hpp"
#include "distkit/detail/error.hpp"
#include "distkit/hash.hpp"
#include "distkit/paxos/concepts.hpp"
#include "distkit/paxos/kv_state_machine.hpp"
#include "distkit/paxos/persist.hpp"
#include "distkit/paxos/replica.hpp"
#include "distkit/paxos/storage.hpp"
#include "distkit/paxos/testing/linearizability.hpp"
#include "distkit/paxos/testing/memory_file_layer.hpp"
#include "distkit/paxos/testing/mutations.hpp"

namespace distkit::inline v0::paxos::testing {

/// @brief The client side of a simulation: makes commands and turns (command, result) into
/// operations of a linearizability model.
///
/// Requires `W::model` (a `linearizability_model`), `w.next(std::mt19937_64&, client, seq)
/// -> std::string` and `w.to_op(command, std::optional<std::string> result)
/// -> history_op<model::input, model::output>` (a missing result: the outcome is unknown).
template <class W>
concept sim_workload = linearizability_model<typename W::model> &&
                       requires(W& w, std::mt19937_64& rng, const std::string& cmd, std::optional<std::string> res) {
                         { w.next(rng, std::uint64_t{}, std::uint64_t{}) } -> std::convertible_to<std::string>;
                         {
                           w.to_op(cmd, res)
                         } -> std::same_as<history_op<typename W::model::input, typename W::model::output>>;
                       };

/// A workload of get/put/append/cas over a few keys for `kv_state_machine`; every written
/// value is unique, so a stale or lost write shows in the history.
struct kv_workload {
  using model = kv_model;
  std::size_t keys = 3;

  auto next(std::mt19937_64& rng, std::uint64_t client, std::uint64_t seq) const -> std::string {
    std::string key = "k" + std::to_string(rng() % keys);
    std::string val = std::to_string(client) + "." + std::to_string(seq) + ";";
    switch (rng() % 8) {
      case 0:
      case 1:
      case 2:
        return kv_state_machine::encode_get(key);
      case 3:
      case 4:
        return kv_state_machine::encode_put(key, val);
      case 5:
      case 6:
        return kv_state_machine::encode_append(key, val);
      default: {
        // cas from a value a client may have written (or from "") to a fresh one
        std::string expected =
            (rng() % 3 == 0) ? std::string{} : std::to_string(rng() % 4) + "." + std::to_string(rng() % 4) + ";";
        return kv_state_machine::encode_cas(key, expected, val);
      }
    }
  }
  auto to_op(const std::string& command, std::optional<std::string> result) const
      -> history_op<model::input, model::output> {
    history_op<model::input, model::output> op;
    paxos::internal::reader r(command);
    auto kind = static_cast<kv_op>(r.u8());
    op.input.key = r.bytes();
    auto a = r.bytes();
    auto b = r.bytes();
    switch (kind) {
      case kv_op::get:
        op.input.kind = model::op::get;
        break;
      case kv_op::put:
        op.input.kind = model::op::put;
        op.input.value = a;
        break;
      case kv_op::append:
        op.input.kind = model::op::append;
        op.input.value = a;
        break;
      case kv_op::cas:
        op.input.kind = model::op::cas;
        op.input.expected = a;
        op.input.value = b;
        break;
    }
    if (!result) {
      op.output.unknown = true;
    } else {
      op.output.value = *result;
      op.output.ok = *result == "1";
    }
    return op;
  }
};
static_assert(sim_workload<kv_workload>);

/// The storage each simulated replica runs on.
enum class sim_storage : std::uint8_t {
  memory,  ///< `memory_storage`; a mid-write crash keeps a random prefix of the unsynced records
  file,    ///< the real `file_storage` over `memory_file_system`; a mid-write crash fires at a
           ///< random file operation and tears, zero-fills or loses every unsynced byte
};

/// Knobs of a simulation run. Time is in abstract units; a tick is `tick` units (skewed per
/// replica by up to ±`clock_skew`).
struct sim_options {
  std::size_t replicas = 3;
  std::uint64_t seed = 1;
  std::size_t clients = 4;
  std::size_t ops_per_client = 20;
  std::uint64_t tick = 100;
  double clock_skew = 0.25;
  std::uint64_t min_delay = 1;
  std::uint64_t max_delay = 250;  ///< delays are uniform in [min, max]: messages reorder
  double long_delay = 0.02;       ///< share of messages held back up to `long_delay_max`
  std::uint64_t long_delay_max = 6'000;
  double drop = 0.05;
  double duplicate = 0.03;
  bool faults = true;                         ///< crashes, partitions and clogging
  std::uint64_t fault_interval = 1'500;       ///< mean time between two fault events
  std::uint64_t fault_time = 25'000;          ///< faults happen in [0, fault_time); then all heal
  std::uint64_t max_time = 400'000;           ///< a run that has not finished by then fails
  double torn_crash = 0.5;                    ///< share of crashes that tear the write in progress
  std::uint64_t client_timeout = 3'000;       ///< a client retries elsewhere after this long
  sim_storage storage = sim_storage::memory;  ///< what each replica persists to
  /// Send what `may_send_before_sync` allows before the cycle's sync and defer commit-only
  /// syncs, as `paxos_kv`'s server does.
  bool send_before_sync = false;
  double catchup_late = 0.05;  ///< share of catch-up replies and snapshots also delivered late
  /// Share of catch-up replies and snapshots of which a copy is held back until the addressee
  /// has become leader, then delivered to it; and of catch-up requests held until their sender
  /// leads, then answered.
  double catchup_to_leader = 0.05;
  /// Share of fault events that pause a replica's process (SIGSTOP, a long GC or VM stall),
  /// half the time the one that leads: it neither ticks nor reads while paused; what arrives
  /// for it and the requests of its clients queue; on resume it reads the queue in a burst, in
  /// no particular order across its peers' links, and its first tick comes late (ticks missed
  /// while paused are dropped, as a ticker channel drops them). A paused leader wakes up still
  /// believing it leads, with a peer's answer to an old request in its queue. 0 turns pauses
  /// off and leaves every other fault of a seed as it was.
  double pause = 0.0;
  std::uint64_t pause_max = 6'000;  ///< pauses last uniformly up to this long (at least a tick)
  /// Share of catch-up requests of which `catchup_late_copies` copies are delivered late, each
  /// up to `catchup_late_max` after it was sent (a request stuck in a queue, or resent by a
  /// proxy): each is answered from what is chosen when it arrives, to a sender that may lead
  /// by then, or have led and been replaced without knowing it. 0 leaves the other faults of
  /// a seed as they were.
  double catchup_request_late = 0.0;
  std::size_t catchup_late_copies = 1;
  /// How late a late catch-up request, or a request or reply held until its node leads, can be.
  std::uint64_t catchup_late_max = 6'000;
  mutation mutations = mutation::none;          ///< test-only bugs to re-introduce
  replica_options replica = default_replica();  ///< id/nodes/seed are set per replica

  static auto default_replica() -> replica_options {
    replica_options o;
    o.heartbeat_ticks = 2;
    o.election_ticks = 10;
    o.max_batch = 4;
    o.window = 4;
    o.snapshot_interval = 16;
    o.log_retention = 8;
    o.max_catchup = 8;
    return o;
  }
};

/// Counters of one run.
struct sim_stats {
  std::uint64_t messages = 0, dropped = 0, duplicated = 0;
  std::uint64_t crashes = 0, torn_crashes = 0, restarts = 0;
  std::uint64_t partitions = 0, clogs = 0, one_way_cuts = 0, pauses = 0;
  std::uint64_t completed_ops = 0, pending_ops = 0, duplicates_answered = 0;
  std::uint64_t chosen_slots = 0, syncs = 0, snapshots_sent = 0;
  std::uint64_t snapshots_installed = 0, held_replies_to_leader = 0;
  std::uint64_t late_catchup_requests = 0;  ///< late copies of catch-up requests scheduled
  std::uint64_t end_time = 0;
};

/// The outcome of a run: `ok` when no invariant broke, the history is linearizable, every
/// client finished and the replicas converged.
struct sim_result {
  bool ok = true;
  std::string violation;  ///< the first broken invariant, with the time it was seen
  sim_stats stats;
  check_verdict linearizability = check_verdict::linearizable;
};

/// @brief A deterministic simulation of `replicas` replicas and `clients` clients in one thread.
///
/// A seeded scheduler delivers messages with random delay (reordering), loss and duplication,
/// and delivers catch-up traffic late or to a replica once it leads; fault events crash
/// replicas (between cycles, or mid-write inside `persist`, so the unsynced bytes are lost,
/// torn or zero-filled) and restart them from what their storage (`memory_storage`, or the
/// real `file_storage` over `memory_file_system`) made durable, partition the cluster, cut
/// links one way, and "swizzle-clog" (cut a random set of nodes one by one, then restore them
/// in random order), and (when `pause` is set) stop a replica's process so that it wakes up,
/// perhaps deposed, to a burst of queued messages; each replica's clock runs at its own rate.
/// After every ready cycle it checks: at most one value is chosen per slot (counting durable
/// votes against a true majority), a chosen value never changes, a replica only learns chosen
/// values and never writes another value over a slot it knows is chosen, and replicas at the
/// same chosen index have the same running checksum; after every restart, that no durable
/// acceptance was forgotten. At the end it checks that clients finished, replicas converged and
/// the client history is linearizable.
///
/// @tparam StateMachine models `state_machine` (default `kv_state_machine`).
/// @tparam Workload     models `sim_workload` (default `kv_workload`).
///
/// **Thread safety:** none; each run is independent. Same options => same run.
///
/// @code
/// distkit::paxos::testing::simulation<> sim{{.replicas = 5, .seed = 42}};
/// auto r = sim.run();
/// if (!r.ok) std::cerr << r.violation << '\n';
/// @endcode
template <state_machine StateMachine = kv_state_machine, sim_workload Workload = kv_workload>
class simulation {
 public:
  explicit simulation(sim_options opts, Workload workload = Workload{})
      : opts_(std::move(opts)), workload_(std::move(workload)), rng_(opts_.seed) {
    if (opts_.replicas == 0 || opts_.replicas > 64) {
      distkit::detail::throw_invalid_argument("paxos::simulation", "replicas", "must be in [1, 64]", opts_.replicas);
    }
    if (opts_.tick == 0) distkit::detail::throw_invalid_argument("paxos::simulation", "tick", "must be positive", 0);
    if (opts_.min_delay > opts_.max_delay) {
      distkit::detail::throw_invalid_argument("paxos::simulation", "min_delay", "must not exceed max_delay",
                                              opts_.min_delay);
    }
    if (opts_.clock_skew < 0 || opts_.clock_skew >= 1) {
      distkit::detail::throw_invalid_argument("paxos::simulation", "clock_skew", "must be in [0, 1)", opts_.clock_skew);
    }
  }

  /// Runs the simulation to the end and returns the verdict.
  auto run() -> sim_result {
    setup();
    while (!events_.empty() && result_.ok) {
      std::pop_heap(events_.begin(), events_.end(), later);
      event ev = std::move(events_.back());
      events_.pop_back();
      now_ = ev.time;
      if (now_ > opts_.max_time) {
        fail("the run did not finish by max_time (liveness)");
        break;
      }
      handle(ev);
      if (finished_) break;
    }
    if (result_.ok && !finished_) fail("the run stopped before clients finished (liveness)");
    if (result_.ok) final_checks();
    result_.stats.end_time = now_;
    for (auto& n : nodes_) result_.stats.syncs += n.disk->sync_count();
    return result_;
  }

  /// The history of the last run, as model operations.
  [[nodiscard]] auto history() const
      -> std::vector<history_op<typename Workload::model::input, typename Workload::model::output>> {
    std::vector<history_op<typename Workload::model::input, typename Workload::model::output>> out;
    for (const auto& h : history_) {
      auto op = workload_.to_op(h.command, h.result);
      op.client = h.client;
      op.call = h.call;
      op.ret = h.result ? h.ret : pending_return;
      out.push_back(std::move(op));
    }
    return out;
  }

  /// Human-readable log of the faults injected in the last run.
  [[nodiscard]] auto fault_log() const -> const std::vector<std::string>& { return fault_log_; }
  /// The replica `i` (nullptr while crashed).
  [[nodiscard]] auto replica_at(std::size_t i) const -> const replica<StateMachine>* {
    return nodes_[i].r ? &*nodes_[i].r : nullptr;
  }

 private:
  enum class kind : std::uint8_t { tick, deliver, client, client_timeout, fault, restart, unclog, heal, resume };
  struct event {
    std::uint64_t time = 0;
    std::uint64_t seq = 0;
    kind k = kind::tick;
    std::size_t a = 0;
    std::uint64_t b = 0;
    std::optional<message> msg;
  };
  static auto later(const event& x, const event& y) -> bool {
    return x.time != y.time ? x.time > y.time : x.seq > y.seq;
  }
  // The durable side of one replica: a `memory_storage`, or the real file storage over an
  // in-memory file system. A mid-write crash is armed here and fires inside `persist`.
  class sim_disk {
   public:
    sim_disk(sim_storage kind, std::mt19937_64* rng) : kind_(kind), rng_(rng) {}
    [[nodiscard]] auto load() -> recovered_state {
      if (kind_ == sim_storage::memory) return mem_.load();
      file_.emplace("/replica", memory_file_layer{&fs_});
      return file_->load();
    }
    void save_promise(const ballot& b) { kind_ == sim_storage::memory ? mem_.save_promise(b) : file_->save_promise(b); }
    void append(std::span<const log_entry> es) { kind_ == sim_storage::memory ? mem_.append(es) : file_->append(es); }
    void save_commit(slot_t c) { kind_ == sim_storage::memory ? mem_.save_commit(c) : file_->save_commit(c); }
    void save_snapshot(const snapshot& s) {
      kind_ == sim_storage::memory ? mem_.save_snapshot(s) : file_->save_snapshot(s);
    }
    void sync() {
      if (kind_ == sim_storage::file) {
        file_->sync();
        return;
      }
      if (armed_ != 0 && --armed_ == 0) {
        (void)mem_.crash_torn(*rng_);  // a random prefix of the unsynced records survives
        throw simulated_crash{};
      }
      mem_.sync();
    }
    /// Crash during a later write-back (at a random file operation for the file storage).
    void arm() {
      if (kind_ == sim_storage::file) {
        fs_.crash_at_step(std::uniform_int_distribution<std::uint64_t>(1, 12)(*rng_));
      } else {
        armed_ = std::uniform_int_distribution<int>(1, 4)(*rng_);
      }
    }
    void disarm() {
      armed_ = 0;
      fs_.disarm();
    }
    /// The process died: unsynced writes are lost (clean) or torn at random (mid-write).
    void crash(bool clean) {
      retire();
      if (kind_ == sim_storage::memory) {
        if (clean) mem_.crash();
        return;
      }
      file_.reset();
      if (clean) {
        fs_.crash(crash_shape{});
      } else {
        fs_.crash(*rng_);
      }
    }
    /// What a restart would recover (without keeping a storage open).
    [[nodiscard]] auto durable() -> recovered_state {
      if (kind_ == sim_storage::memory) return mem_.load();
      memory_file_storage probe{"/replica", memory_file_layer{&fs_}};
      return probe.load();
    }
    [[nodiscard]] auto sync_count() const noexcept -> std::uint64_t {
      return kind_ == sim_storage::memory ? mem_.sync_count() : syncs_before_ + (file_ ? file_->sync_count() : 0);
    }

   private:
    void retire() {
      if (file_) syncs_before_ += file_->sync_count();
    }

    sim_storage kind_;
    std::mt19937_64* rng_;
    memory_storage mem_;
    memory_file_system fs_;
    std::optional<memory_file_storage> file_;
    int armed_ = 0;  // a mid-write crash fires at this many syncs from now (0: none)
    std::uint64_t syncs_before_ = 0;
  };

  // A client request in a paused server's socket: read on resume even if its client gave up.
  struct queued_request {
    std::size_t client = 0;
    std::uint64_t attempt = 0;
    std::uint64_t wire_client = 0;  // the client id proposed (a session, or the registration id)
    std::uint64_t seq = 0;
    std::string command;
  };
  struct sim_node {
    std::optional<replica<StateMachine>> r;
    std::unique_ptr<sim_disk> disk;
    std::uint64_t period = 100;
    std::uint64_t incarnation = 0;
    slot_t checked = 0;
    bool was_leader = false;
    std::vector<message> held;                 // catch-up replies delivered once this replica leads
    bool paused = false;                       // its process is stopped: no ticks, no reads
    std::vector<message> inbox;                // what its peers sent while it was paused, read on resume
    std::vector<queued_request> client_inbox;  // client requests that arrived while paused
  };
  struct client {
    std::uint64_t id = 0;
    std::optional<std::uint64_t> session;  // with client sessions: the id the log gave it
    std::uint64_t nonce = 0;               // with client sessions: its registration secret
    std::uint64_t seq = 0;
    std::size_t done = 0;
    std::optional<std::size_t> op;  // index into history_
    std::size_t target = 0;
    std::uint64_t attempt = 0;
    bool waiting = false;
  };
  struct hist {
    std::uint64_t client = 0;
    std::string command;
    std::optional<std::string> result;
    std::uint64_t call = 0, ret = 0;
  };
  struct votes {
    std::uint64_t value = 0;
    std::uint64_t mask = 0;
  };

  void fail(const std::string& what) {
    if (!result_.ok) return;
    result_.ok = false;
    std::ostringstream s;
    s << "seed " << opts_.seed << ", " << opts_.replicas << " replicas, time " << now_ << ": " << what;
    result_.violation = s.str();
  }

  void schedule(std::uint64_t t, kind k, std::size_t a = 0, std::uint64_t b = 0, std::optional<message> m = {}) {
    events_.push_back(event{t, seq_++, k, a, b, std::move(m)});
    std::push_heap(events_.begin(), events_.end(), later);
  }
  auto uniform(std::uint64_t lo, std::uint64_t hi) -> std::uint64_t {
    return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng_);
  }
  auto chance(double p) -> bool { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

  auto make_options(std::size_t i) -> replica_options {
    auto o = opts_.replica;
    o.id = static_cast<node_id>(i + 1);
    o.nodes.clear();
    for (std::size_t j = 0; j < opts_.replicas; ++j) o.nodes.push_back(static_cast<node_id>(j + 1));
    o.seed = opts_.seed * 1000003ULL + nodes_[i].incarnation;
    return o;
  }

  void setup() {
    nodes_ = std::vector<sim_node>(opts_.replicas);
    cut_.assign(opts_.replicas * opts_.replicas, 0);
    promise_seen_.assign(opts_.replicas, ballot{});
    voted_.assign(opts_.replicas, {});
    majority_ = opts_.replicas / 2 + 1;
    for (std::size_t i = 0; i < opts_.replicas; ++i) {
      double skew = std::uniform_real_distribution<double>(-opts_.clock_skew, opts_.clock_skew)(rng_);
      nodes_[i].period =
          std::max<std::uint64_t>(1, static_cast<std::uint64_t>(static_cast<double>(opts_.tick) * (1 + skew)));
      nodes_[i].disk = std::make_unique<sim_disk>(opts_.storage, &rng_);
      start_replica(i);
      schedule(uniform(1, nodes_[i].period), kind::tick, i);
    }
    clients_.resize(opts_.clients);
    for (std::size_t c = 0; c < opts_.clients; ++c) {
      clients_[c].id = c + 1;
      clients_[c].nonce = (opts_.seed * 0x9E3779B97F4A7C15ULL) ^ ((c + 1) * 0xBF58476D1CE4E5B9ULL);  // distinct
      clients_[c].target = c % opts_.replicas;
      schedule(uniform(1, 5 * opts_.tick), kind::client, c);
    }
    if (opts_.faults && opts_.fault_time > 0) schedule(next_fault_time(), kind::fault);
    schedule(opts_.fault_time, kind::heal, 0, 1);
  }

  auto next_fault_time() -> std::uint64_t {
    return now_ + 1 + std::exponential_distribution<double>(1.0 / static_cast<double>(opts_.fault_interval))(rng_);
  }
  auto in_fault_phase() const -> bool { return opts_.faults && now_ < opts_.fault_time; }

  // ---- event handling -------------------------------------------------------------------

  void handle(event& ev) {
    switch (ev.k) {
      case kind::tick: {
        auto& n = nodes_[ev.a];
        if (n.r && ev.b == n.incarnation) {
          if (!n.paused) {
            n.r->tick();
            drive(ev.a);
          }
          schedule(now_ + n.period, kind::tick, ev.a, n.incarnation);
        }
        if (all_done() && now_ >= opts_.fault_time && converged()) finished_ = true;
        break;
      }
      case kind::deliver: {
        auto to = message_to(*ev.msg) - 1;
        auto& n = nodes_[to];
        if (n.r && n.paused) {
          n.inbox.push_back(std::move(*ev.msg));
        } else if (n.r) {
          n.r->step(std::move(*ev.msg));
          drive(to);
        }
        break;
      }
      case kind::client:
        client_submit(ev.a);
        break;
      case kind::client_timeout: {
        auto& c = clients_[ev.a];
        if (c.waiting && c.attempt == ev.b) {
          c.waiting = false;
          c.target = uniform(0, opts_.replicas - 1);
          client_submit(ev.a);
        }
        break;
      }
      case kind::fault:
        if (in_fault_phase()) {
          inject_fault();
          schedule(next_fault_time(), kind::fault);
        }
        break;
      case kind::restart:
        restart(ev.a);
        break;
      case kind::resume:
        resume(ev.a);
        break;
      case kind::unclog:
        change_links(ev.a, ev.b, -1);
        break;
      case kind::heal:
        if (ev.b == 1) {
          end_faults();
        } else if (ev.b == 2) {
          if (in_fault_phase()) clog(ev.a, +1);
        } else {
          clog(ev.a, -1);
        }
        break;
    }
  }

  void send(message m) {
    ++result_.stats.messages;
    const auto* chunk = std::get_if<snapshot_chunk_msg>(&m);
    const bool learner =
        std::holds_alternative<snapshot_msg>(m) || std::holds_alternative<catchup_reply_msg>(m) || chunk != nullptr;
    if (std::holds_alternative<snapshot_msg>(m) || (chunk && chunk->offset == 0 && chunk->bytes.empty())) {
      ++result_.stats.snapshots_sent;  // a whole snapshot, or the announcement of a chunked one
    }
    auto from = message_from(m) - 1;
    auto to = message_to(m) - 1;
    bool faulty = in_fault_phase();
    if (learner && faulty) {
      // Learner traffic about chosen values, the kind that once moved a leader's chosen index
      // past its next slot: delivered late, or held until the addressee leads.
      if (chance(opts_.catchup_late)) {
        schedule(now_ + uniform(opts_.max_delay, std::max(opts_.max_delay, opts_.long_delay_max)), kind::deliver, 0, 0,
                 m);
      }
      if (chance(opts_.catchup_to_leader)) nodes_[to].held.push_back(m);
    }
    if (faulty && opts_.catchup_request_late > 0 && std::holds_alternative<catchup_request_msg>(m) &&
        chance(opts_.catchup_request_late)) {
      // Copies of the request stuck in a queue: answered long after, from what is chosen then,
      // to a sender that may lead by now, or have led and been replaced without knowing it.
      result_.stats.late_catchup_requests += opts_.catchup_late_copies;
      for (std::size_t k = 0; k < opts_.catchup_late_copies; ++k) {
        schedule(now_ + uniform(opts_.max_delay, std::max(opts_.max_delay, opts_.catchup_late_max)), kind::deliver, 0,
                 0, m);
      }
    }
    if (faulty && std::holds_alternative<catchup_request_msg>(m) && chance(opts_.catchup_to_leader)) {
      // A request made while following, answered once its sender leads: the reply is built
      // from what is chosen then and reaches a leader.
      nodes_[from].held.push_back(m);
    }
    if (cut_[from * opts_.replicas + to] > 0 || (faulty && chance(opts_.drop))) {
      ++result_.stats.dropped;
      return;
    }
    if (faulty && chance(opts_.duplicate)) {
      ++result_.stats.duplicated;
      schedule(now_ + delay(faulty), kind::deliver, 0, 0, m);
    }
    schedule(now_ + delay(faulty), kind::deliver, 0, 0, std::move(m));
  }

  auto delay(bool faulty) -> std::uint64_t {
    if (faulty && chance(opts_.long_delay))
      return uniform(opts_.max_delay, std::max(opts_.max_delay, opts_.long_delay_max));
    return uniform(opts_.min_delay, opts_.max_delay);
  }

  /// Runs the replica's ready cycles through the real `persist`, checking invariants after
  /// each; with `send_before_sync`, as the server does, some messages leave before the sync.
  void drive(std::size_t i) {
    auto& n = nodes_[i];
    while (n.r && n.r->has_ready()) {
      auto rd = n.r->ready();
      std::vector<bool> sent_early;
      if (opts_.send_before_sync && rd.needs_sync()) {
        sent_early.assign(rd.messages.size(), false);
        for (std::size_t k = 0; k < rd.messages.size(); ++k) {
          if (may_send_before_sync(rd, rd.messages[k])) {
            sent_early[k] = true;
            send(rd.messages[k]);
          }
        }
      }
      try {
        testing::persist(*n.disk, rd, opts_.mutations,
                         opts_.send_before_sync ? commit_sync::defer : commit_sync::always);
      } catch (const simulated_crash&) {
        // Crash in the middle of the write-back: what reached the disk is torn at random.
        // Acceptances that survived count as votes even though none was acknowledged.
        n.disk->crash(false);
        n.r.reset();
        record_durable_votes(i);
        ++result_.stats.torn_crashes;
        crash(i, false);
        return;
      }
      if (rd.snap) ++result_.stats.snapshots_installed;
      for (const auto& e : rd.entries) {
        if (e.accepted.valid() && !e.chosen) record_vote(i, e);
      }
      check_writes(i, rd.entries);
      for (std::size_t k = 0; k < rd.messages.size(); ++k) {
        auto& m = rd.messages[k];
        if (const auto* p = std::get_if<promise_msg>(&m); p && p->ok) {
          promise_seen_[i] = std::max(promise_seen_[i], p->bal);
        }
        if (sent_early.empty() || !sent_early[k]) send(std::move(m));
      }
      for (auto& a : rd.applied) deliver_result(i, a);
      n.r->advance();
      check_learned(i);
    }
    if (n.r) {
      const bool leads = n.r->is_leader();
      if (leads && !n.was_leader && !n.held.empty()) {
        for (auto& m : n.held) {
          ++result_.stats.held_replies_to_leader;
          // Like a peer's queue that drains when a link heals: soon, or after a long while.
          schedule(now_ + uniform(opts_.min_delay, std::max(opts_.max_delay, opts_.catchup_late_max)), kind::deliver, 0,
                   0, std::move(m));
        }
        n.held.clear();
      }
      n.was_leader = leads;
    }
  }

  /// After a mid-write crash: every acceptance the disk kept is a vote, acknowledged or not.
  void record_durable_votes(std::size_t i) {
    recovered_state rs;
    try {
      rs = nodes_[i].disk->durable();
    } catch (const std::exception& e) {
      fail("replica " + std::to_string(i + 1) + " cannot recover its storage after a crash: " + e.what());
      return;
    }
    for (const auto& e : rs.entries) {
      if (!e.accepted.valid() || e.chosen) continue;
      auto it = votes_.find({e.slot, e.accepted});
      if (it != votes_.end() && (it->second.mask & (std::uint64_t{1} << i)) != 0) continue;
      record_vote(i, e);
    }
  }

  void start_replica(std::size_t i) {
    auto& n = nodes_[i];
    try {
      n.r.emplace(make_options(i), StateMachine{}, n.disk->load());
    } catch (const std::exception& e) {
      fail("replica " + std::to_string(i + 1) + " cannot recover its storage: " + e.what());
      return;
    }
    if (opts_.mutations != mutation::none) set_mutations(*n.r, opts_.mutations);
    n.was_leader = false;
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

  /// A replica never writes a value other than the chosen one into a slot it knows is chosen.
  void check_writes(std::size_t i, const std::vector<log_entry>& entries) {
    const slot_t known = nodes_[i].r->chosen_index();
    for (std::size_t k = entries.size(); k-- > 0;) {
      const auto& e = entries[k];
      if (e.slot > known) continue;
      auto it = chosen_.find(e.slot);
      if (it != chosen_.end() && it->second != value_hash(e.value)) {
        fail("replica " + std::to_string(i + 1) + " wrote another value over slot " + std::to_string(e.slot) +
             ", which it knows is chosen");
        return;
      }
    }
  }

  /// After a restart: an acceptor never forgets an acceptance it made durable, unless it
  /// knows the slot is chosen (recovered chosen index or chosen marker).
  void check_recovered_votes(std::size_t i) {
    const auto& r = *nodes_[i].r;
    for (const auto& [slot, b] : voted_[i]) {
      if (slot <= r.chosen_index()) continue;
      auto e = r.entry_at(slot);
      if (!e || (!e->chosen && e->accepted < b)) {
        fail("replica " + std::to_string(i + 1) + " forgot its acceptance of slot " + std::to_string(slot) +
             " at ballot " + std::to_string(b.counter) + "." + std::to_string(b.node) + " across a restart");
        return;
      }
    }
  }

  void record_vote(std::size_t voter, const log_entry& e) {
    if (e.accepted < promise_seen_[voter]) {
      fail("replica " + std::to_string(voter + 1) + " accepted slot " + std::to_string(e.slot) +
           " below a ballot it had promised (a promise was forgotten)");
      return;
    }
    auto h = value_hash(e.value);
    auto& v = votes_[{e.slot, e.accepted}];
    if (v.mask != 0 && v.value != h) {
      fail("two values proposed for slot " + std::to_string(e.slot) + " at one ballot");
      return;
    }
    v.value = h;
    v.mask |= std::uint64_t{1} << voter;
    auto& mine = voted_[voter][e.slot];
    mine = std::max(mine, e.accepted);
    if (static_cast<std::size_t>(std::popcount(v.mask)) >= majority_) {
      auto [it, inserted] = chosen_.emplace(e.slot, h);
      if (!inserted && it->second != h) {
        fail("slot " + std::to_string(e.slot) + ": a second value was chosen (a majority accepted it)");
      }
    }
  }

  void check_learned(std::size_t i) {
    auto& n = nodes_[i];
    const auto& r = *n.r;
    for (slot_t s = n.checked + 1; s <= r.chosen_index(); ++s) {
      auto e = r.entry_at(s);
      if (!e) continue;  // covered by a snapshot
      auto it = chosen_.find(s);
      if (it == chosen_.end()) {
        fail("replica " + std::to_string(i + 1) + " learned slot " + std::to_string(s) +
             " but no majority accepted any value there");
        return;
      }
      if (it->second != value_hash(e->value)) {
        fail("replica " + std::to_string(i + 1) + " learned a value for slot " + std::to_string(s) +
             " that differs from the chosen one");
        return;
      }
    }
    n.checked = std::max(n.checked, r.chosen_index());
    result_.stats.chosen_slots = std::max<std::uint64_t>(result_.stats.chosen_slots, r.chosen_index());
    auto [it, inserted] = checksums_.emplace(r.chosen_index(), r.checksum());
    if (!inserted && it->second != r.checksum()) {
      fail("replica " + std::to_string(i + 1) + " applied a different log prefix (checksum at slot " +
           std::to_string(r.chosen_index()) + ")");
    }
  }

  // ---- clients --------------------------------------------------------------------------

  void client_submit(std::size_t ci) {
    auto& c = clients_[ci];
    if (c.waiting) return;
    if (registering(c)) {
      if (c.done >= opts_.ops_per_client) return;
    } else if (!c.op) {
      if (c.done >= opts_.ops_per_client) return;
      ++c.seq;
      hist h;
      h.client = c.id;
      h.command = workload_.next(rng_, c.id, c.seq);
      h.call = ++history_clock_;
      c.op = history_.size();
      history_.push_back(std::move(h));
    }
    auto& n = nodes_[c.target];
    if (n.paused) {  // the request waits in the stopped server's socket until it resumes
      c.waiting = true;
      ++c.attempt;
      schedule(now_ + opts_.client_timeout, kind::client_timeout, ci, c.attempt);
      n.client_inbox.push_back(queued_request{ci, c.attempt, wire_client(c), wire_seq(c), wire_command(c)});
      return;
    }
    client_propose(ci);
  }

  /// Hands client `ci`'s current command to its target replica.
  void client_propose(std::size_t ci) {
    auto& c = clients_[ci];
    auto& n = nodes_[c.target];
    if (!n.r) {
      c.target = uniform(0, opts_.replicas - 1);
      schedule(now_ + opts_.tick, kind::client, ci);
      return;
    }
    auto st = n.r->propose(wire_client(c), wire_seq(c), wire_command(c));
    if (st == propose_status::accepted) {
      c.waiting = true;
      ++c.attempt;
      schedule(now_ + opts_.client_timeout, kind::client_timeout, ci, c.attempt);
      drive(c.target);
      return;
    }
    auto hint = n.r->leader_hint();
    if (st == propose_status::not_leader && hint && *hint != n.r->id()) {
      c.target = *hint - 1;
    } else {
      c.target = uniform(0, opts_.replicas - 1);
    }
    schedule(now_ + opts_.tick, kind::client, ci);
  }

  // With client sessions, a client registers first and then proposes under its session.
  [[nodiscard]] auto registering(const client& c) const -> bool { return opts_.replica.client_sessions && !c.session; }
  [[nodiscard]] auto wire_client(const client& c) const -> std::uint64_t {
    if (!opts_.replica.client_sessions) return c.id;
    return c.session ? *c.session : register_session_client;
  }
  [[nodiscard]] auto wire_seq(const client& c) const -> std::uint64_t { return registering(c) ? c.nonce : c.seq; }
  [[nodiscard]] auto wire_command(const client& c) const -> std::string {
    return registering(c) ? std::string() : history_[*c.op].command;
  }

  /// The client an applied command answers (by session with client sessions).
  [[nodiscard]] auto client_of(const applied_command& a) const -> std::optional<std::size_t> {
    for (std::size_t i = 0; i < clients_.size(); ++i) {
      const auto& c = clients_[i];
      if (opts_.replica.client_sessions
              ? (a.client_id == register_session_client ? c.nonce == a.request_id : c.session == a.client_id)
              : c.id == a.client_id) {
        return i;
      }
    }
    return std::nullopt;
  }

  void deliver_result(std::size_t replica_index, const applied_command& a) {
    const auto ci = client_of(a);
    if (!ci) return;
    auto& c = clients_[*ci];
    if (opts_.replica.client_sessions && a.client_id == register_session_client) {
      if (!c.waiting || c.session || c.target != replica_index) return;
      if (a.result.size() != 8) {
        fail("a session registration answered " + std::to_string(a.result.size()) + " bytes");
        return;
      }
      c.session = distkit::detail::load_le<std::uint64_t>(a.result.data());
      c.waiting = false;
      ++c.attempt;
      schedule(now_ + uniform(0, opts_.tick), kind::client, *ci);
      return;
    }
    if (a.no_session) {
      // No session is evicted or expires in these runs: a refusal means replicas disagree.
      fail("client " + std::to_string(c.id) + "'s live session was refused at slot " + std::to_string(a.slot));
      return;
    }
    if (!c.waiting || !c.op || c.target != replica_index || a.request_id != c.seq) return;
    auto& h = history_[*c.op];
    h.result = a.result;
    h.ret = ++history_clock_;
    if (a.duplicate) ++result_.stats.duplicates_answered;
    ++result_.stats.completed_ops;
    c.waiting = false;
    c.op.reset();
    ++c.done;
    ++c.attempt;
    schedule(now_ + uniform(0, opts_.tick), kind::client, *ci);
  }

  [[nodiscard]] auto all_done() const -> bool {
    return std::all_of(clients_.begin(), clients_.end(),
                       [&](const client& c) { return c.done >= opts_.ops_per_client; });
  }
  [[nodiscard]] auto converged() const -> bool {
    const auto* first = nodes_[0].r ? &*nodes_[0].r : nullptr;
    if (!first) return false;
    for (const auto& n : nodes_) {
      if (!n.r || n.r->chosen_index() != first->chosen_index() || n.r->checksum() != first->checksum()) return false;
    }
    return true;
  }

  // ---- faults ---------------------------------------------------------------------------

  void log_fault(const std::string& s) {
    std::ostringstream o;
    o << "t=" << now_ << " " << s;
    fault_log_.push_back(o.str());
  }

  void crash(std::size_t i, bool clean) {
    auto& n = nodes_[i];
    if (clean) {
      if (!n.r) return;
      n.disk->crash(true);
    }
    n.r.reset();
    n.paused = false;
    n.inbox.clear();
    n.client_inbox.clear();
    ++n.incarnation;
    ++result_.stats.crashes;
    log_fault(std::string(clean ? "crash " : "crash mid-write ") + std::to_string(i + 1));
    schedule(now_ + uniform(opts_.tick, 30 * opts_.tick), kind::restart, i);
  }

  void restart(std::size_t i) {
    auto& n = nodes_[i];
    if (n.r) return;
    start_replica(i);
    if (!n.r) return;
    n.checked = 0;
    ++result_.stats.restarts;
    log_fault("restart " + std::to_string(i + 1));
    check_learned(i);
    check_recovered_votes(i);
    schedule(now_ + uniform(1, n.period), kind::tick, i, n.incarnation);
  }

  void change_links(std::size_t from_mask_or_node, std::uint64_t to_mask, int delta) {
    // a: bitmask of sources, b: bitmask of destinations
    for (std::size_t f = 0; f < opts_.replicas; ++f) {
      if (!(from_mask_or_node & (std::size_t{1} << f))) continue;
      for (std::size_t t = 0; t < opts_.replicas; ++t) {
        if (f != t && (to_mask & (std::uint64_t{1} << t))) {
          auto& c = cut_[f * opts_.replicas + t];
          c = std::max(0, c + delta);
        }
      }
    }
  }
  auto all_mask() const -> std::uint64_t {
    return opts_.replicas == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << opts_.replicas) - 1;
  }

  void inject_fault() {
    if (opts_.pause > 0 && chance(opts_.pause)) {
      pause_one();
      return;
    }
    auto kind_roll = uniform(0, 9);
    auto heal_at = [&] { return now_ + uniform(10 * opts_.tick, 80 * opts_.tick); };
    if (kind_roll <= 2) {  // crash
      auto i = uniform(0, opts_.replicas - 1);
      if (!nodes_[i].r) return;
      if (chance(opts_.torn_crash)) {
        nodes_[i].disk->arm();  // crash during its next write-back
        log_fault("arm mid-write crash of " + std::to_string(i + 1));
      } else {
        crash(i, true);
      }
    } else if (kind_roll <= 4) {  // partition into two sides
      std::uint64_t side = uniform(1, all_mask() - 1);
      std::uint64_t other = all_mask() & ~side;
      change_links(side, other, +1);
      change_links(other, side, +1);
      schedule(heal_at(), kind::unclog, side, other);
      schedule(heal_at(), kind::unclog, other, side);
      ++result_.stats.partitions;
      log_fault("partition " + mask_str(side) + " | " + mask_str(other));
    } else if (kind_roll <= 5) {  // one-way cut
      auto f = uniform(0, opts_.replicas - 1), t = uniform(0, opts_.replicas - 1);
      if (f == t) return;
      change_links(std::size_t{1} << f, std::uint64_t{1} << t, +1);
      schedule(heal_at(), kind::unclog, std::size_t{1} << f, std::uint64_t{1} << t);
      ++result_.stats.one_way_cuts;
      log_fault("cut " + std::to_string(f + 1) + "->" + std::to_string(t + 1));
    } else if (kind_roll <= 7) {  // swizzle-clog
      std::vector<std::size_t> order(opts_.replicas);
      for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
      std::shuffle(order.begin(), order.end(), rng_);
      order.resize(uniform(1, opts_.replicas));
      std::uint64_t t = now_;
      for (auto k : order) {  // clog one by one...
        t += uniform(opts_.tick, 5 * opts_.tick);
        schedule(t, kind::heal, k, 2);
      }
      std::shuffle(order.begin(), order.end(), rng_);
      t += uniform(5 * opts_.tick, 30 * opts_.tick);
      for (auto k : order) {  // ...then restore in another random order
        t += uniform(opts_.tick, 5 * opts_.tick);
        schedule(t, kind::heal, k, 3);
      }
      ++result_.stats.clogs;
      log_fault("swizzle-clog of " + std::to_string(order.size()) + " nodes");
    } else {  // isolate one node
      auto i = uniform(0, opts_.replicas - 1);
      std::uint64_t one = std::uint64_t{1} << i, rest = all_mask() & ~one;
      change_links(one, rest, +1);
      change_links(rest, one, +1);
      auto at = heal_at();
      schedule(at, kind::unclog, one, rest);
      schedule(at, kind::unclog, rest, one);
      ++result_.stats.partitions;
      log_fault("isolate " + std::to_string(i + 1));
    }
  }

  auto mask_str(std::uint64_t m) const -> std::string {
    std::string s = "{";
    for (std::size_t i = 0; i < opts_.replicas; ++i) {
      if (m & (std::uint64_t{1} << i)) s += (s.size() > 1 ? "," : "") + std::to_string(i + 1);
    }
    return s + "}";
  }

  void clog(std::size_t node, int delta) {
    std::uint64_t one = std::uint64_t{1} << node;
    change_links(one, all_mask(), delta);
    change_links(all_mask(), one, delta);
    log_fault(std::string(delta > 0 ? "clog " : "unclog ") + std::to_string(node + 1));
  }

  /// Stops a replica's process for a while: the leader half the time, else any replica.
  void pause_one() {
    std::size_t i = uniform(0, opts_.replicas - 1);
    if (chance(0.5)) {
      for (std::size_t k = 0; k < nodes_.size(); ++k) {
        if (nodes_[k].r && nodes_[k].r->is_leader()) i = k;
      }
    }
    auto& n = nodes_[i];
    if (!n.r || n.paused) return;
    n.paused = true;
    ++result_.stats.pauses;
    log_fault("pause " + std::to_string(i + 1));
    schedule(now_ + uniform(opts_.tick, std::max(opts_.tick, opts_.pause_max)), kind::resume, i);
  }

  /// The process runs again and reads what queued up as an event loop does: one link at a
  /// time, in no particular order of links (each peer's and each client's connection is one),
  /// each link's messages in the order they arrived, with a ready cycle after each message.
  void resume(std::size_t i) {
    auto& n = nodes_[i];
    if (!n.paused) return;
    n.paused = false;
    log_fault("resume " + std::to_string(i + 1));
    auto inbox = std::move(n.inbox);
    auto client_inbox = std::move(n.client_inbox);
    n.inbox.clear();
    n.client_inbox.clear();
    // Links: 0..replicas-1 are peers, replicas+c is client c.
    std::vector<std::size_t> links(opts_.replicas + clients_.size());
    for (std::size_t k = 0; k < links.size(); ++k) links[k] = k;
    std::shuffle(links.begin(), links.end(), rng_);
    const auto incarnation = n.incarnation;
    for (auto link : links) {
      if (link < opts_.replicas) {
        for (auto& m : inbox) {
          if (message_from(m) - 1 != link) continue;
          if (!n.r || n.incarnation != incarnation) return;  // crashed while reading
          n.r->step(std::move(m));
          drive(i);
        }
        continue;
      }
      for (auto& q : client_inbox) {
        if (q.client != link - opts_.replicas) continue;
        if (!n.r || n.incarnation != incarnation) return;
        auto& c = clients_[q.client];
        if (c.waiting && c.attempt == q.attempt && c.target == i) {
          c.waiting = false;
          client_propose(q.client);
        } else {
          // Its client gave up and went elsewhere; the server still reads and proposes it (a
          // retry of the same request id is applied once).
          (void)n.r->propose(q.wire_client, q.seq, std::move(q.command));
          drive(i);
        }
      }
    }
  }

  /// The end of the fault phase: every link heals, every crashed replica restarts.
  void end_faults() {
    std::fill(cut_.begin(), cut_.end(), 0);
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      resume(i);
      nodes_[i].disk->disarm();
      if (!nodes_[i].r) schedule(now_, kind::restart, i);
    }
    log_fault("heal all");
  }

  void final_checks() {
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (!nodes_[i].r) {
        fail("replica " + std::to_string(i + 1) + " still down at the end");
        return;
      }
    }
    if (!converged()) {
      fail("replicas did not converge to one chosen index and checksum");
      return;
    }
    auto h = history();
    for (const auto& op : h) {
      if (op.ret == pending_return) ++result_.stats.pending_ops;
    }
    auto r = check_linearizability<typename Workload::model>(h);
    result_.linearizability = r.verdict;
    if (!r.ok()) fail("the client history is not linearizable (key " + r.failed_partition + ")");
  }

  sim_options opts_;
  Workload workload_;
  std::mt19937_64 rng_;
  std::vector<event> events_;
  std::uint64_t seq_ = 0;
  std::uint64_t now_ = 0;
  std::uint64_t history_clock_ = 0;  // orders invocations and completions strictly
  bool finished_ = false;
  std::vector<sim_node> nodes_;
  std::vector<int> cut_;
  std::size_t majority_ = 1;
  std::vector<client> clients_;
  std::vector<hist> history_;
  std::map<std::pair<slot_t, ballot>, votes> votes_;
  std::map<slot_t, std::uint64_t> chosen_;
  std::vector<ballot> promise_seen_;             // highest promise each replica has sent
  std::vector<std::map<slot_t, ballot>> voted_;  // per replica: highest durable acceptance per slot
  std::map<slot_t, std::uint64_t> checksums_;
  std::vector<std::string> fault_log_;
  sim_result result_;
};

}  // namespace distkit::inline v0::paxos::testing
