// SPDX-License-Identifier: MIT
// distkit/work_queue.hpp: at-least-once work queues: leases, fenced acks, retries, a dead-letter
// queue, consumer groups, per-key order, delays and deduplication, over a Store policy.
#pragma once

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "distkit/clock.hpp"
#include "distkit/detail/error.hpp"

namespace distkit::inline v0 {

/// Settings shared by every group of one work queue.
struct work_queue_options {
  /// How long a delivery stays invisible to other consumers unless acked, nacked or extended.
  std::chrono::nanoseconds lease = std::chrono::seconds(30);
  /// Deliveries of one message to one group before it moves to that group's dead-letter queue.
  std::uint32_t max_deliver = 5;
  /// A publish repeating the message id of one accepted less than this long ago is a duplicate.
  std::chrono::nanoseconds dedupe_window = std::chrono::minutes(2);
};

/// Per-message options of `publish`.
struct publish_options {
  /// Deduplication id: a second publish with the same id inside the window is not queued again.
  std::optional<std::string> id{};
  /// Messages sharing an ordering key are handed out one at a time per group, in publish order:
  /// the next is delivered only after the previous one is acked or dead-lettered.
  std::optional<std::string> ordering_key{};
  /// Not delivered before this much time has passed.
  std::chrono::nanoseconds delay{0};
};

/// What `publish` did.
struct publish_receipt {
  std::uint64_t seq = 0;   ///< the message's sequence number (the original's, for a duplicate)
  bool duplicate = false;  ///< true if the id was seen inside the dedupe window: nothing was queued
};

/// One delivery of a message to a consumer of a group.
struct delivery {
  std::string group{};
  std::uint64_t seq = 0;
  std::string id{};  ///< the publish id, or the decimal sequence number when none was given
  std::string payload{};
  std::optional<std::string> ordering_key{};
  std::uint32_t attempt = 0;                   ///< 1 for the first delivery, 2 for the first redelivery, ...
  std::uint64_t token = 0;                     ///< fences settlement: only the latest delivery's token is accepted
  std::chrono::nanoseconds lease_deadline{0};  ///< in the queue's Clock time since its epoch
};

/// A message that exhausted `max_deliver`.
struct dead_letter {
  std::uint64_t seq = 0;
  std::string id{};
  std::string payload{};
  std::optional<std::string> ordering_key{};
  std::uint32_t deliveries = 0;
};

/// How an ack, nack or lease extension ended.
enum class settle_result {
  ok,             ///< applied
  dead_lettered,  ///< nack of the last allowed delivery: the message went to the dead-letter queue
  lease_expired,  ///< refused: the lease of this delivery ran out (the message will be redelivered)
  stale,          ///< refused: this delivery was superseded by a redelivery or already settled
  unknown_group,  ///< refused: no such group
};

enum class settle_action { ack, nack, extend };

/// @brief The storage a `work_queue` runs on.
///
/// A store keeps messages, groups and deliveries and applies each operation atomically. Times are
/// the queue Clock's time since its epoch, passed in by the queue. Requires:
/// - `s.add_group(group, now)`;
/// - `s.publish(std::string payload, const publish_options&, const work_queue_options&, now)
///    -> publish_receipt`;
/// - `s.consume(group, consumer, std::size_t max, std::chrono::nanoseconds lease,
///    const work_queue_options&, now) -> std::vector<delivery>`;
/// - `s.settle(group, std::uint64_t seq, std::uint64_t token, settle_action, std::chrono::nanoseconds arg,
///    const work_queue_options&, now) -> settle_result`;
/// - `s.dead_letters(group, const work_queue_options&, now) -> std::vector<dead_letter>`;
/// - `s.pending(group, const work_queue_options&, now) -> std::size_t`.
/// Optional: `s.settle_many(std::span<const delivery>, settle_action, arg, const work_queue_options&, now)
/// -> std::vector<settle_result>`, the settlements applied in order at one time (used by the batch `ack`);
/// `s.publish_many(std::span<std::string>, std::span<const publish_options>, const work_queue_options&, now)
/// -> std::vector<publish_receipt>`, likewise (used by the batch `publish`).
template <class S>
concept work_queue_store =
    requires(S& s, std::string_view group, std::string payload, const publish_options& po, const work_queue_options& o,
             std::chrono::nanoseconds t, std::uint64_t u, std::size_t n, settle_action a) {
      s.add_group(group, t);
      { s.publish(std::move(payload), po, o, t) } -> std::same_as<publish_receipt>;
      { s.consume(group, group, n, t, o, t) } -> std::same_as<std::vector<delivery>>;
      { s.settle(group, u, u, a, t, o, t) } -> std::same_as<settle_result>;
      { s.dead_letters(group, o, t) } -> std::same_as<std::vector<dead_letter>>;
      { s.pending(group, o, t) } -> std::same_as<std::size_t>;
    };

/// @brief The embedded store: everything in memory, one mutex.
///
/// **Thread safety:** every member may be called concurrently. Copies are not shared.
/// **Complexity:** `consume` walks the group's unfinished messages in order, O(unfinished).
class memory_store {
 public:
  memory_store() = default;
  memory_store(const memory_store&) = delete;
  auto operator=(const memory_store&) -> memory_store& = delete;
  memory_store(memory_store&&) = delete;
  auto operator=(memory_store&&) -> memory_store& = delete;

  void add_group(std::string_view group, std::chrono::nanoseconds /*now*/) {
    std::lock_guard lock(mutex_);
    groups_.try_emplace(std::string(group));
  }

  auto publish(std::string payload, const publish_options& po, const work_queue_options& o,
               std::chrono::nanoseconds now) -> publish_receipt {
    std::lock_guard lock(mutex_);
    if (po.id) {
      // Forget ids older than the window, oldest first.
      while (!dedupe_order_.empty() && now - dedupe_order_.front().first >= o.dedupe_window) {
        auto it = dedupe_.find(dedupe_order_.front().second);
        if (it != dedupe_.end() && it->second.first == dedupe_order_.front().first) dedupe_.erase(it);
        dedupe_order_.erase(dedupe_order_.begin());
      }
      if (auto it = dedupe_.find(*po.id); it != dedupe_.end() && now - it->second.first < o.dedupe_window) {
        return {it->second.second, true};
      }
    }
    const std::uint64_t seq = ++last_seq_;
    auto msg = std::make_shared<message>();
    msg->seq = seq;
    msg->id = po.id ? *po.id : std::to_string(seq);
    msg->payload = std::move(payload);
    msg->ordering_key = po.ordering_key;
    if (po.id) {
      dedupe_[*po.id] = {now, seq};
      dedupe_order_.emplace_back(now, *po.id);
    }
    for (auto& [name, g] : groups_)
      g.entries.emplace(seq, entry{msg, now + std::max(po.delay, std::chrono::nanoseconds::zero()), 0, 0, {}, false});
    return {seq, false};
  }

  auto consume(std::string_view group, std::string_view /*consumer*/, std::size_t max, std::chrono::nanoseconds lease,
               const work_queue_options& o, std::chrono::nanoseconds now) -> std::vector<delivery> {
    std::lock_guard lock(mutex_);
    std::vector<delivery> out;
    auto git = groups_.find(group);
    if (git == groups_.end() || max == 0) return out;
    auto& g = git->second;
    sweep(g, o, now);
    std::set<std::string_view> blocked_keys;
    for (auto& [seq, e] : g.entries) {
      const bool key_blocked = e.msg->ordering_key && blocked_keys.count(*e.msg->ordering_key) != 0;
      if (e.msg->ordering_key) blocked_keys.insert(*e.msg->ordering_key);
      if (key_blocked) continue;
      const bool available = e.leased ? e.lease_deadline <= now : e.visible_at <= now;
      if (!available) continue;
      e.leased = true;
      e.deliveries += 1;
      e.token = ++last_token_;
      e.lease_deadline = now + lease;
      out.push_back(delivery{std::string(group), seq, e.msg->id, e.msg->payload, e.msg->ordering_key, e.deliveries,
                             e.token, e.lease_deadline});
      if (out.size() == max) break;
    }
    return out;
  }

  auto settle(std::string_view group, std::uint64_t seq, std::uint64_t token, settle_action action,
              std::chrono::nanoseconds arg, const work_queue_options& o, std::chrono::nanoseconds now)
      -> settle_result {
    std::lock_guard lock(mutex_);
    auto git = groups_.find(group);
    if (git == groups_.end()) return settle_result::unknown_group;
    auto& g = git->second;
    auto it = g.entries.find(seq);
    if (it == g.entries.end() || !it->second.leased || it->second.token != token) return settle_result::stale;
    entry& e = it->second;
    if (e.lease_deadline <= now) {
      // Past the lease the delivery is void even if nobody took the message yet: the consumer
      // may have stalled, and its work must not count.
      if (e.deliveries >= o.max_deliver) to_dead_letters(g, it);
      return settle_result::lease_expired;
    }
    switch (action) {
      case settle_action::ack:
        g.entries.erase(it);
        return settle_result::ok;
      case settle_action::nack:
        if (e.deliveries >= o.max_deliver) {
          to_dead_letters(g, it);
          return settle_result::dead_lettered;
        }
        e.leased = false;
        e.visible_at = now + std::max(arg, std::chrono::nanoseconds::zero());
        return settle_result::ok;
      case settle_action::extend:
        e.lease_deadline = now + arg;
        return settle_result::ok;
    }
    return settle_result::stale;
  }

  auto dead_letters(std::string_view group, const work_queue_options& o, std::chrono::nanoseconds now)
      -> std::vector<dead_letter> {
    std::lock_guard lock(mutex_);
    auto git = groups_.find(group);
    if (git == groups_.end()) return {};
    sweep(git->second, o, now);
    return git->second.dead;
  }

  auto pending(std::string_view group, const work_queue_options& o, std::chrono::nanoseconds now) -> std::size_t {
    std::lock_guard lock(mutex_);
    auto git = groups_.find(group);
    if (git == groups_.end()) return 0;
    sweep(git->second, o, now);
    return git->second.entries.size();
  }

 private:
  struct message {
    std::uint64_t seq = 0;
    std::string id;
    std::string payload;
    std::optional<std::string> ordering_key;
  };
  struct entry {
    std::shared_ptr<const message> msg;
    std::chrono::nanoseconds visible_at{0};
    std::uint32_t deliveries = 0;
    std::uint64_t token = 0;
    std::chrono::nanoseconds lease_deadline{0};
    bool leased = false;
  };
  struct group_state {
    std::map<std::uint64_t, entry> entries;  // unfinished messages, by sequence number
    std::vector<dead_letter> dead;
  };

  static void to_dead_letters(group_state& g, std::map<std::uint64_t, entry>::iterator it) {
    const message& m = *it->second.msg;
    g.dead.push_back(dead_letter{m.seq, m.id, m.payload, m.ordering_key, it->second.deliveries});
    g.entries.erase(it);
  }

  // Leases that ran out on the last allowed delivery move their message to the dead letters.
  static void sweep(group_state& g, const work_queue_options& o, std::chrono::nanoseconds now) {
    for (auto it = g.entries.begin(); it != g.entries.end();) {
      auto next = std::next(it);
      const entry& e = it->second;
      if (e.leased && e.lease_deadline <= now && e.deliveries >= o.max_deliver) to_dead_letters(g, it);
      it = next;
    }
  }

  std::mutex mutex_;
  std::map<std::string, group_state, std::less<>> groups_;
  std::unordered_map<std::string, std::pair<std::chrono::nanoseconds, std::uint64_t>> dedupe_;
  std::vector<std::pair<std::chrono::nanoseconds, std::string>> dedupe_order_;
  std::uint64_t last_seq_ = 0;
  std::uint64_t last_token_ = 0;
};

static_assert(work_queue_store<memory_store>);

/// @brief An at-least-once work queue: publish, consume under a lease, then ack or nack.
///
/// Every consumer group receives every message published after the group was added; consumers of
/// one group share its messages. A delivery hides the message from the group for the lease; a
/// message not acked in time is delivered again, with `attempt` counting up, until
/// `max_deliver` deliveries have failed, when it moves to the group's dead-letter queue. Each
/// delivery carries a fencing token: an ack, nack or extension from a delivery whose lease ran
/// out, or that a later delivery replaced, is refused.
///
/// @tparam Store  models `work_queue_store` (default: `memory_store`; `redis_streams_store` shares
///                one queue between processes).
/// @tparam Clock  models `time_source` (default: `steady_time`; tests use `manual_clock`).
///
/// @throws std::invalid_argument if `lease` is not positive, `max_deliver` is 0 or
///         `dedupe_window` is negative; the message names the parameter.
///
/// **Guarantees:** at-least-once delivery per group; duplicates only as counted redeliveries
/// (`attempt > 1`); per ordering key, FIFO with one message in flight per group; a message is
/// delivered at most `max_deliver` times per group.
/// **Thread safety:** as the Store (`memory_store`: every member, concurrently).
///
/// @code
/// distkit::work_queue<> q({.lease = std::chrono::seconds(10), .max_deliver = 3});
/// q.add_group("mailer");
/// q.publish("hello");
/// for (auto& d : q.consume("mailer", "worker-1", 8)) {
///   if (send(d.payload)) (void)q.ack(d); else (void)q.nack(d, std::chrono::seconds(1));
/// }
/// @endcode
template <work_queue_store Store = memory_store, time_source Clock = steady_time>
class work_queue {
 public:
  using store_type = Store;
  using clock_type = Clock;

  explicit work_queue(work_queue_options options = {}, Clock clock = {})
      : options_(validated(options)), clock_(std::move(clock)) {}

  template <class... StoreArgs>
  work_queue(work_queue_options options, Clock clock, std::in_place_t, StoreArgs&&... store_args)
      : options_(validated(options)), store_(std::forward<StoreArgs>(store_args)...), clock_(std::move(clock)) {}

  [[nodiscard]] auto options() const noexcept -> const work_queue_options& { return options_; }
  [[nodiscard]] auto store() noexcept -> Store& { return store_; }

  /// Adds a consumer group (idempotent). It receives the messages published from now on.
  void add_group(std::string_view group) { store_.add_group(group, now()); }

  /// Queues `payload` for every group.
  auto publish(std::string payload, const publish_options& po = {}) -> publish_receipt {
    return store_.publish(std::move(payload), po, options_, now());
  }

  /// Queues every payload for every group, in order, as one operation of the store where it has
  /// one (`publish_many`: `redis_streams_store` makes one round trip), else one by one. `po` is
  /// empty (default options for all) or holds one `publish_options` per payload.
  /// @throws std::invalid_argument if `po` is neither empty nor as long as `payloads`.
  auto publish(std::span<std::string> payloads, std::span<const publish_options> po = {})
      -> std::vector<publish_receipt> {
    if (!po.empty() && po.size() != payloads.size()) {
      detail::throw_invalid_argument("work_queue", "po", "must be empty or one per payload", po.size());
    }
    if constexpr (requires { store_.publish_many(payloads, po, options_, now()); }) {
      return store_.publish_many(payloads, po, options_, now());
    } else {
      std::vector<publish_receipt> out;
      out.reserve(payloads.size());
      for (std::size_t i = 0; i < payloads.size(); ++i) {
        out.push_back(publish(std::move(payloads[i]), po.empty() ? publish_options{} : po[i]));
      }
      return out;
    }
  }

  /// Leases up to `max` available messages of `group` to `consumer` for `lease`, oldest first.
  [[nodiscard]] auto consume(std::string_view group, std::string_view consumer, std::size_t max = 1)
      -> std::vector<delivery> {
    return consume(group, consumer, max, options_.lease);
  }
  [[nodiscard]] auto consume(std::string_view group, std::string_view consumer, std::size_t max,
                             std::chrono::nanoseconds lease) -> std::vector<delivery> {
    if (lease <= std::chrono::nanoseconds::zero()) {
      detail::throw_invalid_argument("work_queue", "lease", "must be positive", lease.count());
    }
    return store_.consume(group, consumer, max, lease, options_, now());
  }

  /// Marks the delivery done. Refused (`lease_expired`, `stale`) if it is no longer the current one.
  [[nodiscard]] auto ack(const delivery& d) -> settle_result {
    return store_.settle(d.group, d.seq, d.token, settle_action::ack, {}, options_, now());
  }
  /// Acks every delivery, in order, as one operation of the store where it has one (`settle_many`:
  /// `redis_streams_store` makes one round trip), else one by one. One answer per delivery.
  [[nodiscard]] auto ack(std::span<const delivery> ds) -> std::vector<settle_result> {
    if constexpr (requires {
                    store_.settle_many(ds, settle_action::ack, std::chrono::nanoseconds{}, options_, now());
                  }) {
      return store_.settle_many(ds, settle_action::ack, {}, options_, now());
    } else {
      std::vector<settle_result> out;
      out.reserve(ds.size());
      for (const auto& d : ds) out.push_back(ack(d));
      return out;
    }
  }
  /// Gives the message back, visible again after `delay`; the last allowed delivery dead-letters.
  [[nodiscard]] auto nack(const delivery& d, std::chrono::nanoseconds delay = {}) -> settle_result {
    return store_.settle(d.group, d.seq, d.token, settle_action::nack, delay, options_, now());
  }
  /// Extends the lease to `lease` from now (an in-progress signal).
  [[nodiscard]] auto extend(const delivery& d, std::chrono::nanoseconds lease) -> settle_result {
    if (lease <= std::chrono::nanoseconds::zero()) {
      detail::throw_invalid_argument("work_queue", "lease", "must be positive", lease.count());
    }
    return store_.settle(d.group, d.seq, d.token, settle_action::extend, lease, options_, now());
  }

  /// The group's dead-letter queue, oldest first.
  [[nodiscard]] auto dead_letters(std::string_view group) -> std::vector<dead_letter> {
    return store_.dead_letters(group, options_, now());
  }
  /// Messages of the group not yet acked or dead-lettered.
  [[nodiscard]] auto pending(std::string_view group) -> std::size_t { return store_.pending(group, options_, now()); }

 private:
  static auto validated(const work_queue_options& o) -> work_queue_options {
    if (o.lease <= std::chrono::nanoseconds::zero()) {
      detail::throw_invalid_argument("work_queue", "lease", "must be positive (ns)", o.lease.count());
    }
    if (o.max_deliver == 0) detail::throw_invalid_argument("work_queue", "max_deliver", "must be at least 1", 0);
    if (o.dedupe_window < std::chrono::nanoseconds::zero()) {
      detail::throw_invalid_argument("work_queue", "dedupe_window", "must not be negative (ns)",
                                     o.dedupe_window.count());
    }
    return o;
  }

  auto now() const noexcept -> std::chrono::nanoseconds {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_.now().time_since_epoch());
  }

  work_queue_options options_;
  Store store_;
  [[no_unique_address]] Clock clock_;
};

}  // namespace distkit::inline v0
