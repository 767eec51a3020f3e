// SPDX-License-Identifier: MIT
// distkit/redis/rate_limiter_store.hpp: a rate limiter store shared across processes via Redis.
//
// Needs hiredis (CMake target `distkit::redis`). Each decision is one round trip: a Lua script
// that runs atomically inside Redis and reads Redis's own clock (`TIME`), so every process and
// thread sharing the server shares one exact limit, whatever their clocks say.
#pragma once

#include <hiredis/hiredis.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include "distkit/detail/error.hpp"
#include "distkit/rate_limiter.hpp"
#include "distkit/redis/hiredis_support.hpp"

namespace distkit::inline v0 {

/// @brief What a store answers when it cannot reach its server.
enum class failure_mode : std::uint8_t {
  fail_closed,  ///< refuse (protects the backend; the default)
  fail_open,    ///< allow (protects availability)
};

/// @brief Connection and failure options of `redis_store`.
struct redis_options {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::chrono::milliseconds connect_timeout{200};  ///< bound on each connection attempt
  std::chrono::milliseconds command_timeout{200};  ///< bound on each decision's round trip
  failure_mode on_failure = failure_mode::fail_closed;
  std::chrono::milliseconds failure_retry_after{1000};  ///< `retry_after` of a fail-closed decision (> 0)
  std::chrono::milliseconds reconnect_interval{100};    ///< at most one reconnect per connection per interval (> 0)
  std::size_t connections = 1;                          ///< connections in the pool; threads pick one by id
  std::string key_prefix = "distkit:rl:";
};

namespace detail {

// The exact sliding log, server-side: a sorted set of admitted units scored by Redis time in
// microseconds, members drawn from a per-key sequence so two units never collide.
// KEYS: log, sequence. ARGV: limit, window_us, cost. Returns {allowed, remaining, retry_us, reset_us}.
inline constexpr std::string_view redis_log_script = R"lua(
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - window))
local count = redis.call('ZCARD', KEYS[1])
if count + cost <= limit then
  if cost > 0 then
    local seq = redis.call('INCRBY', KEYS[2], cost)
    local score = string.format('%.0f', now)
    for i = seq - cost + 1, seq do
      redis.call('ZADD', KEYS[1], score, i)
    end
    local ttl = math.floor(window / 1000) + 1
    redis.call('PEXPIRE', KEYS[1], ttl)
    redis.call('PEXPIRE', KEYS[2], ttl)
  end
  count = count + cost
  local reset = 0
  if count > 0 then
    local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
    reset = tonumber(newest[2]) + window - now
  end
  return {1, limit - count, 0, reset}
end
local k = count + cost - limit
local oldest = redis.call('ZRANGE', KEYS[1], k - 1, k - 1, 'WITHSCORES')
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
return {0, limit - count, tonumber(oldest[2]) + window - now, tonumber(newest[2]) + window - now}
)lua";

// GCRA, server-side: one string per key holding the theoretical arrival time in microseconds.
// KEYS: tat. ARGV: interval_us, tau_us, cost. Returns {allowed, remaining, retry_us, reset_us}.
inline constexpr std::string_view redis_gcra_script = R"lua(
local interval = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + cost * interval
local allow_at = new_tat - tau
if now < allow_at then
  return {0, math.floor((tau - (tat - now)) / interval), allow_at - now, tat - now}
end
if new_tat > now then
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1)
end
return {1, math.floor((tau - (new_tat - now)) / interval), 0, new_tat - now}
)lua";

}  // namespace detail

/// @brief A `limiter_store` in Redis: the limit is shared by every process using the same
/// server and key prefix.
///
/// Runs `sliding_window_log` (a sorted set per key: ZREMRANGEBYSCORE, ZCARD, ZADD of unique
/// members, PEXPIRE) or `gcra` (one timestamp per key, redis-cell's algorithm) as a Lua script,
/// loaded once with SCRIPT LOAD and run with EVALSHA (EVAL when the server answers NOSCRIPT),
/// timed by Redis's `TIME` in microseconds. The caller's `now` is ignored. Keys are
/// `<key_prefix>{<key bytes>}:log` (+ `:seq`) or `...:gcra`, and expire by themselves once idle
/// (PEXPIRE / SET PX).
///
/// A connection that fails, times out or refuses is dropped and the request gets the
/// configured `failure_mode` decision with `refusal::store_unavailable`; the store reconnects
/// on a later call (at most once per `reconnect_interval`). It never throws from `try_acquire`,
/// and every call is bounded by the connect and command timeouts.
///
/// @tparam Algorithm `sliding_window_log` or `gcra`.
/// @throws std::invalid_argument (constructor) naming the bad parameter (`limit`, `window`,
///         `port`, `host`, `connections`, `connect_timeout`, `command_timeout`,
///         `failure_retry_after`, `reconnect_interval`).
/// **Thread safety:** all members may be called concurrently; calls on one pooled connection
/// are serialised.
///
/// @code
/// distkit::redis_options o; o.port = 6379; o.on_failure = distkit::failure_mode::fail_open;
/// distkit::rate_limiter<distkit::gcra, distkit::steady_time, distkit::redis_store<distkit::gcra>> limiter{
///     distkit::redis_store<distkit::gcra>{{.limit = 100, .window = std::chrono::seconds(1)}, o}};
/// @endcode
template <window_algorithm Algorithm>
class redis_store {
  static_assert(std::is_same_v<Algorithm, sliding_window_log> || std::is_same_v<Algorithm, gcra>,
                "distkit::redis_store: runs sliding_window_log or gcra; use local_store for the others");

 public:
  explicit redis_store(rate_limit limit, const redis_options& options = {})
      : policy_(limit), params_(limit_params::from(limit, "redis_store")), impl_(std::make_unique<impl>()) {
    constexpr std::string_view component = "redis_store";
    window_us_ = params_.window / 1000;
    if (window_us_ < static_cast<std::int64_t>(params_.limit)) {
      detail::throw_invalid_argument(component, "window", "must be at least limit microseconds", params_.window);
    }
    if (options.host.empty()) detail::throw_invalid_argument(component, "host", "must not be empty");
    if (options.port < 1 || options.port > 65535) {
      detail::throw_invalid_argument(component, "port", "must be in [1, 65535]", options.port);
    }
    if (options.connections < 1 || options.connections > 1024) {
      detail::throw_invalid_argument(component, "connections", "must be in [1, 1024]", options.connections);
    }
    if (options.connect_timeout.count() <= 0) {
      detail::throw_invalid_argument(component, "connect_timeout", "must be positive (ms)",
                                     options.connect_timeout.count());
    }
    if (options.command_timeout.count() <= 0) {
      detail::throw_invalid_argument(component, "command_timeout", "must be positive (ms)",
                                     options.command_timeout.count());
    }
    if (options.failure_retry_after.count() <= 0) {
      detail::throw_invalid_argument(component, "failure_retry_after", "must be positive (ms)",
                                     options.failure_retry_after.count());
    }
    // Without a pause between reconnects, callers queued on one connection to a frozen server
    // each make their own attempt after waiting out another's.
    if (options.reconnect_interval.count() <= 0) {
      detail::throw_invalid_argument(component, "reconnect_interval", "must be positive (ms)",
                                     options.reconnect_interval.count());
    }
    interval_us_ = window_us_ / static_cast<std::int64_t>(params_.limit);
    tau_us_ = interval_us_ * static_cast<std::int64_t>(params_.limit);
    impl_->options = options;
    impl_->pool.reserve(impl_->options.connections);
    for (std::size_t i = 0; i < impl_->options.connections; ++i) impl_->pool.push_back(std::make_unique<connection>());
  }

  [[nodiscard]] auto policy() const noexcept -> const rate_limit& { return policy_; }
  [[nodiscard]] auto options() const noexcept -> const redis_options& { return impl_->options; }

  /// One decision, one round trip. `now_ns` is ignored (Redis's clock decides).
  auto try_acquire(std::string_view key, std::uint64_t cost, std::int64_t /*now_ns*/) -> decision {
    connection& c = pick();
    std::unique_lock<std::mutex> guard(c.mutex, std::try_to_lock);
    const bool waited = !guard.owns_lock();
    if (waited) guard.lock();
    // A caller that waited for the connection while another's attempt failed does not start one
    // of its own: its wait plus its own attempt could exceed the documented bound.
    if (c.ctx == nullptr && (waited || !connect(c))) return failed();

    // "<prefix>{<key>}:<algorithm>": the hash tag keeps a key's entries in one cluster slot, the
    // suffix keeps a log and a GCRA limiter on the same prefix from reading each other's type.
    std::string main_key = impl_->options.key_prefix;
    main_key.append("{").append(key).append("}:").append(tag());
    const std::string cost_arg = std::to_string(cost);
    std::vector<std::string> args;
    if constexpr (std::is_same_v<Algorithm, sliding_window_log>) {
      std::string seq_key = main_key + ":seq";
      args = {
          "2",     std::move(main_key), std::move(seq_key), std::to_string(params_.limit), std::to_string(window_us_),
          cost_arg};
    } else {
      args = {"1", std::move(main_key), std::to_string(interval_us_), std::to_string(tau_us_), cost_arg};
    }
    detail::hiredis::reply_ptr reply = run_script(c, args);
    if (!reply) return failed();
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4) {
      record_error(reply->type == REDIS_REPLY_ERROR ? std::string(reply->str, reply->len)
                                                    : std::string("unexpected reply from the script"));
      return failed();
    }
    std::int64_t v[4] = {};
    for (std::size_t i = 0; i < 4; ++i) {
      if (reply->element[i]->type != REDIS_REPLY_INTEGER) {
        record_error("unexpected reply from the script");
        return failed();
      }
      v[i] = static_cast<std::int64_t>(reply->element[i]->integer);
    }
    decision d;
    d.allowed = v[0] == 1;
    d.reason = d.allowed ? refusal::none : refusal::rate_limited;
    d.remaining = v[1] > 0 ? static_cast<std::uint64_t>(v[1]) : 0;
    d.retry_after = std::chrono::microseconds(v[2] > 0 ? v[2] : 0);
    d.reset_after = std::chrono::microseconds(v[3] > 0 ? v[3] : 0);
    d.limit = params_.limit;
    return d;
  }

  /// Decisions answered by the failure mode so far.
  [[nodiscard]] auto failures() const noexcept -> std::uint64_t {
    return impl_->failures.load(std::memory_order_relaxed);
  }

  /// The last connection or server error, for logs.
  [[nodiscard]] auto last_error() const -> std::string {
    std::lock_guard<std::mutex> guard(impl_->error_mutex);
    return impl_->last_error;
  }

 private:
  struct connection {
    std::mutex mutex;
    redisContext* ctx = nullptr;
    std::string sha;
    std::chrono::steady_clock::time_point next_attempt{};
    connection() = default;
    connection(const connection&) = delete;
    auto operator=(const connection&) -> connection& = delete;
    ~connection() {
      if (ctx != nullptr) redisFree(ctx);
    }
  };

  struct impl {
    redis_options options;
    std::vector<std::unique_ptr<connection>> pool;
    std::atomic<std::uint64_t> failures{0};
    std::mutex error_mutex;
    std::string last_error;
  };

  static constexpr std::string_view tag() noexcept {
    if constexpr (std::is_same_v<Algorithm, sliding_window_log>) {
      return "log";
    } else {
      return "gcra";
    }
  }

  static constexpr std::string_view script() noexcept {
    if constexpr (std::is_same_v<Algorithm, sliding_window_log>) {
      return detail::redis_log_script;
    } else {
      return detail::redis_gcra_script;
    }
  }

  auto pick() -> connection& {
    const std::size_t n = impl_->pool.size();
    const std::size_t i = n == 1 ? 0 : std::hash<std::thread::id>{}(std::this_thread::get_id()) % n;
    return *impl_->pool[i];
  }

  void record_error(const std::string& what) {
    std::lock_guard<std::mutex> guard(impl_->error_mutex);
    impl_->last_error = what;
  }

  auto failed() -> decision {
    impl_->failures.fetch_add(1, std::memory_order_relaxed);
    decision d;
    d.limit = params_.limit;
    d.reason = refusal::store_unavailable;
    d.allowed = impl_->options.on_failure == failure_mode::fail_open;
    d.remaining = 0;
    if (!d.allowed) d.retry_after = impl_->options.failure_retry_after;
    return d;
  }

  void drop(connection& c, std::string why) {
    record_error(why);
    if (c.ctx != nullptr) redisFree(c.ctx);
    c.ctx = nullptr;
    c.next_attempt = std::chrono::steady_clock::now() + impl_->options.reconnect_interval;
  }

  auto command(connection& c, const std::vector<std::string>& parts) -> detail::hiredis::reply_ptr {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    argv.reserve(parts.size());
    lens.reserve(parts.size());
    for (const std::string& p : parts) {
      argv.push_back(p.data());
      lens.push_back(p.size());
    }
    const detail::hiredis::sigpipe_guard guard;
    void* raw = redisCommandArgv(c.ctx, static_cast<int>(argv.size()), argv.data(), lens.data());
    if (raw == nullptr) {
      drop(c, c.ctx->errstr[0] != '\0' ? std::string(c.ctx->errstr) : std::string("connection lost"));
      return nullptr;
    }
    return detail::hiredis::reply_ptr(static_cast<redisReply*>(raw));
  }

  auto connect(connection& c) -> bool {
    if (std::chrono::steady_clock::now() < c.next_attempt) return false;
    const redis_options& o = impl_->options;
    c.ctx = redisConnectWithTimeout(o.host.c_str(), o.port, detail::hiredis::to_timeval(o.connect_timeout));
    if (c.ctx == nullptr || c.ctx->err != 0) {
      drop(c, c.ctx != nullptr ? std::string(c.ctx->errstr) : std::string("cannot allocate a connection"));
      return false;
    }
    if (redisSetTimeout(c.ctx, detail::hiredis::to_timeval(o.command_timeout)) != REDIS_OK) {
      drop(c, "cannot set the command timeout");
      return false;
    }
    detail::hiredis::reply_ptr r = command(c, {"SCRIPT", "LOAD", std::string(script())});
    if (!r) return false;
    if (r->type != REDIS_REPLY_STRING) {
      drop(c, r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len) : std::string("SCRIPT LOAD failed"));
      return false;
    }
    c.sha.assign(r->str, r->len);
    return true;
  }

  auto run_script(connection& c, const std::vector<std::string>& args) -> detail::hiredis::reply_ptr {
    std::vector<std::string> parts;
    parts.reserve(args.size() + 2);
    parts.emplace_back("EVALSHA");
    parts.push_back(c.sha);
    parts.insert(parts.end(), args.begin(), args.end());
    detail::hiredis::reply_ptr r = command(c, parts);
    if (r && r->type == REDIS_REPLY_ERROR && std::string_view(r->str, r->len).starts_with("NOSCRIPT")) {
      // The server lost its script cache (restart, SCRIPT FLUSH): EVAL sends and caches it again.
      parts[0] = "EVAL";
      parts[1] = std::string(script());
      r = command(c, parts);
    }
    return r;
  }

  rate_limit policy_;
  limit_params params_;
  std::int64_t window_us_ = 0;
  std::int64_t interval_us_ = 0;
  std::int64_t tau_us_ = 0;
  std::unique_ptr<impl> impl_;
};

}  // namespace distkit::inline v0
