// SPDX-License-Identifier: MIT
// distkit/load_balancer_sim.hpp: a seeded discrete-event load simulator for client-side load
// balancing policies — backends with latency distributions, worker limits, failures,
// slowdowns, outages and membership churn, driven by many closed-loop clients.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <utility>
#include <vector>

#include "distkit/clock.hpp"
#include "distkit/detail/error.hpp"

namespace distkit::inline v0 {

/// @brief One simulated backend.
struct sim_backend {
  std::string name;
  /// Service time: log-normal with this median and shape `latency_sigma` (0: constant).
  std::chrono::nanoseconds median_latency = std::chrono::milliseconds(10);
  double latency_sigma = 0.25;
  /// Requests served at once; the rest wait in a FIFO queue (their wait counts as latency).
  std::uint32_t workers = 4;
  /// Each served request fails with this probability (after its service time).
  double failure_probability = 0.0;
  /// Present in the balancers from the start (a later `sim_membership` event may add it).
  bool initially_present = true;
};

/// @brief During [start, end) the backend's service time grows by `extra`.
struct sim_slowdown {
  std::size_t backend = 0;
  std::chrono::nanoseconds start{0};
  std::chrono::nanoseconds end{0};
  std::chrono::nanoseconds extra{0};
};

/// @brief During [start, end) the backend answers every request with a failure after
/// `failure_latency` (a crashed process behind a live port, say).
struct sim_outage {
  std::size_t backend = 0;
  std::chrono::nanoseconds start{0};
  std::chrono::nanoseconds end{0};
  std::chrono::nanoseconds failure_latency = std::chrono::milliseconds(1);
};

/// @brief At `at`, every client adds (`present`) or removes the backend from its balancer.
struct sim_membership {
  std::chrono::nanoseconds at{0};
  std::size_t backend = 0;
  bool present = false;
};

/// @brief A whole simulation: backends, events and the closed-loop load.
///
/// `clients` processes each own a balancer; each has `users_per_client` users that send one
/// request, wait for its answer, think for an exponentially distributed time (mean
/// `think_time`), and send the next. Statistics count requests that end after `warmup`.
struct sim_config {
  std::vector<sim_backend> backends;
  std::vector<sim_slowdown> slowdowns;
  std::vector<sim_outage> outages;
  std::vector<sim_membership> membership;
  std::size_t clients = 8;
  std::size_t users_per_client = 8;
  /// With the default backends, 8 x 8 users thinking 60 ms load them to about 55%.
  std::chrono::nanoseconds think_time = std::chrono::milliseconds(60);
  std::chrono::nanoseconds duration = std::chrono::seconds(60);
  std::chrono::nanoseconds warmup = std::chrono::seconds(5);
  /// A pick that finds no endpoint waits this long before the user tries again.
  std::chrono::nanoseconds retry_after_no_endpoint = std::chrono::milliseconds(10);
  std::uint64_t seed = 1;
};

/// @brief What a simulation measured (after the warm-up).
struct sim_result {
  struct backend_result {
    std::uint64_t requests = 0;
    std::uint64_t failures = 0;
  };
  std::vector<backend_result> backends;
  std::uint64_t requests = 0;
  std::uint64_t failures = 0;
  std::uint64_t no_endpoint = 0;  ///< picks that found no endpoint
  /// End-to-end latencies (queueing included) in ns, sorted.
  std::vector<std::int64_t> latencies_ns;

  /// The fraction of requests that reached `backend`.
  [[nodiscard]] auto share(std::size_t backend) const noexcept -> double {
    return requests == 0 ? 0.0 : static_cast<double>(backends.at(backend).requests) / static_cast<double>(requests);
  }
  /// The `q`-quantile (0..1) of the latencies, in ms (nearest rank).
  [[nodiscard]] auto quantile_ms(double q) const noexcept -> double {
    if (latencies_ns.empty()) return 0.0;
    const double rank = std::ceil(q * static_cast<double>(latencies_ns.size()));
    const auto i = static_cast<std::size_t>(std::clamp(rank, 1.0, static_cast<double>(latencies_ns.size()))) - 1;
    return static_cast<double>(latencies_ns[i]) / 1e6;
  }
  [[nodiscard]] auto failure_rate() const noexcept -> double {
    return requests == 0 ? 0.0 : static_cast<double>(failures) / static_cast<double>(requests);
  }
};

namespace detail {

// splitmix64: small, fast and identical on every platform (std distributions are not).
class sim_random {
 public:
  explicit sim_random(std::uint64_t seed) noexcept : state_(seed) {}
  auto next() noexcept -> std::uint64_t {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  auto uniform() noexcept -> double { return static_cast<double>((next() >> 11) + 1) * 0x1.0p-53; }  // (0, 1]
  auto exponential(double mean) noexcept -> double { return -mean * std::log(uniform()); }
  auto normal() noexcept -> double {  // Box-Muller
    const double u1 = uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  std::uint64_t state_;
};

}  // namespace detail

/// @brief Runs a simulation with one balancer per client, made by
/// `make_balancer(client_index, clock)` (returns `std::unique_ptr<Balancer>`). The balancer is
/// any type with `add(const std::string&)`, `remove(const std::string&)` and `try_pick()`
/// returning an optional handle with `endpoint()`, `success(latency)` and `failure(latency)`
/// (`load_balancer` with any picker, or your own policy). Its clock must be the `manual_clock`
/// it is given: the simulation moves it.
///
/// Same config and seed, same result: service times and failures draw from one seeded stream and
/// think times from another, and simultaneous events run in the order they were scheduled.
///
/// @throws std::invalid_argument for an empty backend list, a backend index out of range, zero
///         workers, or a failure probability outside [0, 1].
template <class MakeBalancer>
auto run_load_simulation(const sim_config& config, MakeBalancer&& make_balancer) -> sim_result {
  using balancer_ptr = decltype(make_balancer(std::size_t{0}, std::declval<manual_clock&>()));
  using request_type = typename std::decay_t<decltype(*std::declval<balancer_ptr&>()->try_pick())>;

  if (config.backends.empty()) detail::throw_invalid_argument("load_simulation", "backends", "must not be empty");
  const std::size_t nb = config.backends.size();
  for (const sim_backend& b : config.backends) {
    if (b.workers == 0) detail::throw_invalid_argument("load_simulation", "workers", "must be at least 1", b.workers);
    if (!(b.failure_probability >= 0.0 && b.failure_probability <= 1.0)) {
      detail::throw_invalid_argument("load_simulation", "failure_probability", "must be in [0, 1]",
                                     b.failure_probability);
    }
  }
  const auto check_index = [nb](std::size_t i) {
    if (i >= nb) detail::throw_invalid_argument("load_simulation", "backend", "must index a backend", i);
  };
  for (const auto& s : config.slowdowns) check_index(s.backend);
  for (const auto& o : config.outages) check_index(o.backend);
  for (const auto& m : config.membership) check_index(m.backend);

  manual_clock clock;
  std::vector<balancer_ptr> balancers;
  for (std::size_t c = 0; c < config.clients; ++c) {
    balancers.push_back(make_balancer(c, clock));
    for (const sim_backend& b : config.backends) {
      if (b.initially_present) balancers.back()->add(b.name);
    }
  }
  std::map<std::string, std::size_t, std::less<>> index_of;
  for (std::size_t i = 0; i < nb; ++i) index_of.emplace(config.backends[i].name, i);

  enum class kind : std::uint8_t { issue, finish, membership };
  struct event {
    std::int64_t at;
    std::uint64_t seq;  // ties resolve in creation order: the run is deterministic
    kind what;
    std::size_t a;  // issue: user; finish: request slot; membership: change index
    auto operator>(const event& o) const noexcept -> bool { return at != o.at ? at > o.at : seq > o.seq; }
  };
  struct in_flight {
    std::optional<request_type> handle;
    std::size_t user = 0;
    std::size_t backend = 0;
    std::int64_t start = 0;
    bool failed = false;
  };
  struct backend_state {
    std::uint32_t busy = 0;
    std::deque<std::size_t> queue;
  };

  std::priority_queue<event, std::vector<event>, std::greater<>> events;
  std::uint64_t seq = 0;
  std::vector<in_flight> slots;
  std::vector<std::size_t> free_slots;
  std::vector<backend_state> backends(nb);
  detail::sim_random service_random(config.seed * 0x9E3779B97F4A7C15ULL + 1);
  detail::sim_random user_random(config.seed * 0xD1B54A32D192ED03ULL + 2);
  sim_result result;
  result.backends.resize(nb);
  const std::int64_t warmup = config.warmup.count();
  const std::int64_t end = config.duration.count();
  const double think = static_cast<double>(config.think_time.count());

  const auto push = [&](std::int64_t at, kind what, std::size_t a) { events.push({at, seq++, what, a}); };
  const std::size_t users = config.clients * config.users_per_client;
  for (std::size_t u = 0; u < users; ++u) {
    push(static_cast<std::int64_t>(user_random.exponential(think)), kind::issue, u);
  }
  for (std::size_t i = 0; i < config.membership.size(); ++i) push(config.membership[i].at.count(), kind::membership, i);

  const auto extra_at = [&](std::size_t b, std::int64_t t) {
    std::int64_t extra = 0;
    for (const auto& s : config.slowdowns) {
      if (s.backend == b && t >= s.start.count() && t < s.end.count()) extra += s.extra.count();
    }
    return extra;
  };
  const auto outage_at = [&](std::size_t b, std::int64_t t) -> const sim_outage* {
    for (const auto& o : config.outages) {
      if (o.backend == b && t >= o.start.count() && t < o.end.count()) return &o;
    }
    return nullptr;
  };
  const auto serve = [&](std::size_t slot, std::int64_t t) {
    in_flight& r = slots[slot];
    const sim_backend& spec = config.backends[r.backend];
    const double median = static_cast<double>(spec.median_latency.count());
    const double service =
        spec.latency_sigma > 0.0 ? median * std::exp(spec.latency_sigma * service_random.normal()) : median;
    r.failed = service_random.uniform() <= spec.failure_probability && spec.failure_probability > 0.0;
    ++backends[r.backend].busy;
    push(t + static_cast<std::int64_t>(service) + extra_at(r.backend, t), kind::finish, slot);
  };

  while (!events.empty()) {
    const event e = events.top();
    events.pop();
    if (e.at > end) break;
    clock.set(manual_clock::time_point(std::chrono::nanoseconds(e.at)));
    if (e.what == kind::membership) {
      const sim_membership& m = config.membership[e.a];
      for (auto& lb : balancers) {
        try {
          if (m.present) {
            lb->add(config.backends[m.backend].name);
          } else {
            lb->remove(config.backends[m.backend].name);
          }
        } catch (const std::invalid_argument&) {  // already in the state asked for
        }
      }
    } else if (e.what == kind::issue) {
      const std::size_t client = e.a / config.users_per_client;
      auto picked = balancers[client]->try_pick();
      if (!picked) {
        if (e.at >= warmup) ++result.no_endpoint;
        push(e.at + config.retry_after_no_endpoint.count(), kind::issue, e.a);
        continue;
      }
      std::size_t slot = 0;
      if (free_slots.empty()) {
        slot = slots.size();
        slots.emplace_back();
      } else {
        slot = free_slots.back();
        free_slots.pop_back();
      }
      in_flight& r = slots[slot];
      r.backend = index_of.find(std::string_view(picked->endpoint()))->second;
      r.handle.emplace(std::move(*picked));
      r.user = e.a;
      r.start = e.at;
      r.failed = false;
      if (const sim_outage* o = outage_at(r.backend, e.at)) {
        r.failed = true;
        r.backend = r.backend | (std::size_t{1} << 62);  // marks "answered without a worker"
        push(e.at + o->failure_latency.count(), kind::finish, slot);
      } else if (backends[r.backend].busy < config.backends[r.backend].workers) {
        serve(slot, e.at);
      } else {
        backends[r.backend].queue.push_back(slot);
      }
    } else {  // finish
      in_flight& r = slots[e.a];
      const bool no_worker = (r.backend >> 62) != 0;
      const std::size_t b = r.backend & ~(std::size_t{1} << 62);
      if (!no_worker) {
        --backends[b].busy;
        if (!backends[b].queue.empty()) {
          const std::size_t next = backends[b].queue.front();
          backends[b].queue.pop_front();
          serve(next, e.at);
        }
      }
      const std::chrono::nanoseconds latency(e.at - r.start);
      if (r.failed) {
        r.handle->failure(latency);
      } else {
        r.handle->success(latency);
      }
      r.handle.reset();
      if (e.at >= warmup) {
        ++result.requests;
        ++result.backends[b].requests;
        if (r.failed) {
          ++result.failures;
          ++result.backends[b].failures;
        }
        result.latencies_ns.push_back(latency.count());
      }
      push(e.at + static_cast<std::int64_t>(user_random.exponential(think)), kind::issue, r.user);
      free_slots.push_back(e.a);
    }
  }
  for (auto& r : slots) r.handle.reset();  // requests still out at the end report nothing
  std::sort(result.latencies_ns.begin(), result.latencies_ns.end());
  return result;
}

}  // namespace distkit::inline v0
