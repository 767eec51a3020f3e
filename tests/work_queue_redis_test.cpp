// SPDX-License-Identifier: MIT
// tests/work_queue_redis_test.cpp: distkit::work_queue over redis_streams_store, against a real
// redis-server child process: the memory store's semantics (the same reference model under random
// operations and manual-clock times), fenced acks, dead letters after exactly max_deliver,
// consumer processes killed with SIGKILL mid-message, and a Redis crash with an fsynced AOF.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/seed.hpp"

#ifdef DISTKIT_TEST_NO_HIREDIS

TEST_CASE("work_queue redis store tests need hiredis", "[work_queue][redis]") {
  FAIL("hiredis (Debian libhiredis-dev) was not found at configure time: run scripts/install-deps");
}

#else

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <span>

#include "distkit/redis/work_queue_store.hpp"
#include "support/redis_server.hpp"
#include "support/work_queue_model.hpp"

namespace {

using namespace std::chrono_literals;
using distkit::redis_queue_options;
using distkit::redis_streams_store;
using distkit::settle_result;
using redis_queue = distkit::work_queue<redis_streams_store, distkit::manual_clock>;

auto store_options(int port, std::string queue, distkit::redis_queue_time time = distkit::redis_queue_time::caller)
    -> redis_queue_options {
  redis_queue_options o;
  o.port = port;
  o.queue = std::move(queue);
  o.time = time;
  o.key_prefix = "test:wq:";
  return o;
}

auto make_queue(const distkit_test::redis_server& server, distkit::manual_clock& clock,
                distkit::work_queue_options o = {.lease = 10s, .max_deliver = 3}, std::string name = "q")
    -> std::unique_ptr<redis_queue> {
  return std::make_unique<redis_queue>(o, clock, std::in_place, store_options(server.port(), std::move(name)));
}

// One raw command on a fresh connection (test bookkeeping, outside the store).
class raw_redis {
 public:
  explicit raw_redis(int port) : c_(redisConnectWithTimeout("127.0.0.1", port, timeval{5, 0})) {
    if (c_ == nullptr || c_->err != 0) throw std::runtime_error("raw_redis: cannot connect");
  }
  raw_redis(const raw_redis&) = delete;
  auto operator=(const raw_redis&) -> raw_redis& = delete;
  ~raw_redis() { redisFree(c_); }
  auto cmd(const std::vector<std::string>& args) -> distkit::detail::hiredis::reply_ptr {
    std::vector<const char*> p;
    std::vector<std::size_t> l;
    for (const auto& a : args) {
      p.push_back(a.data());
      l.push_back(a.size());
    }
    distkit::detail::hiredis::reply_ptr r(
        static_cast<redisReply*>(redisCommandArgv(c_, static_cast<int>(p.size()), p.data(), l.data())));
    if (!r) throw std::runtime_error("raw_redis: command failed");
    return r;
  }

 private:
  redisContext* c_;
};

}  // namespace

TEST_CASE("work_queue redis store models the store concept and rejects invalid options", "[work_queue][redis]") {
  using Catch::Matchers::Contains;
  STATIC_REQUIRE(distkit::work_queue_store<redis_streams_store>);
  redis_queue_options o;
  o.port = 0;
  REQUIRE_THROWS_WITH(redis_streams_store(o), Contains("redis_streams_store: port"));
  o = {};
  o.host.clear();
  REQUIRE_THROWS_WITH(redis_streams_store(o), Contains("host"));
  o = {};
  o.queue.clear();
  REQUIRE_THROWS_WITH(redis_streams_store(o), Contains("queue"));
  o = {};
  o.command_timeout = 0ms;
  REQUIRE_THROWS_WITH(redis_streams_store(o), Contains("command_timeout"));
  o = {};
  o.connect_timeout = -1ms;
  REQUIRE_THROWS_WITH(redis_streams_store(o), Contains("connect_timeout"));
}

namespace {

// A delivery whose lease ran out is acked late: once before anyone took the message again, once
// after a redelivery. Returns both answers.
auto late_acks(const distkit_test::redis_server& server) -> std::pair<settle_result, settle_result> {
  distkit::manual_clock clock;
  auto q = make_queue(server, clock);
  q->add_group("g");
  (void)q->publish("job");
  auto first = q->consume("g", "c1");
  REQUIRE(first.size() == 1);
  clock.advance(10s);
  const settle_result before = q->ack(first[0]);
  auto second = q->consume("g", "c2");
  const settle_result after = second.empty() ? settle_result::ok : q->ack(first[0]);
  return {before, after};
}

}  // namespace

#if defined(DISTKIT_REDIS_QUEUE_MUTATION_NO_FENCE)

TEST_CASE("work_queue redis store mutation without the fence is seen by the late-ack check",
          "[work_queue][redis][mutation]") {
  distkit_test::redis_server server;
  // The check below is the normal build's, inverted: with the fence gone, both late acks pass.
  const auto [before, after] = late_acks(server);
  REQUIRE(before == settle_result::ok);
  REQUIRE(after == settle_result::ok);
}

#else

TEST_CASE("work_queue redis store fences acks: both late acks are refused", "[work_queue][redis][lease]") {
  distkit_test::redis_server server;
  const auto [before, after] = late_acks(server);
  REQUIRE(before == settle_result::lease_expired);
  REQUIRE(after == settle_result::stale);
}

TEST_CASE("work_queue redis store refuses the late ack after the lease ran out", "[work_queue][redis][lease]") {
  distkit_test::redis_server server;
  distkit::manual_clock clock;
  auto q = make_queue(server, clock);
  q->add_group("g");
  REQUIRE(q->publish("job").seq == 1);
  auto first = q->consume("g", "c1");
  REQUIRE(first.size() == 1);
  REQUIRE(first[0].attempt == 1);
  REQUIRE(first[0].lease_deadline == 10s);
  REQUIRE(q->consume("g", "c2").empty());  // hidden while leased
  clock.advance(10s);
  SECTION("late ack before anyone took it again") {
    REQUIRE(q->ack(first[0]) == settle_result::lease_expired);
    REQUIRE(q->pending("g") == 1);
  }
  SECTION("late ack after a redelivery") {
    auto second = q->consume("g", "c2");
    REQUIRE(second.size() == 1);
    REQUIRE(second[0].attempt == 2);
    REQUIRE(second[0].token != first[0].token);
    REQUIRE(q->ack(first[0]) == settle_result::stale);
    REQUIRE(q->extend(first[0], 5s) == settle_result::stale);
    REQUIRE(q->nack(first[0]) == settle_result::stale);
    REQUIRE(q->ack(second[0]) == settle_result::ok);
    REQUIRE(q->ack(second[0]) == settle_result::stale);  // settled once only
    REQUIRE(q->pending("g") == 0);
  }
}

TEST_CASE("work_queue redis store extends a lease and hides a nacked message for the nack delay",
          "[work_queue][redis][lease]") {
  distkit_test::redis_server server;
  distkit::manual_clock clock;
  auto q = make_queue(server, clock);
  q->add_group("g");
  (void)q->publish("job");
  auto d = q->consume("g", "c1");
  clock.advance(9s);
  REQUIRE(q->extend(d[0], 10s) == settle_result::ok);
  clock.advance(9s);
  REQUIRE(q->consume("g", "c2").empty());
  REQUIRE(q->nack(d[0], 5s) == settle_result::ok);
  REQUIRE(q->nack(d[0]) == settle_result::stale);
  clock.advance(4s);
  REQUIRE(q->consume("g", "c").empty());
  clock.advance(1s);
  auto again = q->consume("g", "c");
  REQUIRE(again.size() == 1);
  REQUIRE(again[0].attempt == 2);
  REQUIRE(q->ack(again[0]) == settle_result::ok);
}

TEST_CASE("work_queue redis store dead-letters a poison message after exactly max_deliver attempts",
          "[work_queue][redis][dlq]") {
  distkit_test::redis_server server;
  distkit::manual_clock clock;
  auto q = make_queue(server, clock, {.lease = 10s, .max_deliver = 3});
  q->add_group("g");
  (void)q->publish("poison", {.id = "p-1", .ordering_key = "k"});
  (void)q->publish("after", {.ordering_key = "k"});  // blocked behind the poison until it is dead
  SECTION("by nack") {
    for (std::uint32_t attempt = 1; attempt <= 3; ++attempt) {
      auto d = q->consume("g", "c", 5);
      REQUIRE(d.size() == 1);
      REQUIRE(d[0].payload == "poison");
      REQUIRE(d[0].attempt == attempt);
      REQUIRE(q->nack(d[0]) == (attempt < 3 ? settle_result::ok : settle_result::dead_lettered));
    }
  }
  SECTION("by lease expiry") {
    for (std::uint32_t attempt = 1; attempt <= 3; ++attempt) {
      auto d = q->consume("g", "c", 5);
      REQUIRE(d.size() == 1);
      REQUIRE(d[0].payload == "poison");
      REQUIRE(d[0].attempt == attempt);
      clock.advance(10s);
    }
  }
  auto dead = q->dead_letters("g");
  REQUIRE(dead.size() == 1);
  REQUIRE(dead[0].payload == "poison");
  REQUIRE(dead[0].id == "p-1");
  REQUIRE(dead[0].ordering_key == std::optional<std::string>("k"));
  REQUIRE(dead[0].deliveries == 3);
  auto next = q->consume("g", "c", 5);
  REQUIRE(next.size() == 1);
  REQUIRE(next[0].payload == "after");
  REQUIRE(q->ack(next[0]) == settle_result::ok);
  REQUIRE(q->pending("g") == 0);
}

TEST_CASE("work_queue redis store keeps per-key order, fans out to groups, delays and deduplicates",
          "[work_queue][redis][order]") {
  distkit_test::redis_server server;
  distkit::manual_clock clock;
  auto q = make_queue(server, clock, {.lease = 10s, .max_deliver = 3, .dedupe_window = 60s});
  q->add_group("g");
  q->add_group("audit");
  (void)q->publish("a1", {.ordering_key = "a"});
  (void)q->publish("b1", {.ordering_key = "b"});
  (void)q->publish("a2", {.ordering_key = "a"});
  (void)q->publish("later", {.delay = 30s});
  (void)q->publish("x");
  q->add_group("late");  // sees only what comes after it
  auto r1 = q->publish("once", {.id = "order-7"});
  clock.advance(59s);
  auto r2 = q->publish("once again", {.id = "order-7"});
  REQUIRE_FALSE(r1.duplicate);
  REQUIRE(r2.duplicate);
  REQUIRE(r2.seq == r1.seq);
  auto d = q->consume("g", "c", 10);
  REQUIRE(d.size() == 5);
  REQUIRE(d[0].payload == "a1");
  REQUIRE(d[1].payload == "b1");
  REQUIRE(d[2].payload == "later");  // its 30 s passed
  REQUIRE(d[3].payload == "x");
  REQUIRE(d[4].payload == "once");
  REQUIRE(d[4].id == "order-7");
  REQUIRE(d[3].id == "5");
  REQUIRE(q->nack(d[0]) == settle_result::ok);  // a1 retried before a2
  auto again = q->consume("g", "c", 10);
  REQUIRE(again.size() == 1);
  REQUIRE(again[0].payload == "a1");
  REQUIRE(q->ack(again[0]) == settle_result::ok);
  auto next = q->consume("g", "c2", 10);
  REQUIRE(next.size() == 1);
  REQUIRE(next[0].payload == "a2");
  REQUIRE(q->consume("audit", "a", 10).size() == 5);
  auto l = q->consume("late", "l", 10);
  REQUIRE(l.size() == 1);
  REQUIRE(l[0].payload == "once");
  clock.advance(1s);  // the window has passed: the id is new again
  REQUIRE_FALSE(q->publish("third", {.id = "order-7"}).duplicate);
  REQUIRE(q->consume("nobody", "x").empty());
  REQUIRE(q->ack(distkit::delivery{.group = "nobody", .seq = 1, .token = 1}) == settle_result::unknown_group);
}

TEST_CASE("work_queue redis store keeps groups and ordering keys apart whatever characters they hold",
          "[work_queue][redis][order]") {
  distkit_test::redis_server server;
  distkit::manual_clock clock;
  auto q = make_queue(server, clock);
  q->add_group("x");
  q->add_group("x:y");
  (void)q->publish("1", {.ordering_key = "y:z"});  // group "x", key "y:z" ...
  (void)q->publish("2", {.ordering_key = "z"});    // ... and group "x:y", key "z": distinct queues
  REQUIRE(q->consume("x", "c", 10).size() == 2);
  REQUIRE(q->consume("x:y", "c", 10).size() == 2);
}

TEST_CASE("work_queue redis store reads a backlog into the group only as consumers need it",
          "[work_queue][redis][backlog]") {
  distkit_test::redis_server server;
  distkit::manual_clock clock;
  auto q = make_queue(server, clock);
  q->add_group("g");
  std::vector<std::string> batch(1000, std::string(100, 'x'));
  for (int i = 0; i < 5; ++i) {
    auto copy = batch;
    (void)q->publish(std::span<std::string>(copy));
  }
  auto d = q->consume("g", "c", 1);
  REQUIRE(d.size() == 1);
  REQUIRE(d[0].seq == 1);
  REQUIRE(q->pending("g") == 5000);
  // One consume read one slice of 512 entries, not the 5,000: no script walks the backlog.
  raw_redis raw(server.port());
  auto summary = raw.cmd({"XPENDING", q->store().key_base() + "s", "g"});
  REQUIRE(summary->type == REDIS_REPLY_ARRAY);
  REQUIRE(summary->element[0]->integer == 512);
  REQUIRE(q->ack(d[0]) == settle_result::ok);
  REQUIRE(q->pending("g") == 4999);
  std::size_t taken = 1;
  for (auto b = q->consume("g", "c", 700); !b.empty(); b = q->consume("g", "c", 700)) {
    REQUIRE(b.front().seq == taken + 1);
    taken += b.size();
    REQUIRE(q->ack(std::span<const distkit::delivery>(b)) == std::vector<settle_result>(b.size(), settle_result::ok));
  }
  REQUIRE(taken == 5000);
  REQUIRE(q->pending("g") == 0);
}

TEST_CASE("work_queue redis store matches the reference model under random operations and times",
          "[work_queue][redis][model]") {
  const auto seed = distkit_test::test_seed("work_queue redis model");
  distkit_test::redis_server server;
  distkit_test::check_against_model(
      seed, 12, 300, [&](const distkit::work_queue_options& o, distkit::manual_clock& clock, std::uint64_t run) {
        return std::make_unique<redis_queue>(o, clock, std::in_place,
                                             store_options(server.port(), "model-" + std::to_string(run)));
      });
}

TEST_CASE("work_queue redis store on Redis time shares leases between processes without a shared clock",
          "[work_queue][redis][time]") {
  distkit_test::redis_server server;
  distkit::work_queue<redis_streams_store> q(
      {.lease = 30s}, {}, std::in_place,
      store_options(server.port(), "server-time", distkit::redis_queue_time::server));
  distkit::work_queue<redis_streams_store> other(
      {.lease = 30s}, {}, std::in_place,
      store_options(server.port(), "server-time", distkit::redis_queue_time::server));
  q.add_group("g");
  (void)other.publish("job");
  auto d = q.consume("g", "c1");
  REQUIRE(d.size() == 1);
  const auto unix_now = std::chrono::system_clock::now().time_since_epoch();
  // The deadline is Redis time since the Unix epoch (same host: within a few seconds of ours).
  REQUIRE(d[0].lease_deadline > unix_now + 20s);
  REQUIRE(d[0].lease_deadline < unix_now + 40s);
  REQUIRE(other.consume("g", "c2").empty());
  REQUIRE(other.ack(d[0]) == settle_result::ok);  // any process may settle a delivery it was handed
  REQUIRE(q.pending("g") == 0);
  // The stream entry is gone once every group finished it.
  raw_redis raw(server.port());
  REQUIRE(raw.cmd({"XLEN", q.store().key_base() + "s"})->integer == 0);
}

TEST_CASE("work_queue redis store throws a redis_queue_error when the server is gone, then reconnects",
          "[work_queue][redis][failure]") {
  auto server = std::make_unique<distkit_test::redis_server>();
  const int port = server->port();
  distkit::manual_clock clock;
  auto o = store_options(port, "q");
  o.connect_timeout = 200ms;
  o.command_timeout = 500ms;
  redis_queue q({.lease = 10s}, clock, std::in_place, o);
  q.add_group("g");
  server->kill();
  REQUIRE_THROWS_AS(q.publish("lost?"), distkit::redis_queue_error);
  REQUIRE_THROWS_AS(q.publish("lost?"), distkit::redis_queue_error);  // no server: connect refused
  server = std::make_unique<distkit_test::redis_server>(port);        // a fresh, empty server
  q.add_group("g");
  REQUIRE(q.publish("back").seq == 1);
  REQUIRE(q.consume("g", "c").size() == 1);
}

namespace {

// A clock in memory shared with forked children: every process reads the same time, which only
// the test moves.
struct shared_clock {
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<shared_clock, duration>;
  std::atomic<std::int64_t>* ns = nullptr;
  [[nodiscard]] auto now() const noexcept -> time_point { return time_point(duration(ns->load())); }
};
static_assert(distkit::time_source<shared_clock>);

using shared_queue = distkit::work_queue<redis_streams_store, shared_clock>;

// Waits (bounded) for a child; kills it if it does not finish in time.
auto reap(pid_t pid, std::chrono::seconds limit) -> int {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(5ms);  // polling a child process, not waiting for a lease
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return -1;
}

}  // namespace

TEST_CASE(
    "work_queue redis store completes every message exactly once when consumer processes are killed "
    "mid-message",
    "[work_queue][redis][process]") {
  distkit_test::redis_server server;
  void* mem =
      ::mmap(nullptr, sizeof(std::atomic<std::int64_t>), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  REQUIRE(mem != MAP_FAILED);
  auto* now = new (mem) std::atomic<std::int64_t>(0);
  const shared_clock clock{now};
  const distkit::work_queue_options opts{.lease = 10s, .max_deliver = 50};
  const auto so = store_options(server.port(), "procs");
  constexpr int messages = 300;
  {
    shared_queue q(opts, clock, std::in_place, so);
    q.add_group("workers");
    for (int i = 0; i < messages; ++i) (void)q.publish("m" + std::to_string(i));
  }
  // Each child records "<seq>:<attempt>" when it starts a message and HINCRBY acked <seq> after
  // an ack that was accepted. Crashers take one batch, record it, and hang until killed.
  auto child = [&](int index, bool crasher) -> pid_t {
    std::cout << std::flush;  // a child must not print the parent's buffered output again
    const pid_t pid = ::fork();
    if (pid != 0) return pid;
    int code = 0;
    try {
      shared_queue q(opts, clock, std::in_place, so);
      raw_redis raw(server.port());
      const std::string me = "c" + std::to_string(index);
      const auto deadline = std::chrono::steady_clock::now() + 30s;
      while (std::chrono::steady_clock::now() < deadline) {
        auto batch = q.consume("workers", me, crasher ? 5 : 4);
        for (auto& d : batch) raw.cmd({"RPUSH", "started", std::to_string(d.seq) + ":" + std::to_string(d.attempt)});
        if (crasher && !batch.empty()) {
          raw.cmd({"INCR", "crashers-holding"});
          ::pause();  // mid-message: SIGKILL arrives here
        }
        for (auto& d : batch) {
          if (q.ack(d) == settle_result::ok) raw.cmd({"HINCRBY", "acked", std::to_string(d.seq), "1"});
        }
        if (raw.cmd({"HLEN", "acked"})->integer >= messages) break;
        if (batch.empty()) std::this_thread::sleep_for(1ms);  // idle poll
      }
    } catch (...) {
      code = 3;
    }
    ::_exit(code);
  };
  std::vector<pid_t> crashers{child(0, true), child(1, true)};
  // Wait (bounded) until both crashers hold a batch, then kill them mid-message.
  raw_redis raw(server.port());
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (raw.cmd({"GET", "crashers-holding"})->type != REDIS_REPLY_STRING ||
         raw.cmd({"GET", "crashers-holding"})->str != std::string("2")) {
    REQUIRE(std::chrono::steady_clock::now() < until);
    std::this_thread::sleep_for(2ms);
  }
  for (const pid_t pid : crashers) {
    ::kill(pid, SIGKILL);
    REQUIRE(reap(pid, 10s) == 128 + SIGKILL);
  }
  std::vector<pid_t> workers{child(2, false), child(3, false)};
  // Let the workers drain what is free, then move time past the lease: the crashers' messages
  // (and any lease a worker still holds) become deliverable again.
  while (raw.cmd({"HLEN", "acked"})->integer < messages - 10) {
    REQUIRE(std::chrono::steady_clock::now() < until);
    std::this_thread::sleep_for(2ms);
  }
  now->fetch_add(std::chrono::nanoseconds(11s).count());
  for (const pid_t pid : workers) REQUIRE(reap(pid, 30s) == 0);

  // Every message was completed (acked) exactly once.
  auto acked = raw.cmd({"HGETALL", "acked"});
  REQUIRE(acked->elements == 2 * messages);
  for (std::size_t i = 1; i < acked->elements; i += 2) REQUIRE(std::string(acked->element[i]->str) == "1");
  // Every start was a distinct, counted attempt: per message the attempts are 1, 2, ..., k.
  auto started = raw.cmd({"LRANGE", "started", "0", "-1"});
  std::map<std::uint64_t, std::set<std::uint64_t> > attempts;
  std::size_t starts = 0;
  for (std::size_t i = 0; i < started->elements; ++i) {
    const std::string s(started->element[i]->str, started->element[i]->len);
    const auto colon = s.find(':');
    const auto seq = std::stoull(s.substr(0, colon));
    const auto attempt = std::stoull(s.substr(colon + 1));
    REQUIRE(attempts[seq].insert(attempt).second);
    ++starts;
  }
  REQUIRE(attempts.size() == messages);
  std::size_t redelivered = 0;
  for (const auto& [seq, a] : attempts) {
    REQUIRE(*a.rbegin() == a.size());
    if (a.size() > 1) ++redelivered;
  }
  REQUIRE(redelivered >= 10);  // at least the crashers' two batches of five
  std::cout << "[kill -9] " << messages << " messages, " << starts << " starts, " << redelivered << " redelivered\n";
  shared_queue q(opts, clock, std::in_place, so);
  REQUIRE(q.pending("workers") == 0);
  REQUIRE(q.dead_letters("workers").empty());
  ::munmap(mem, sizeof(std::atomic<std::int64_t>));
}

TEST_CASE("work_queue redis store loses no acknowledged publish or ack when Redis crashes with appendfsync always",
          "[work_queue][redis][durability]") {
  char tmpl[] = "/tmp/distkit-wq-aof-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  const int port = distkit_test::free_loopback_port();
  auto server = std::make_unique<distkit_test::redis_server>(port, dir);
  distkit::manual_clock clock;
  auto o = store_options(port, "durable");
  o.command_timeout = 1000ms;
  redis_queue q({.lease = 10s}, clock, std::in_place, o);
  q.add_group("g");
  // A publisher runs until Redis dies under it; every publish that returned must survive.
  std::vector<std::uint64_t> returned;
  std::atomic<std::size_t> count{0};
  std::thread publisher([&] {
    redis_queue p({.lease = 10s}, clock, std::in_place, o);
    try {
      for (int i = 0; i < 100000; ++i) {
        returned.push_back(p.publish(std::string(100, 'x'), {.id = "m" + std::to_string(i)}).seq);
        count.store(returned.size());
      }
    } catch (const distkit::redis_queue_error&) {
      // Redis was killed: the publish in flight may or may not have been written.
    }
  });
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (count.load() < 200 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
  // Meanwhile some messages are completed: an ack that returned ok must survive the crash too.
  std::set<std::uint64_t> acked;
  for (auto& d : q.consume("g", "c", 50)) {
    if (q.ack(d) == settle_result::ok) acked.insert(d.seq);
  }
  REQUIRE_FALSE(acked.empty());
  server->kill();  // SIGKILL mid-stream
  publisher.join();
  REQUIRE(returned.size() >= 200);
  server = std::make_unique<distkit_test::redis_server>(port, dir);
  std::size_t pending = 0;
  for (int attempt = 0;; ++attempt) {  // the first call finds the old connection dead
    try {
      pending = q.pending("g");
      break;
    } catch (const distkit::redis_queue_error&) {
      REQUIRE(attempt < 3);
    }
  }
  REQUIRE(pending >= returned.size() - acked.size());
  REQUIRE(pending <= returned.size() - acked.size() + 1);
  std::set<std::uint64_t> seen;
  for (;;) {
    auto batch = q.consume("g", "c", 256);
    if (batch.empty()) break;
    for (auto& d : batch) {
      seen.insert(d.seq);
      REQUIRE(q.ack(d) == settle_result::ok);
    }
  }
  for (const auto seq : returned) REQUIRE(seen.count(seq) + acked.count(seq) == 1);  // acked: not back
  REQUIRE(q.pending("g") == 0);
  std::cout << "[aof] " << returned.size() << " acknowledged publishes and " << acked.size()
            << " acks, all kept across the crash\n";
  server.reset();
  std::filesystem::remove_all(dir);
}

#endif  // the mutation

#endif  // hiredis
