// SPDX-License-Identifier: MIT
// Tests of distkit::work_queue over memory_store: leases and redelivery, fenced acks, dead
// letters after exactly max_deliver, nack delays, per-key order, groups, dedupe, delays, a
// reference model under random operations and times, and concurrent consumers.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "distkit/work_queue.hpp"
#include "support/seed.hpp"
#include "support/work_queue_model.hpp"

namespace {

using namespace std::chrono_literals;
using queue_t = distkit::work_queue<distkit::memory_store, distkit::manual_clock>;

auto make_queue(distkit::manual_clock& clock, distkit::work_queue_options o = {.lease = 10s, .max_deliver = 3}) {
  return std::make_unique<queue_t>(o, clock);
}

}  // namespace

TEST_CASE("work_queue store policy models its concept", "[work_queue][concepts]") {
  STATIC_REQUIRE(distkit::work_queue_store<distkit::memory_store>);
  STATIC_REQUIRE_FALSE(distkit::work_queue_store<int>);
}

TEST_CASE("work_queue rejects invalid configuration naming the parameter", "[work_queue][config]") {
  using Catch::Matchers::Contains;
  REQUIRE_THROWS_WITH(distkit::work_queue<>({.lease = 0s}), Contains("distkit::work_queue: lease"));
  REQUIRE_THROWS_WITH(distkit::work_queue<>({.max_deliver = 0}), Contains("distkit::work_queue: max_deliver"));
  REQUIRE_THROWS_WITH(distkit::work_queue<>({.dedupe_window = -1s}), Contains("distkit::work_queue: dedupe_window"));
  distkit::work_queue<> q;
  REQUIRE_THROWS_AS(q.consume("g", "c", 1, -1s), std::invalid_argument);
  std::vector<std::string> payloads{"a", "b"};
  const std::vector<distkit::publish_options> one(1);
  REQUIRE_THROWS_WITH(q.publish(std::span<std::string>(payloads), one), Contains("distkit::work_queue: po"));
}

TEST_CASE("work_queue redelivers after the lease and refuses the late ack", "[work_queue][lease]") {
  distkit::manual_clock clock;
  auto q = make_queue(clock);
  q->add_group("g");
  REQUIRE(q->publish("job").seq == 1);
  auto first = q->consume("g", "c1");
  REQUIRE(first.size() == 1);
  REQUIRE(first[0].attempt == 1);
  REQUIRE(q->consume("g", "c2").empty());  // hidden while leased
  clock.advance(10s);
  SECTION("late ack before anyone took it again") {
    REQUIRE(q->ack(first[0]) == distkit::settle_result::lease_expired);
    REQUIRE(q->pending("g") == 1);
  }
  SECTION("late ack after a redelivery") {
    auto second = q->consume("g", "c2");
    REQUIRE(second.size() == 1);
    REQUIRE(second[0].attempt == 2);
    REQUIRE(second[0].token != first[0].token);
    REQUIRE(q->ack(first[0]) == distkit::settle_result::stale);
    REQUIRE(q->extend(first[0], 5s) == distkit::settle_result::stale);
    REQUIRE(q->ack(second[0]) == distkit::settle_result::ok);
    REQUIRE(q->ack(second[0]) == distkit::settle_result::stale);  // settled once only
    REQUIRE(q->pending("g") == 0);
  }
}

TEST_CASE("work_queue extends a lease on request", "[work_queue][lease]") {
  distkit::manual_clock clock;
  auto q = make_queue(clock);
  q->add_group("g");
  (void)q->publish("job");
  auto d = q->consume("g", "c1");
  clock.advance(9s);
  REQUIRE(q->extend(d[0], 10s) == distkit::settle_result::ok);
  clock.advance(9s);
  REQUIRE(q->consume("g", "c2").empty());
  REQUIRE(q->ack(d[0]) == distkit::settle_result::ok);
}

TEST_CASE("work_queue moves a poison message to the dead letters after exactly max_deliver attempts",
          "[work_queue][dlq]") {
  distkit::manual_clock clock;
  auto q = make_queue(clock, {.lease = 10s, .max_deliver = 3});
  q->add_group("g");
  (void)q->publish("poison");
  SECTION("by nack") {
    for (std::uint32_t attempt = 1; attempt <= 3; ++attempt) {
      auto d = q->consume("g", "c");
      REQUIRE(d.size() == 1);
      REQUIRE(d[0].attempt == attempt);
      REQUIRE(q->nack(d[0]) == (attempt < 3 ? distkit::settle_result::ok : distkit::settle_result::dead_lettered));
    }
  }
  SECTION("by lease expiry") {
    for (std::uint32_t attempt = 1; attempt <= 3; ++attempt) {
      auto d = q->consume("g", "c");
      REQUIRE(d.size() == 1);
      REQUIRE(d[0].attempt == attempt);
      clock.advance(10s);
    }
  }
  REQUIRE(q->consume("g", "c").empty());
  auto dead = q->dead_letters("g");
  REQUIRE(dead.size() == 1);
  REQUIRE(dead[0].payload == "poison");
  REQUIRE(dead[0].deliveries == 3);
  REQUIRE(q->pending("g") == 0);
}

TEST_CASE("work_queue nack with a delay hides the message for that long", "[work_queue][nack]") {
  distkit::manual_clock clock;
  auto q = make_queue(clock);
  q->add_group("g");
  (void)q->publish("job");
  auto d = q->consume("g", "c");
  REQUIRE(q->nack(d[0], 5s) == distkit::settle_result::ok);
  REQUIRE(q->nack(d[0]) == distkit::settle_result::stale);
  clock.advance(4s);
  REQUIRE(q->consume("g", "c").empty());
  clock.advance(1s);
  auto again = q->consume("g", "c");
  REQUIRE(again.size() == 1);
  REQUIRE(again[0].attempt == 2);
}

TEST_CASE("work_queue delays delivery of a delayed publish", "[work_queue][delay]") {
  distkit::manual_clock clock;
  auto q = make_queue(clock);
  q->add_group("g");
  (void)q->publish("later", {.delay = 30s});
  (void)q->publish("now");
  auto d = q->consume("g", "c", 10);
  REQUIRE(d.size() == 1);
  REQUIRE(d[0].payload == "now");
  REQUIRE(q->ack(d[0]) == distkit::settle_result::ok);
  clock.advance(29s);
  REQUIRE(q->consume("g", "c", 10).empty());
  clock.advance(1s);
  d = q->consume("g", "c", 10);
  REQUIRE(d.size() == 1);
  REQUIRE(d[0].payload == "later");
}

TEST_CASE("work_queue hands out one message per ordering key at a time, in publish order", "[work_queue][order]") {
  distkit::manual_clock clock;
  auto q = make_queue(clock);
  q->add_group("g");
  (void)q->publish("a1", {.ordering_key = "a"});
  (void)q->publish("b1", {.ordering_key = "b"});
  (void)q->publish("a2", {.ordering_key = "a"});
  (void)q->publish("x");
  auto d = q->consume("g", "c", 10);
  REQUIRE(d.size() == 3);
  REQUIRE(d[0].payload == "a1");
  REQUIRE(d[1].payload == "b1");
  REQUIRE(d[2].payload == "x");
  REQUIRE(q->nack(d[0]) == distkit::settle_result::ok);  // a1 retried before a2
  auto again = q->consume("g", "c", 10);
  REQUIRE(again.size() == 1);
  REQUIRE(again[0].payload == "a1");
  REQUIRE(q->ack(again[0]) == distkit::settle_result::ok);
  auto next = q->consume("g", "c", 10);
  REQUIRE(next.size() == 1);
  REQUIRE(next[0].payload == "a2");
}

TEST_CASE("work_queue gives every group every message and shares a group's messages between its consumers",
          "[work_queue][groups]") {
  distkit::manual_clock clock;
  auto q = make_queue(clock);
  q->add_group("billing");
  q->add_group("audit");
  for (int i = 0; i < 4; ++i) (void)q->publish("m" + std::to_string(i));
  q->add_group("late");  // sees only what comes after it
  (void)q->publish("m4");
  auto b1 = q->consume("billing", "b1", 3);
  auto b2 = q->consume("billing", "b2", 3);
  auto a = q->consume("audit", "a1", 10);
  auto l = q->consume("late", "l1", 10);
  REQUIRE(b1.size() == 3);
  REQUIRE(b2.size() == 2);  // the consumers of one group split the five
  REQUIRE(b1[0].seq == 1);
  REQUIRE(b2[0].seq == 4);
  REQUIRE(a.size() == 5);
  REQUIRE(l.size() == 1);
  REQUIRE(l[0].payload == "m4");
  REQUIRE(q->consume("nobody", "x").empty());
  REQUIRE(q->ack(distkit::delivery{.group = "nobody", .seq = 1, .token = 1}) == distkit::settle_result::unknown_group);
}

TEST_CASE("work_queue deduplicates a message id within the window only", "[work_queue][dedupe]") {
  distkit::manual_clock clock;
  auto q = make_queue(clock, {.lease = 10s, .max_deliver = 3, .dedupe_window = 60s});
  q->add_group("g");
  auto r1 = q->publish("x", {.id = "order-7"});
  clock.advance(59s);
  auto r2 = q->publish("x again", {.id = "order-7"});
  REQUIRE_FALSE(r1.duplicate);
  REQUIRE(r2.duplicate);
  REQUIRE(r2.seq == r1.seq);
  REQUIRE(q->pending("g") == 1);
  clock.advance(1s);
  auto r3 = q->publish("x later", {.id = "order-7"});
  REQUIRE_FALSE(r3.duplicate);
  REQUIRE(q->pending("g") == 2);
  auto d = q->consume("g", "c", 10);
  REQUIRE(d[0].id == "order-7");
}

TEST_CASE("work_queue matches a reference model under random operations and times", "[work_queue][model]") {
  const auto seed = distkit_test::test_seed("work_queue model");
  distkit_test::check_against_model(
      seed, 40, 400, [](const distkit::work_queue_options& o, distkit::manual_clock& clock, std::uint64_t /*run*/) {
        return std::make_unique<queue_t>(o, clock);
      });
}

TEST_CASE("work_queue consumers on many threads complete every message once, counting redeliveries",
          "[work_queue][concurrent]") {
  const auto seed = distkit_test::test_seed("work_queue threads");
  distkit::manual_clock clock;
  distkit::work_queue<distkit::memory_store, distkit::manual_clock> q({.lease = 5s, .max_deliver = 1000}, clock);
  q.add_group("g");
  constexpr int messages = 2000;
  for (int i = 0; i < messages; ++i) (void)q.publish(std::to_string(i));
  std::vector<std::atomic<int>> acked(messages + 1);
  std::atomic<int> done{0};
  std::atomic<std::uint64_t> redeliveries{0};
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937_64 rng(seed + static_cast<std::uint64_t>(t));
        while (done.load() < messages) {
          for (auto& d : q.consume("g", "c" + std::to_string(t), 1 + rng() % 4)) {
            if (d.attempt > 1) redeliveries.fetch_add(1);
            if (rng() % 5 == 0) continue;  // this consumer "crashes": the lease runs out
            if (q.ack(d) == distkit::settle_result::ok) {
              acked[d.seq].fetch_add(1);
              done.fetch_add(1);
            }
          }
          if (t == 0) clock.advance(1s);  // time moves on; abandoned leases expire
        }
      });
    }
  }
  for (int s = 1; s <= messages; ++s) REQUIRE(acked[static_cast<std::size_t>(s)].load() == 1);
  REQUIRE(redeliveries.load() > 0);
  REQUIRE(q.pending("g") == 0);
}
