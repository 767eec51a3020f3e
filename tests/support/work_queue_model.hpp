// SPDX-License-Identifier: MIT
// tests/support/work_queue_model.hpp: the work queue's reference model (every rule checked by
// brute force on a flat list) and a driver that runs random operations and times against any
// work_queue<Store, manual_clock>, comparing every answer with the model's.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "distkit/work_queue.hpp"

namespace distkit_test {

// The reference model: every (group, message) pair in one flat list, every rule checked by brute
// force on each call, no indexes.
struct model {
  struct rec {
    std::string group;
    std::uint64_t seq;
    std::string id, payload;
    std::optional<std::string> key;
    std::chrono::nanoseconds visible_at;
    std::uint32_t deliveries = 0;
    std::uint64_t token = 0;
    std::chrono::nanoseconds deadline{0};
    enum { ready, leased, done, dead } state = ready;
  };
  distkit::work_queue_options o;
  std::vector<std::string> groups;
  std::vector<rec> recs;
  std::map<std::string, std::vector<distkit::dead_letter>> dead;
  std::vector<std::tuple<std::string, std::chrono::nanoseconds, std::uint64_t>> ids;  // every accepted id
  std::uint64_t seq = 0, token = 0;

  void sweep(const std::string& g, std::chrono::nanoseconds now) {
    for (auto& r : recs) {
      if (r.group == g && r.state == rec::leased && r.deadline <= now && r.deliveries >= o.max_deliver) kill(r);
    }
  }
  void kill(rec& r) {
    r.state = rec::dead;
    dead[r.group].push_back({r.seq, r.id, r.payload, r.key, r.deliveries});
  }
  auto publish(const std::string& payload, const distkit::publish_options& po, std::chrono::nanoseconds now)
      -> distkit::publish_receipt {
    if (po.id) {
      for (auto it = ids.rbegin(); it != ids.rend(); ++it) {
        if (std::get<0>(*it) == *po.id) {
          if (now - std::get<1>(*it) < o.dedupe_window) return {std::get<2>(*it), true};
          break;
        }
      }
    }
    ++seq;
    if (po.id) ids.emplace_back(*po.id, now, seq);
    for (const auto& g : groups) {
      recs.push_back(rec{g, seq, po.id ? *po.id : std::to_string(seq), payload, po.ordering_key,
                         now + std::max(po.delay, std::chrono::nanoseconds::zero())});
    }
    return {seq, false};
  }
  auto consume(const std::string& g, std::size_t max, std::chrono::nanoseconds lease, std::chrono::nanoseconds now)
      -> std::vector<distkit::delivery> {
    std::vector<distkit::delivery> out;
    if (std::find(groups.begin(), groups.end(), g) == groups.end() || max == 0) return out;
    sweep(g, now);
    for (std::size_t i = 0; i < recs.size() && out.size() < max; ++i) {
      rec& r = recs[i];
      if (r.group != g) continue;
      bool ok = (r.state == rec::ready && r.visible_at <= now) || (r.state == rec::leased && r.deadline <= now);
      for (std::size_t j = 0; ok && j < i; ++j) {
        const rec& e = recs[j];
        if (e.group == g && r.key && e.key == r.key && (e.state == rec::ready || e.state == rec::leased)) ok = false;
      }
      if (!ok) continue;
      r.state = rec::leased;
      ++r.deliveries;
      r.token = ++token;
      r.deadline = now + lease;
      out.push_back({g, r.seq, r.id, r.payload, r.key, r.deliveries, r.token, r.deadline});
    }
    return out;
  }
  auto settle(const distkit::delivery& d, distkit::settle_action a, std::chrono::nanoseconds arg,
              std::chrono::nanoseconds now) -> distkit::settle_result {
    if (std::find(groups.begin(), groups.end(), d.group) == groups.end()) return distkit::settle_result::unknown_group;
    for (auto& r : recs) {
      if (r.group != d.group || r.seq != d.seq) continue;
      if (r.state != rec::leased || r.token != d.token) return distkit::settle_result::stale;
      if (r.deadline <= now) {
        if (r.deliveries >= o.max_deliver) kill(r);
        return distkit::settle_result::lease_expired;
      }
      if (a == distkit::settle_action::ack) {
        r.state = rec::done;
        return distkit::settle_result::ok;
      }
      if (a == distkit::settle_action::extend) {
        r.deadline = now + arg;
        return distkit::settle_result::ok;
      }
      if (r.deliveries >= o.max_deliver) {
        kill(r);
        return distkit::settle_result::dead_lettered;
      }
      r.state = rec::ready;
      r.visible_at = now + std::max(arg, std::chrono::nanoseconds::zero());
      return distkit::settle_result::ok;
    }
    return distkit::settle_result::stale;
  }
  auto pending(const std::string& g, std::chrono::nanoseconds now) -> std::size_t {
    sweep(g, now);
    return static_cast<std::size_t>(std::count_if(recs.begin(), recs.end(), [&](const rec& r) {
      return r.group == g && (r.state == rec::ready || r.state == rec::leased);
    }));
  }
};

inline auto same(const distkit::delivery& a, const distkit::delivery& b) -> bool {
  return a.group == b.group && a.seq == b.seq && a.id == b.id && a.payload == b.payload &&
         a.ordering_key == b.ordering_key && a.attempt == b.attempt && a.token == b.token &&
         a.lease_deadline == b.lease_deadline;
}

/// Runs `runs` random scenarios of `steps` operations from `seed`; `make(options, clock, run)`
/// returns a fresh queue (a `std::unique_ptr<work_queue<Store, manual_clock>>`) for each run.
template <class MakeQueue>
void check_against_model(std::uint64_t seed, std::uint64_t runs, int steps, MakeQueue make) {
  for (std::uint64_t run = 0; run < runs; ++run) {
    std::mt19937_64 rng(seed + run);
    const distkit::work_queue_options o{.lease = std::chrono::seconds(1 + rng() % 10),
                                        .max_deliver = static_cast<std::uint32_t>(1 + rng() % 4),
                                        .dedupe_window = std::chrono::seconds(rng() % 20)};
    distkit::manual_clock clock;
    auto qp = make(o, clock, run);
    auto& q = *qp;
    model m;
    m.o = o;
    auto now = [&] { return clock.now().time_since_epoch(); };
    std::vector<distkit::delivery> held;  // every delivery ever made, settled or not
    const std::vector<std::string> group_names{"a", "b", "c"};
    for (int step = 0; step < steps; ++step) {
      INFO("seed " << seed << " run " << run << " step " << step);
      switch (rng() % 11) {
        case 0: {
          const auto& g = group_names[rng() % group_names.size()];
          q.add_group(g);
          if (std::find(m.groups.begin(), m.groups.end(), g) == m.groups.end()) m.groups.push_back(g);
          break;
        }
        case 1:
        case 2: {
          distkit::publish_options po;
          if (rng() % 3 == 0) po.id = "id" + std::to_string(rng() % 5);
          if (rng() % 2 == 0) po.ordering_key = "k" + std::to_string(rng() % 3);
          if (rng() % 4 == 0) po.delay = std::chrono::milliseconds(rng() % 5000);
          const std::string payload = "p" + std::to_string(step);
          const auto got = q.publish(payload, po);
          const auto want = m.publish(payload, po, now());
          REQUIRE(got.seq == want.seq);
          REQUIRE(got.duplicate == want.duplicate);
          break;
        }
        case 3:
        case 4: {
          const auto& g = group_names[rng() % group_names.size()];
          const std::size_t max = rng() % 4;
          const auto lease = rng() % 2 ? o.lease : std::chrono::milliseconds(1 + rng() % 3000);
          auto got = q.consume(g, "c", max, lease);
          auto want = m.consume(g, max, lease, now());
          REQUIRE(got.size() == want.size());
          for (std::size_t i = 0; i < got.size(); ++i) REQUIRE(same(got[i], want[i]));
          held.insert(held.end(), got.begin(), got.end());
          break;
        }
        case 5:
        case 6: {
          if (held.empty()) break;
          // Mostly recent deliveries, sometimes an old one (a stale token).
          const std::size_t i =
              rng() % 3 ? held.size() - 1 - rng() % std::min<std::size_t>(held.size(), 4) : rng() % held.size();
          const auto& d = held[i];
          const auto action = static_cast<distkit::settle_action>(rng() % 3);
          const auto arg = std::chrono::milliseconds(1 + rng() % 4000);
          distkit::settle_result got{};
          switch (action) {
            case distkit::settle_action::ack:
              got = q.ack(d);
              break;
            case distkit::settle_action::nack:
              got = q.nack(d, arg);
              break;
            case distkit::settle_action::extend:
              got = q.extend(d, arg);
              break;
          }
          REQUIRE(got == m.settle(d, action, arg, now()));
          break;
        }
        case 9: {
          // A batch ack of a few recent (some maybe stale) deliveries: answered as if one by one.
          if (held.empty()) break;
          std::vector<distkit::delivery> batch;
          for (std::size_t k = 1 + rng() % 4; k > 0; --k) {
            batch.push_back(held[held.size() - 1 - rng() % std::min<std::size_t>(held.size(), 6)]);
          }
          const auto got = q.ack(std::span<const distkit::delivery>(batch));
          REQUIRE(got.size() == batch.size());
          for (std::size_t k = 0; k < batch.size(); ++k) {
            REQUIRE(got[k] == m.settle(batch[k], distkit::settle_action::ack, {}, now()));
          }
          break;
        }
        case 10: {
          // A batch publish: answered as if published one by one at the same time.
          std::vector<std::string> payloads;
          std::vector<distkit::publish_options> opts;
          for (std::size_t k = 1 + rng() % 4; k > 0; --k) {
            distkit::publish_options po;
            if (rng() % 3 == 0) po.id = "id" + std::to_string(rng() % 5);
            if (rng() % 2 == 0) po.ordering_key = "k" + std::to_string(rng() % 3);
            if (rng() % 4 == 0) po.delay = std::chrono::milliseconds(rng() % 5000);
            payloads.push_back("b" + std::to_string(step) + "." + std::to_string(k));
            opts.push_back(po);
          }
          const auto copy = payloads;
          const auto got = q.publish(std::span<std::string>(payloads), opts);
          REQUIRE(got.size() == copy.size());
          for (std::size_t k = 0; k < copy.size(); ++k) {
            const auto want = m.publish(copy[k], opts[k], now());
            REQUIRE(got[k].seq == want.seq);
            REQUIRE(got[k].duplicate == want.duplicate);
          }
          break;
        }
        case 7: {
          const auto& g = group_names[rng() % group_names.size()];
          REQUIRE(q.pending(g) == m.pending(g, now()));
          const auto dead = q.dead_letters(g);
          const auto& want = m.dead[g];
          REQUIRE(dead.size() == want.size());
          for (std::size_t i = 0; i < dead.size(); ++i) {
            REQUIRE(dead[i].seq == want[i].seq);
            REQUIRE(dead[i].deliveries == want[i].deliveries);
            REQUIRE(dead[i].payload == want[i].payload);
          }
          break;
        }
        default:
          clock.advance(std::chrono::milliseconds(rng() % 3000));
          break;
      }
    }
  }
}

}  // namespace distkit_test
