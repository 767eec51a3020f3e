// SPDX-License-Identifier: MIT
// distkit/redis/work_queue_store.hpp: a `work_queue_store` on Redis Streams, so that many
// processes share one at-least-once work queue.
//
// Needs hiredis (CMake target `distkit::redis`) and Redis 6.2 or later. Every operation is one
// round trip: a Lua script that runs atomically inside Redis.
#pragma once

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "distkit/detail/error.hpp"
#include "distkit/redis/hiredis_support.hpp"
#include "distkit/work_queue.hpp"

namespace distkit::inline v0 {

/// Where `redis_streams_store` takes the time that leases, delays and the dedupe window run on.
enum class redis_queue_time : std::uint8_t {
  /// Redis's own clock (`TIME`), the same for every process and host using the server; the
  /// queue's Clock is ignored and `delivery::lease_deadline` is Redis time since the Unix epoch.
  server,
  /// The `now` the work_queue passes in from its Clock policy. Every process must then share one
  /// clock (one host's `steady_time`, or a test's manual clock); used to test leases without sleeping.
  caller,
};

/// Connection and naming options of `redis_streams_store`.
struct redis_queue_options {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::chrono::milliseconds connect_timeout{500};   ///< bound on each connection attempt (> 0)
  std::chrono::milliseconds command_timeout{2000};  ///< bound on each operation's round trip (> 0)
  std::string key_prefix = "distkit:wq:";           ///< every key starts with this
  std::string queue = "default";                    ///< the queue's name; keys are `<prefix>{<queue>}:...`
  redis_queue_time time = redis_queue_time::server;
};

/// The Redis store failed: no connection, a timeout, or an error answer. The operation may or
/// may not have been applied (a publish retried with the same `publish_options::id` is safe).
class redis_queue_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail::redis_queue {

// Keys, under B = KEYS[1] = "<prefix>{<queue>}:":
//   B.."seq", B.."tok"   counters: message sequence numbers, delivery tokens
//   B.."s"               the stream: one entry "<seq>-0" per message published while a group
//                        existed; fields p (payload), i (id), k (ordering key), v (visible at, us)
//   B.."groups"          set of group names; each is also a consumer group of the stream
//   B.."refs"            hash seq -> groups that still have the message; at 0 the entry is XDELed
//   B.."ids", B.."idt"   dedupe: hash id -> "<time>:<seq>", sorted set id by time
//   B.."pend"            hash group -> its unfinished messages (read or not yet read)
// and per group G:
//   B.."g:"..G           hash of per-message state: n:<seq> deliveries, t:<seq> token (present
//                        while leased), d:<seq> lease deadline, v:<seq> visible at, k:<seq> key
//   B.."r:"..G           sorted set (by seq) of messages ready now: not leased, visible, and
//                        first of their ordering key
//   B.."w:"..G           sorted set (by visible-at time) of messages waiting for their delay
//   B.."gl:"..G          sorted set (by lease deadline) of leased messages
//   B.."kq:"..#G..":"..G..":"..K  list of the unfinished messages of ordering key K, in order (the
//                        length of G keeps group and key apart): only its
//                        head is ever ready, waiting or leased
//   B.."dlq:"..G         stream of dead letters
// A group's unfinished messages are its pending entries (PEL) and the entries it has not read
// yet: consume reads new entries into the PEL under the consumer "-" (XREADGROUP, 512 at a
// time) and indexes them only until `max` messages are ready, so no script walks a whole
// backlog (the unread entries all come after the read ones, so they could not be among the
// first `max`); a delivery XCLAIMs the entry for its consumer, and an ack or a dead-lettering
// XACKs it. Times are integer
// microseconds (doubles in Lua: exact up to 2^53 us, 285 years).
inline constexpr std::string_view prelude = R"lua(
local B = KEYS[1]
local S = B .. 's'
local function fmt(x) return string.format('%.0f', x) end
local function now_us(arg)
  if arg == '' then
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  return tonumber(arg)
end
local function fields(flat)
  local f = {}
  for i = 1, #flat, 2 do f[flat[i]] = flat[i + 1] end
  return f
end
local function eligible(G, s, v)
  if v then
    redis.call('ZADD', B .. 'w:' .. G, v, s)
  else
    redis.call('ZADD', B .. 'r:' .. G, s, s)
  end
end
local function pull(G, want)
  local gh = B .. 'g:' .. G
  while redis.call('ZCARD', B .. 'r:' .. G) < want do
    local r = redis.call('XREADGROUP', 'GROUP', G, '-', 'COUNT', 512, 'STREAMS', S, '>')
    if not r then return end
    local entries = r[1][2]
    for _, e in ipairs(entries) do
      local s = string.match(e[1], '^(%d+)')
      local f = fields(e[2])
      if f.v then redis.call('HSET', gh, 'v:' .. s, f.v) end
      if f.k then
        redis.call('HSET', gh, 'k:' .. s, f.k)
        if redis.call('RPUSH', B .. 'kq:' .. #G .. ':' .. G .. ':' .. f.k, s) == 1 then eligible(G, s, f.v) end
      else
        eligible(G, s, f.v)
      end
    end
    if #entries < 512 then return end
  end
end
local function finish(G, s)
  local id = s .. '-0'
  local gh = B .. 'g:' .. G
  local k = redis.call('HGET', gh, 'k:' .. s)
  redis.call('XACK', S, G, id)
  redis.call('HDEL', gh, 'n:' .. s, 't:' .. s, 'd:' .. s, 'v:' .. s, 'k:' .. s)
  redis.call('ZREM', B .. 'gl:' .. G, s)
  redis.call('ZREM', B .. 'r:' .. G, s)
  redis.call('ZREM', B .. 'w:' .. G, s)
  if k then
    local kq = B .. 'kq:' .. #G .. ':' .. G .. ':' .. k
    redis.call('LREM', kq, 1, s)
    local nxt = redis.call('LINDEX', kq, 0)
    if nxt then eligible(G, nxt, redis.call('HGET', gh, 'v:' .. nxt)) end
  end
  redis.call('HINCRBY', B .. 'pend', G, -1)
  if redis.call('HINCRBY', B .. 'refs', s, -1) <= 0 then
    redis.call('HDEL', B .. 'refs', s)
    redis.call('XDEL', S, id)
  end
end
local function kill(G, s)
  local id = s .. '-0'
  local e = redis.call('XRANGE', S, id, id)
  local f = fields(e[1][2])
  local n = redis.call('HGET', B .. 'g:' .. G, 'n:' .. s)
  local out = {'seq', s, 'n', n, 'p', f.p}
  if f.i then out[#out + 1] = 'i'; out[#out + 1] = f.i end
  if f.k then out[#out + 1] = 'k'; out[#out + 1] = f.k end
  redis.call('XADD', B .. 'dlq:' .. G, '*', unpack(out))
  finish(G, s)
end
local function sweep(G, now, maxd)
  local gh = B .. 'g:' .. G
  local expired = redis.call('ZRANGEBYSCORE', B .. 'gl:' .. G, '-inf', fmt(now))
  local dead = {}
  for _, s in ipairs(expired) do
    if tonumber(redis.call('HGET', gh, 'n:' .. s)) >= maxd then dead[#dead + 1] = tonumber(s) end
  end
  table.sort(dead)
  for _, s in ipairs(dead) do kill(G, fmt(s)) end
end
)lua";

// ARGV: group. Returns 1 if the group is new.
inline constexpr std::string_view add_group_body = R"lua(
if redis.call('SADD', B .. 'groups', ARGV[1]) == 1 then
  redis.call('XGROUP', 'CREATE', S, ARGV[1], '$', 'MKSTREAM')
  return 1
end
return 0
)lua";

// publish_one(now, window us, payload, id, has id, key, has key, delay us) returns {seq, duplicate}.
inline constexpr std::string_view publish_fn = R"lua(
local function publish_one(now, window, payload, id, has_id, key, has_key, delay)
  if has_id then
    local old = redis.call('ZRANGEBYSCORE', B .. 'idt', '-inf', fmt(now - window))
    for _, o in ipairs(old) do redis.call('HDEL', B .. 'ids', o) end
    if #old > 0 then redis.call('ZREMRANGEBYSCORE', B .. 'idt', '-inf', fmt(now - window)) end
    local rec = redis.call('HGET', B .. 'ids', id)
    if rec then
      local t, seq = string.match(rec, '^(-?%d+):(%d+)$')
      if now - tonumber(t) < window then return {tonumber(seq), 1} end
    end
  end
  local seq = redis.call('INCR', B .. 'seq')
  if has_id then
    redis.call('HSET', B .. 'ids', id, fmt(now) .. ':' .. fmt(seq))
    redis.call('ZADD', B .. 'idt', fmt(now), id)
  end
  local members = redis.call('SMEMBERS', B .. 'groups')
  local groups = #members
  if groups > 0 then
    local f = {'p', payload}
    if has_id then f[#f + 1] = 'i'; f[#f + 1] = id end
    if has_key then f[#f + 1] = 'k'; f[#f + 1] = key end
    if delay > 0 then f[#f + 1] = 'v'; f[#f + 1] = fmt(now + delay) end
    redis.call('XADD', S, fmt(seq) .. '-0', unpack(f))
    redis.call('HSET', B .. 'refs', seq, groups)
    for _, g in ipairs(members) do redis.call('HINCRBY', B .. 'pend', g, 1) end
  end
  return {seq, 0}
end
)lua";

// ARGV: now, dedupe window us, payload, id or '', has id, key, has key, delay us.
// Returns {seq, duplicate}.
inline constexpr std::string_view publish_body = R"lua(
return publish_one(now_us(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5] == '1', ARGV[6], ARGV[7] == '1',
                   tonumber(ARGV[8]))
)lua";

// ARGV: now, dedupe window us, then payload, id, has id, key, has key, delay us per message,
// published in order at one time. Returns seq, duplicate, seq, duplicate, ...
inline constexpr std::string_view publish_many_body = R"lua(
local now = now_us(ARGV[1])
local window = tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV - 5, 6 do
  local r = publish_one(now, window, ARGV[i], ARGV[i + 1], ARGV[i + 2] == '1', ARGV[i + 3], ARGV[i + 4] == '1',
                        tonumber(ARGV[i + 5]))
  out[#out + 1] = r[1]
  out[#out + 1] = r[2]
end
return out
)lua";

// ARGV: now, group, consumer, max, lease us, max_deliver.
// Returns one {seq, id, payload, key, has key, attempt, token, deadline} per delivery. The
// candidates are the ready messages and the leased ones whose lease ran out; the lowest
// sequence numbers win, as in memory_store's walk.
inline constexpr std::string_view consume_body = R"lua(
local G = ARGV[2]
local max = math.min(tonumber(ARGV[4]), 2147483647)
if max == 0 or redis.call('SISMEMBER', B .. 'groups', G) == 0 then return {} end
local now = now_us(ARGV[1])
local lease = tonumber(ARGV[5])
local gh = B .. 'g:' .. G
pull(G, max)
sweep(G, now, tonumber(ARGV[6]))
local due = redis.call('ZRANGEBYSCORE', B .. 'w:' .. G, '-inf', fmt(now))
for _, s in ipairs(due) do redis.call('ZADD', B .. 'r:' .. G, s, s) end
if #due > 0 then redis.call('ZREMRANGEBYSCORE', B .. 'w:' .. G, '-inf', fmt(now)) end
local cand = {}
for _, s in ipairs(redis.call('ZRANGE', B .. 'r:' .. G, 0, max - 1)) do cand[#cand + 1] = tonumber(s) end
for _, s in ipairs(redis.call('ZRANGEBYSCORE', B .. 'gl:' .. G, '-inf', fmt(now))) do cand[#cand + 1] = tonumber(s) end
table.sort(cand)
local out = {}
for i = 1, math.min(max, #cand) do
  local s = fmt(cand[i])
  local id = s .. '-0'
  redis.call('ZREM', B .. 'r:' .. G, s)
  local n = redis.call('HINCRBY', gh, 'n:' .. s, 1)
  local tok = redis.call('INCR', B .. 'tok')
  local dl = now + lease
  redis.call('HSET', gh, 't:' .. s, tok, 'd:' .. s, fmt(dl))
  redis.call('ZADD', B .. 'gl:' .. G, fmt(dl), s)
  redis.call('XCLAIM', S, G, ARGV[3], 0, id, 'JUSTID')
  local f = fields(redis.call('XRANGE', S, id, id)[1][2])
  out[#out + 1] = {cand[i], f.i or s, f.p, f.k or '', f.k and 1 or 0, n, tok, dl}
end
return out
)lua";

// settle_one(G, s, token, action ('a', 'n', 'e'), argument us, now, max_deliver) returns
// 0 ok, 1 dead_lettered, 2 lease_expired, 3 stale, 4 unknown_group.
inline constexpr std::string_view settle_head = R"lua(
local function settle_one(G, s, token, action, arg, now, maxd)
  if redis.call('SISMEMBER', B .. 'groups', G) == 0 then return 4 end
  local gh = B .. 'g:' .. G
  local st = redis.call('HMGET', gh, 't:' .. s, 'd:' .. s, 'n:' .. s)
  local n = tonumber(st[3])
)lua";

#if defined(DISTKIT_REDIS_QUEUE_MUTATION_NO_FENCE)
// Test-only mutation: settle checks neither the token nor the lease (the fence-check test must fail).
inline constexpr std::string_view settle_fence = R"lua(
  if not st[1] then return 3 end
)lua";
#else
// The fence: only the current delivery's token, and only before its lease deadline.
inline constexpr std::string_view settle_fence = R"lua(
  if not st[1] or st[1] ~= token then return 3 end
  if tonumber(st[2]) <= now then
    if n >= maxd then kill(G, s) end
    return 2
  end
)lua";
#endif

inline constexpr std::string_view settle_tail = R"lua(
  if action == 'a' then
    finish(G, s)
    return 0
  elseif action == 'e' then
    redis.call('HSET', gh, 'd:' .. s, fmt(now + arg))
    redis.call('ZADD', B .. 'gl:' .. G, fmt(now + arg), s)
    return 0
  end
  if n >= maxd then
    kill(G, s)
    return 1
  end
  redis.call('HDEL', gh, 't:' .. s, 'd:' .. s)
  redis.call('ZREM', B .. 'gl:' .. G, s)
  if arg < 0 then arg = 0 end
  redis.call('HSET', gh, 'v:' .. s, fmt(now + arg))
  redis.call('ZADD', B .. 'w:' .. G, fmt(now + arg), s)
  redis.call('XCLAIM', S, G, '-', 0, s .. '-0', 'JUSTID')
  return 0
end
)lua";

// ARGV: now, group, seq, token, action, argument us, max_deliver. Returns settle_one's code.
inline constexpr std::string_view settle_body = R"lua(
return settle_one(ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]), now_us(ARGV[1]), tonumber(ARGV[7]))
)lua";

// ARGV: now, action, argument us, max_deliver, then group, seq, token per delivery, applied in
// order at one time. Returns one code per delivery.
inline constexpr std::string_view settle_many_body = R"lua(
local now = now_us(ARGV[1])
local arg = tonumber(ARGV[3])
local maxd = tonumber(ARGV[4])
local out = {}
for i = 5, #ARGV - 2, 3 do
  out[#out + 1] = settle_one(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[2], arg, now, maxd)
end
return out
)lua";

// ARGV: now, group, max_deliver. Returns the group's dead letters as flat field lists.
inline constexpr std::string_view dead_letters_body = R"lua(
local G = ARGV[2]
if redis.call('SISMEMBER', B .. 'groups', G) == 0 then return {} end
sweep(G, now_us(ARGV[1]), tonumber(ARGV[3]))
local out = {}
for _, e in ipairs(redis.call('XRANGE', B .. 'dlq:' .. G, '-', '+')) do out[#out + 1] = e[2] end
return out
)lua";

// ARGV: now, group, max_deliver. Returns the group's unfinished messages.
inline constexpr std::string_view pending_body = R"lua(
local G = ARGV[2]
if redis.call('SISMEMBER', B .. 'groups', G) == 0 then return 0 end
sweep(G, now_us(ARGV[1]), tonumber(ARGV[3]))
return tonumber(redis.call('HGET', B .. 'pend', G) or 0)
)lua";

enum script : std::uint8_t {
  add_group_script,
  publish_script,
  publish_many_script,
  consume_script,
  settle_script,
  settle_many_script,
  dead_letters_script,
  pending_script,
  script_count
};

[[nodiscard]] inline auto text(const redisReply* r) -> std::string {
  if (r == nullptr) return {};
  if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR) {
    return std::string(r->str, r->len);
  }
  if (r->type == REDIS_REPLY_INTEGER) return std::to_string(r->integer);
  return {};
}

[[nodiscard]] inline auto integer(const redisReply* r) -> std::int64_t {
  if (r != nullptr && r->type == REDIS_REPLY_INTEGER) return r->integer;
  if (r != nullptr && r->type == REDIS_REPLY_STRING) return std::stoll(std::string(r->str, r->len));
  throw redis_queue_error("distkit::redis_streams_store: unexpected reply type");
}

// Microseconds: `now` and deadlines round down, durations round up (a 1 ns lease is 1 us, not 0).
[[nodiscard]] inline auto floor_us(std::chrono::nanoseconds t) -> std::string {
  return std::to_string(std::chrono::floor<std::chrono::microseconds>(t).count());
}
[[nodiscard]] inline auto ceil_us(std::chrono::nanoseconds d) -> std::string {
  return std::to_string(std::chrono::ceil<std::chrono::microseconds>(d).count());
}

}  // namespace detail::redis_queue

/// @brief A `work_queue_store` on Redis Streams: every process whose `work_queue` uses the same
/// server and queue name shares one queue.
///
/// Messages are stream entries (XADD, id `<seq>-0`); each work-queue group is a consumer group
/// of the stream (XGROUP CREATE at `$`: it sees messages published after it was added); a
/// group reads entries into its pending entries as `consume` needs them (never a whole backlog
/// in one script), hands them to a consumer with XCLAIM and finishes them with XACK; dead
/// letters go to a stream per group. Each operation is one Lua script
/// (EVALSHA), atomic in Redis, so the rules are those of `memory_store`, checked against the same
/// reference model: fenced tokens, `max_deliver` then dead letters, per-key order, delays, the
/// dedupe window, groups.
///
/// Differences that Redis imposes, and choices:
/// - Time has microsecond resolution (durations round up). With `redis_queue_time::server` (the
///   default) leases, delays and the dedupe window run on Redis's clock, the same for every
///   process; `delivery::lease_deadline` is then Redis time since the Unix epoch, not the
///   queue's Clock time. `redis_queue_time::caller` uses the queue's Clock, which all processes
///   must share.
/// - A lease is a deadline stored beside the pending entry, not the entry's idle time, so
///   that leases follow the chosen clock; Redis's own delivery counter of an entry is not the
///   `attempt` (the store counts deliveries itself).
/// - A delayed message takes its place in the stream at once (a per-group waiting set holds it
///   until it is due), so it keeps its sequence number and blocks later messages of its
///   ordering key, as in `memory_store`.
/// - Leases run out when some operation of the group looks (consume, settle, pending,
///   dead_letters): nothing happens in Redis between calls.
/// - Every key is `<key_prefix>{<queue>}:...` (one hash slot); the scripts build group keys
///   themselves, so run one Redis server (or a primary with replicas), not a cluster.
/// - Operations throw `redis_queue_error` when Redis cannot be reached, times out or answers an
///   error; the connection is dropped and re-made on the next call. A publish that threw may
///   have been applied: retry it with the same `publish_options::id`.
/// - Durability is Redis's: with `appendonly yes` and `appendfsync always` a publish or an ack
///   that returned survives a Redis crash.
///
/// @throws std::invalid_argument (constructor) naming the bad parameter (`host`, `port`,
///         `connect_timeout`, `command_timeout`, `queue`).
/// Batches: `publish_many` and `settle_many` (used by `work_queue`'s `publish(span)` and
/// `ack(span)`) run a whole batch as one script, one round trip, answering as one call per item.
///
/// **Thread safety:** every member may be called concurrently; calls share one connection and
/// are serialised. Give each consumer thread its own store (its own `work_queue`) to overlap
/// round trips.
/// **Complexity:** one round trip per call; `consume` is O(log n) per delivered message plus the
/// number of leases that ran out and delays that ended (indexes per group: ready, waiting,
/// leased, and one list per ordering key), where `memory_store` walks its unfinished messages.
///
/// @code
/// distkit::redis_queue_options o;
/// o.port = 6379;
/// o.queue = "emails";
/// distkit::work_queue<distkit::redis_streams_store> q({.lease = std::chrono::seconds(30)}, {}, std::in_place, o);
/// q.add_group("mailer");
/// (void)q.publish("hello", {.id = "msg-1"});
/// for (auto& d : q.consume("mailer", "worker-1", 8)) {
///   if (send(d.payload)) (void)q.ack(d); else (void)q.nack(d, std::chrono::seconds(1));
/// }
/// @endcode
class redis_streams_store {
 public:
  redis_streams_store() : redis_streams_store(redis_queue_options{}) {}
  explicit redis_streams_store(redis_queue_options options) : options_(std::move(options)) {
    constexpr std::string_view component = "redis_streams_store";
    if (options_.host.empty()) detail::throw_invalid_argument(component, "host", "must not be empty");
    if (options_.port < 1 || options_.port > 65535) {
      detail::throw_invalid_argument(component, "port", "must be in [1, 65535]", options_.port);
    }
    if (options_.connect_timeout <= std::chrono::milliseconds::zero()) {
      detail::throw_invalid_argument(component, "connect_timeout", "must be positive (ms)",
                                     options_.connect_timeout.count());
    }
    if (options_.command_timeout <= std::chrono::milliseconds::zero()) {
      detail::throw_invalid_argument(component, "command_timeout", "must be positive (ms)",
                                     options_.command_timeout.count());
    }
    if (options_.queue.empty()) detail::throw_invalid_argument(component, "queue", "must not be empty");
    base_ = options_.key_prefix + "{" + options_.queue + "}:";
    conn_ = std::make_unique<connection>();
  }

  [[nodiscard]] auto options() const noexcept -> const redis_queue_options& { return options_; }
  /// The prefix of every key of this queue, `<key_prefix>{<queue>}:`.
  [[nodiscard]] auto key_base() const noexcept -> const std::string& { return base_; }

  void add_group(std::string_view group, std::chrono::nanoseconds /*now*/) {
    (void)run(detail::redis_queue::add_group_script, {std::string(group)});
  }

  auto publish(std::string payload, const publish_options& po, const work_queue_options& o,
               std::chrono::nanoseconds now) -> publish_receipt {
    auto r = run(detail::redis_queue::publish_script,
                 {time_arg(now), detail::redis_queue::ceil_us(o.dedupe_window), std::move(payload),
                  po.id.value_or(std::string()), po.id ? "1" : "0", po.ordering_key.value_or(std::string()),
                  po.ordering_key ? "1" : "0", detail::redis_queue::ceil_us(po.delay)});
    expect_array(r.get(), 2);
    return {static_cast<std::uint64_t>(detail::redis_queue::integer(r->element[0])),
            detail::redis_queue::integer(r->element[1]) != 0};
  }

  /// Publishes every message in one round trip, in order, at one time; `po` is empty (defaults
  /// for all) or holds one `publish_options` per payload.
  auto publish_many(std::span<std::string> payloads, std::span<const publish_options> po, const work_queue_options& o,
                    std::chrono::nanoseconds now) -> std::vector<publish_receipt> {
    std::vector<publish_receipt> out;
    if (payloads.empty()) return out;
    std::vector<std::string> args{time_arg(now), detail::redis_queue::ceil_us(o.dedupe_window)};
    args.reserve(2 + 6 * payloads.size());
    const publish_options none{};
    for (std::size_t i = 0; i < payloads.size(); ++i) {
      const publish_options& p = po.empty() ? none : po[i];
      args.push_back(std::move(payloads[i]));
      args.push_back(p.id.value_or(std::string()));
      args.emplace_back(p.id ? "1" : "0");
      args.push_back(p.ordering_key.value_or(std::string()));
      args.emplace_back(p.ordering_key ? "1" : "0");
      args.push_back(detail::redis_queue::ceil_us(p.delay));
    }
    auto r = run(detail::redis_queue::publish_many_script, args);
    expect_array(r.get(), 2 * payloads.size());
    out.reserve(payloads.size());
    for (std::size_t i = 0; i < payloads.size(); ++i) {
      out.push_back({static_cast<std::uint64_t>(detail::redis_queue::integer(r->element[2 * i])),
                     detail::redis_queue::integer(r->element[2 * i + 1]) != 0});
    }
    return out;
  }

  auto consume(std::string_view group, std::string_view consumer, std::size_t max, std::chrono::nanoseconds lease,
               const work_queue_options& o, std::chrono::nanoseconds now) -> std::vector<delivery> {
    auto r = run(detail::redis_queue::consume_script,
                 {time_arg(now), std::string(group), std::string(consumer.empty() ? "?" : consumer),
                  std::to_string(max), detail::redis_queue::ceil_us(lease), std::to_string(o.max_deliver)});
    expect_array(r.get(), 0);
    std::vector<delivery> out;
    out.reserve(r->elements);
    for (std::size_t i = 0; i < r->elements; ++i) {
      const redisReply* e = r->element[i];
      expect_array(e, 8);
      delivery d;
      d.group = std::string(group);
      d.seq = static_cast<std::uint64_t>(detail::redis_queue::integer(e->element[0]));
      d.id = detail::redis_queue::text(e->element[1]);
      d.payload = detail::redis_queue::text(e->element[2]);
      if (detail::redis_queue::integer(e->element[4]) != 0) d.ordering_key = detail::redis_queue::text(e->element[3]);
      d.attempt = static_cast<std::uint32_t>(detail::redis_queue::integer(e->element[5]));
      d.token = static_cast<std::uint64_t>(detail::redis_queue::integer(e->element[6]));
      d.lease_deadline = std::chrono::microseconds(detail::redis_queue::integer(e->element[7]));
      out.push_back(std::move(d));
    }
    return out;
  }

  auto settle(std::string_view group, std::uint64_t seq, std::uint64_t token, settle_action action,
              std::chrono::nanoseconds arg, const work_queue_options& o, std::chrono::nanoseconds now)
      -> settle_result {
    const char* a = action == settle_action::ack ? "a" : action == settle_action::nack ? "n" : "e";
    auto r = run(detail::redis_queue::settle_script,
                 {time_arg(now), std::string(group), std::to_string(seq), std::to_string(token), a,
                  // A negative nack delay means none; a lease extension is positive (checked by work_queue).
                  arg < std::chrono::nanoseconds::zero() ? std::string("0") : detail::redis_queue::ceil_us(arg),
                  std::to_string(o.max_deliver)});
    return result_of(detail::redis_queue::integer(r.get()));
  }

  /// Settles every delivery in one round trip, in order, at one time; one answer per delivery.
  auto settle_many(std::span<const delivery> ds, settle_action action, std::chrono::nanoseconds arg,
                   const work_queue_options& o, std::chrono::nanoseconds now) -> std::vector<settle_result> {
    std::vector<settle_result> out;
    if (ds.empty()) return out;
    const char* a = action == settle_action::ack ? "a" : action == settle_action::nack ? "n" : "e";
    std::vector<std::string> args{
        time_arg(now), a, arg < std::chrono::nanoseconds::zero() ? std::string("0") : detail::redis_queue::ceil_us(arg),
        std::to_string(o.max_deliver)};
    args.reserve(4 + 3 * ds.size());
    for (const auto& d : ds) {
      args.push_back(d.group);
      args.push_back(std::to_string(d.seq));
      args.push_back(std::to_string(d.token));
    }
    auto r = run(detail::redis_queue::settle_many_script, args);
    expect_array(r.get(), ds.size());
    out.reserve(ds.size());
    for (std::size_t i = 0; i < ds.size(); ++i) out.push_back(result_of(detail::redis_queue::integer(r->element[i])));
    return out;
  }

  auto dead_letters(std::string_view group, const work_queue_options& o, std::chrono::nanoseconds now)
      -> std::vector<dead_letter> {
    auto r = run(detail::redis_queue::dead_letters_script,
                 {time_arg(now), std::string(group), std::to_string(o.max_deliver)});
    expect_array(r.get(), 0);
    std::vector<dead_letter> out;
    for (std::size_t i = 0; i < r->elements; ++i) {
      const redisReply* e = r->element[i];
      expect_array(e, 0);
      dead_letter d;
      bool has_id = false;
      for (std::size_t f = 0; f + 1 < e->elements; f += 2) {
        const std::string name = detail::redis_queue::text(e->element[f]);
        const redisReply* v = e->element[f + 1];
        if (name == "seq") {
          d.seq = static_cast<std::uint64_t>(detail::redis_queue::integer(v));
        } else if (name == "n") {
          d.deliveries = static_cast<std::uint32_t>(detail::redis_queue::integer(v));
        } else if (name == "p") {
          d.payload = detail::redis_queue::text(v);
        } else if (name == "i") {
          d.id = detail::redis_queue::text(v);
          has_id = true;
        } else if (name == "k") {
          d.ordering_key = detail::redis_queue::text(v);
        }
      }
      if (!has_id) d.id = std::to_string(d.seq);
      out.push_back(std::move(d));
    }
    return out;
  }

  auto pending(std::string_view group, const work_queue_options& o, std::chrono::nanoseconds now) -> std::size_t {
    auto r =
        run(detail::redis_queue::pending_script, {time_arg(now), std::string(group), std::to_string(o.max_deliver)});
    return static_cast<std::size_t>(detail::redis_queue::integer(r.get()));
  }

 private:
  struct connection {
    std::mutex mutex;
    detail::hiredis::context_ptr ctx;
    std::string sha[detail::redis_queue::script_count];
  };

  [[nodiscard]] auto time_arg(std::chrono::nanoseconds now) const -> std::string {
    return options_.time == redis_queue_time::server ? std::string() : detail::redis_queue::floor_us(now);
  }

  static auto result_of(std::int64_t code) noexcept -> settle_result {
    switch (code) {
      case 0:
        return settle_result::ok;
      case 1:
        return settle_result::dead_lettered;
      case 2:
        return settle_result::lease_expired;
      case 4:
        return settle_result::unknown_group;
      default:
        return settle_result::stale;
    }
  }

  static void expect_array(const redisReply* r, std::size_t at_least) {
    if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements < at_least) {
      throw redis_queue_error("distkit::redis_streams_store: unexpected reply shape");
    }
  }

  static auto script_text(detail::redis_queue::script s) -> std::string {
    namespace q = detail::redis_queue;
    std::string body;
    switch (s) {
      case q::add_group_script:
        body = q::add_group_body;
        break;
      case q::publish_script:
        body = q::publish_body;
        break;
      case q::publish_many_script:
        body = q::publish_many_body;
        break;
      case q::consume_script:
        body = q::consume_body;
        break;
      case q::settle_script:
        body = q::settle_body;
        break;
      case q::settle_many_script:
        body = q::settle_many_body;
        break;
      case q::dead_letters_script:
        body = q::dead_letters_body;
        break;
      default:
        body = q::pending_body;
        break;
    }
    return std::string(q::prelude) + std::string(q::publish_fn) + std::string(q::settle_head) +
           std::string(q::settle_fence) + std::string(q::settle_tail) + body;
  }

  // Sends one command; a transport failure drops the connection and throws.
  auto command(const std::vector<std::string_view>& argv) -> detail::hiredis::reply_ptr {
    std::vector<const char*> ptrs;
    std::vector<std::size_t> lens;
    ptrs.reserve(argv.size());
    lens.reserve(argv.size());
    for (auto a : argv) {
      ptrs.push_back(a.data());
      lens.push_back(a.size());
    }
    const detail::hiredis::sigpipe_guard guard;
    detail::hiredis::reply_ptr r(static_cast<redisReply*>(
        redisCommandArgv(conn_->ctx.get(), static_cast<int>(ptrs.size()), ptrs.data(), lens.data())));
    if (!r) {
      const std::string why = conn_->ctx->errstr;
      conn_->ctx.reset();
      throw redis_queue_error("distkit::redis_streams_store: " + why);
    }
    return r;
  }

  void connect() {
    const timeval ct = detail::hiredis::to_timeval(options_.connect_timeout);
    detail::hiredis::context_ptr c(redisConnectWithTimeout(options_.host.c_str(), options_.port, ct));
    if (!c || c->err != 0) {
      throw redis_queue_error("distkit::redis_streams_store: cannot connect to " + options_.host + ":" +
                              std::to_string(options_.port) + (c ? std::string(": ") + c->errstr : std::string()));
    }
    const timeval cmd = detail::hiredis::to_timeval(options_.command_timeout);
    redisSetTimeout(c.get(), cmd);
    conn_->ctx = std::move(c);
    for (std::uint8_t s = 0; s < detail::redis_queue::script_count; ++s) {
      const std::string body = script_text(static_cast<detail::redis_queue::script>(s));
      auto r = command({"SCRIPT", "LOAD", body});
      if (r->type != REDIS_REPLY_STRING) {
        conn_->ctx.reset();
        throw redis_queue_error("distkit::redis_streams_store: SCRIPT LOAD failed: " +
                                detail::redis_queue::text(r.get()));
      }
      conn_->sha[s] = detail::redis_queue::text(r.get());
    }
  }

  auto run(detail::redis_queue::script s, const std::vector<std::string>& args) -> detail::hiredis::reply_ptr {
    std::lock_guard lock(conn_->mutex);
    if (!conn_->ctx) connect();
    std::vector<std::string_view> argv{"EVALSHA", conn_->sha[s], "1", base_};
    for (const auto& a : args) argv.emplace_back(a);
    auto r = command(argv);
    if (r->type == REDIS_REPLY_ERROR && detail::redis_queue::text(r.get()).starts_with("NOSCRIPT")) {
      // The server lost its script cache (SCRIPT FLUSH, a restart): EVAL sends the text again.
      const std::string body = script_text(s);
      argv[0] = "EVAL";
      argv[1] = body;
      r = command(argv);
    }
    if (r->type == REDIS_REPLY_ERROR) {
      throw redis_queue_error("distkit::redis_streams_store: " + detail::redis_queue::text(r.get()));
    }
    return r;
  }

  redis_queue_options options_;
  std::string base_;
  std::unique_ptr<connection> conn_;
};

static_assert(work_queue_store<redis_streams_store>);

}  // namespace distkit::inline v0
