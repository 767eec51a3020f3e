// SPDX-License-Identifier: MIT
// tests/paxos/flow_test.cpp: byte-bounded flow control of the Multi-Paxos replica: batches,
// catch-up replies, promise tails and snapshot chunks stay under their bounds, long transfers
// complete over several bounded messages, and lost or corrupted snapshot chunks are recovered.
#include <catch2/catch.hpp>

#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "distkit/paxos.hpp"

namespace {

using namespace distkit::paxos;
using kv = kv_state_machine;

/// Small bounds, so that a test moves a few MB at most.
auto small_bounds() -> replica_options {
  replica_options o;
  o.max_message_bytes = 256 << 10;
  o.max_batch_bytes = 64 << 10;
  o.max_catchup_bytes = 128 << 10;
  o.snapshot_chunk_bytes = 64 << 10;
  o.max_pending_bytes = 4 << 20;
  o.max_batch = 1024;
  return o;
}

/// A deterministic cluster on a FIFO network. `filter` sees (and may change) every message
/// before delivery; false drops it. Every message sent is recorded with its encoded size.
struct cluster {
  std::vector<memory_storage> disks;
  std::vector<std::optional<replica<kv>>> nodes;
  std::deque<message> net;
  std::function<bool(message&)> filter = [](message&) { return true; };
  std::vector<message> sent;
  std::size_t largest_message = 0;
  replica_options base;
  std::size_t size;

  explicit cluster(std::size_t n, replica_options b = small_bounds()) : disks(n), nodes(n), base(b), size(n) {
    for (std::size_t i = 0; i < n; ++i) start(i);
  }
  void start(std::size_t i) {
    auto o = base;
    o.id = static_cast<node_id>(i + 1);
    o.nodes.clear();
    for (std::size_t j = 0; j < size; ++j) o.nodes.push_back(static_cast<node_id>(j + 1));
    o.seed = 11 + i;
    nodes[i].emplace(o, kv{}, disks[i].load());
  }
  void drive(std::size_t i) {
    auto& r = nodes[i];
    while (r && r->has_ready()) {
      auto rd = r->ready();
      persist(disks[i], rd);
      for (auto& m : rd.messages) {
        largest_message = std::max(largest_message, encode(m).size());
        if (!std::holds_alternative<heartbeat_msg>(m) && !std::holds_alternative<heartbeat_ack_msg>(m)) {
          sent.push_back(m);
        }
        net.push_back(std::move(m));
      }
      r->advance();
    }
  }
  void settle(std::size_t max_messages = 200'000) {
    for (std::size_t i = 0; i < size; ++i) drive(i);
    while (!net.empty() && max_messages-- > 0) {
      auto m = std::move(net.front());
      net.pop_front();
      auto to = message_to(m) - 1;
      if (!nodes[to] || !filter(m)) continue;
      nodes[to]->step(std::move(m));
      drive(to);
    }
  }
  void tick_all(std::size_t ticks) {
    for (std::size_t t = 0; t < ticks; ++t) {
      for (std::size_t i = 0; i < size; ++i) {
        if (nodes[i]) {
          nodes[i]->tick();
          drive(i);
        }
      }
      settle();
    }
  }
  auto leader() -> std::optional<std::size_t> {
    for (std::size_t i = 0; i < size; ++i) {
      if (nodes[i] && nodes[i]->is_leader()) return i;
    }
    return std::nullopt;
  }
  auto elect() -> std::size_t {
    for (int k = 0; k < 300 && !leader(); ++k) tick_all(1);
    REQUIRE(leader().has_value());
    return *leader();
  }
  /// Ticks until `done` holds; false after `max_ticks` (a liveness failure, never a hang).
  auto tick_until(const std::function<bool()>& done, std::size_t max_ticks) -> bool {
    for (std::size_t t = 0; t < max_ticks; ++t) {
      if (done()) return true;
      tick_all(1);
    }
    return done();
  }
  template <class M>
  auto sent_of() const -> std::vector<M> {
    std::vector<M> out;
    for (const auto& m : sent) {
      if (const auto* x = std::get_if<M>(&m)) out.push_back(*x);
    }
    return out;
  }
};

auto value_of(std::size_t bytes, std::size_t k) -> std::string {
  std::string v(bytes, 'a');
  for (std::size_t i = 0; i < bytes; i += 97) v[i] = static_cast<char>('a' + (k + i) % 26);
  return v;
}

auto cut_off(std::size_t node) -> std::function<bool(message&)> {
  return [node](message& m) { return message_to(m) != node + 1 && message_from(m) != node + 1; };
}

/// Fills a cluster's state: `n` puts of `bytes`-byte values to distinct keys, through the leader.
void write_many(cluster& c, std::size_t leader, std::size_t n, std::size_t bytes, std::uint64_t first_request = 1) {
  for (std::size_t k = 0; k < n; ++k) {
    REQUIRE(
        c.nodes[leader]->propose(1, first_request + k, kv::encode_put("key" + std::to_string(k), value_of(bytes, k))) ==
        propose_status::accepted);
    c.settle();
  }
}

}  // namespace

TEST_CASE("paxos byte bounds are validated, naming the parameter", "[paxos][flow]") {
  auto make = [](replica_options o) {
    o.id = 1;
    o.nodes = {1};
    replica<kv> r{o};
  };
  auto with = [](auto change) {
    replica_options o;
    change(o);
    return o;
  };
  using Catch::Matchers::Contains;
  CHECK_NOTHROW(make(replica_options{}));
  CHECK_THROWS_WITH(make(with([](auto& o) { o.max_message_bytes = 100; })), Contains("max_message_bytes"));
  CHECK_THROWS_WITH(make(with([](auto& o) { o.max_batch_bytes = o.max_message_bytes; })),
                    Contains("max_batch_bytes") && Contains("max_message_bytes"));
  CHECK_THROWS_WITH(make(with([](auto& o) { o.max_batch_bytes = 10; })), Contains("max_batch_bytes"));
  CHECK_THROWS_WITH(make(with([](auto& o) { o.max_catchup_bytes = 0; })), Contains("max_catchup_bytes"));
  CHECK_THROWS_WITH(make(with([](auto& o) { o.max_catchup_bytes = o.max_message_bytes; })),
                    Contains("max_catchup_bytes"));
  CHECK_THROWS_WITH(make(with([](auto& o) { o.snapshot_chunk_bytes = 0; })), Contains("snapshot_chunk_bytes"));
  CHECK_THROWS_WITH(make(with([](auto& o) { o.snapshot_chunk_bytes = o.max_message_bytes; })),
                    Contains("snapshot_chunk_bytes"));
  CHECK_THROWS_WITH(make(with([](auto& o) { o.max_pending_bytes = o.max_batch_bytes - 1; })),
                    Contains("max_pending_bytes"));
  CHECK_THROWS_WITH(make(with([](auto& o) { o.max_inflight_bytes = o.max_batch_bytes - 1; })),
                    Contains("max_inflight_bytes"));
  CHECK_THROWS_AS(make(with([](auto& o) { o.max_message_bytes = 0; })), std::invalid_argument);
}

TEST_CASE("paxos refuses a command larger than a batch at propose, and keeps serving", "[paxos][flow]") {
  cluster c(3);
  auto l = c.elect();
  const auto limit = c.base.max_batch_bytes;
  // The largest command that fits: 4 bytes of batch count, 20 of command header, the payload.
  CHECK(c.nodes[l]->propose(1, 1, std::string(limit - 24, 'x')) == propose_status::accepted);
  CHECK(c.nodes[l]->propose(1, 2, std::string(limit - 23, 'x')) == propose_status::too_large);
  const auto follower = (l + 1) % 3;
  CHECK(c.nodes[follower]->propose(2, 1, std::string(limit, 'x')) == propose_status::too_large);
  CHECK(c.nodes[l]->stats().refused_too_large == 1);
  CHECK(c.nodes[l]->pending_commands() == 1);
  c.settle();
  REQUIRE(c.nodes[l]->propose(1, 3, kv::encode_put("k", "v")) == propose_status::accepted);
  c.settle();
  CHECK(c.nodes[l]->chosen_index() >= 2);
  CHECK(c.nodes[l]->state().value("k") == "v");
  CHECK(c.largest_message <= c.base.max_message_bytes);
}

TEST_CASE("paxos queued commands form batches bounded in bytes, each accept under the message bound", "[paxos][flow]") {
  cluster c(3);
  auto l = c.elect();
  // 20 commands of 20 KB queued in one cycle (the "20 queued 1 MB puts", scaled down):
  // at most 3 fit in a 64 KiB batch, so they take several slots.
  for (std::uint64_t k = 0; k < 20; ++k) {
    REQUIRE(c.nodes[l]->propose(1, k + 1, kv::encode_put("k" + std::to_string(k), value_of(20'000, k))) ==
            propose_status::accepted);
  }
  c.settle();
  auto accepts = c.sent_of<accept_msg>();
  REQUIRE(!accepts.empty());
  std::size_t slots_with_commands = 0;
  for (const auto& a : accepts) {
    CHECK(encoded_size(a.value) <= c.base.max_batch_bytes);
    if (!a.value.empty()) ++slots_with_commands;
  }
  CHECK(slots_with_commands >= 2 * 7);  // 7 slots, each sent to 2 followers
  CHECK(c.largest_message <= c.base.max_message_bytes);
  c.tick_all(2);  // the followers learn the last commit index from the next heartbeat
  for (std::size_t i = 0; i < 3; ++i) CHECK(c.nodes[i]->state().value("k19") == value_of(20'000, 19));
}

TEST_CASE("paxos queued bytes are bounded: propose answers busy past max_pending_bytes", "[paxos][flow]") {
  auto o = small_bounds();
  o.max_pending_bytes = 200 << 10;
  cluster c(3, o);
  auto l = c.elect();
  std::uint64_t accepted = 0;
  for (std::uint64_t k = 1; k <= 10; ++k) {
    if (c.nodes[l]->propose(1, k, std::string(50'000, 'x')) == propose_status::accepted) ++accepted;
  }
  CHECK(accepted == 4);  // 4 x ~50 KB fit in 200 KiB
  CHECK(c.nodes[l]->stats().refused_busy == 6);
  c.settle();
  CHECK(c.nodes[l]->propose(1, 11, std::string(50'000, 'x')) == propose_status::accepted);
}

TEST_CASE("paxos a follower that missed many messages' worth catches up through several bounded replies",
          "[paxos][flow]") {
  cluster c(3);
  auto l = c.elect();
  const std::size_t lagging = (l + 2) % 3;
  c.filter = cut_off(lagging);
  // 60 x 30 KB = 1.8 MB missed: 14x the catch-up bound.
  write_many(c, l, 60, 30'000);
  REQUIRE(c.nodes[l]->chosen_index() >= 60);
  const auto before = c.sent.size();
  c.filter = [](message&) { return true; };
  const bool caught_up =
      c.tick_until([&] { return c.nodes[lagging]->chosen_index() >= c.nodes[l]->chosen_index(); }, 200);
  INFO("lagging node at " << c.nodes[lagging]->chosen_index() << ", leader at " << c.nodes[l]->chosen_index());
  REQUIRE(caught_up);
  std::size_t replies = 0;
  for (std::size_t k = before; k < c.sent.size(); ++k) {
    if (const auto* r = std::get_if<catchup_reply_msg>(&c.sent[k])) {
      ++replies;
      std::size_t bytes = 0;
      for (const auto& v : r->values) bytes += encoded_size(v);
      CHECK((r->values.size() == 1 || bytes <= c.base.max_catchup_bytes));
    }
  }
  CHECK(replies >= 14);
  CHECK(c.nodes[l]->stats().catchup_replies_cut >= 13);
  CHECK(c.largest_message <= c.base.max_message_bytes);
  CHECK(c.nodes[lagging]->checksum() == c.nodes[l]->checksum());
  CHECK(c.nodes[lagging]->state().value("key59") == value_of(30'000, 59));
}

TEST_CASE("paxos a promise's tail is cut to the bound, and Phase 1 completes over several messages", "[paxos][flow]") {
  cluster c(3);
  auto l = c.elect();
  // The leader's proposals reach the others, but no acceptance comes back: nothing is chosen,
  // and both followers hold ~1.2 MB of accepted, unchosen entries.
  c.filter = [](message& m) { return !std::holds_alternative<accepted_msg>(m); };
  for (std::uint64_t k = 0; k < 40; ++k) {
    REQUIRE(c.nodes[l]->propose(1, k + 1, kv::encode_put("p" + std::to_string(k), value_of(30'000, k))) ==
            propose_status::accepted);
    c.settle();
  }
  const auto last = c.nodes[(l + 1) % 3]->entry_at(20);
  REQUIRE(last.has_value());
  REQUIRE(c.nodes[(l + 1) % 3]->chosen_index() == 0);
  c.nodes[l].reset();  // the leader dies
  c.filter = [](message&) { return true; };
  const auto before = c.sent.size();
  const bool elected = c.tick_until([&] { return c.leader().has_value(); }, 300);
  REQUIRE(elected);
  const auto nl = *c.leader();
  std::size_t parts = 0;
  for (std::size_t k = before; k < c.sent.size(); ++k) {
    if (const auto* p = std::get_if<promise_msg>(&c.sent[k]); p && p->ok) {
      std::size_t bytes = 0;
      for (const auto& e : p->accepted) bytes += encoded_size(e);
      CHECK((p->accepted.size() == 1 || bytes <= c.base.max_catchup_bytes));
      if (p->resume_from != 0) ++parts;
    }
  }
  CHECK(parts >= 5);  // ~1.2 MB over 128 KiB parts
  CHECK(c.largest_message <= c.base.max_message_bytes);
  // The new leader re-proposed every accepted value: all 40 puts are chosen, unchanged.
  c.tick_all(5);
  for (std::uint64_t k = 0; k < 40; ++k)
    CHECK(c.nodes[nl]->state().value("p" + std::to_string(k)) == value_of(30'000, k));
  CHECK(c.nodes[nl]->entry_at(20)->value == last->value);
}

namespace {

/// A cluster that compacts eagerly, so that a lagging follower needs a snapshot.
auto snapshotting() -> replica_options {
  auto o = small_bounds();
  o.snapshot_interval = 8;
  o.log_retention = 2;
  return o;
}

/// Data chunks (not announcements) sent to `node` since message `from`.
auto data_chunks_to(const cluster& c, std::size_t node, std::size_t from) -> std::vector<snapshot_chunk_msg> {
  std::vector<snapshot_chunk_msg> out;
  for (std::size_t k = from; k < c.sent.size(); ++k) {
    if (const auto* x = std::get_if<snapshot_chunk_msg>(&c.sent[k]); x && x->to == node + 1 && !x->bytes.empty()) {
      out.push_back(*x);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("paxos a snapshot travels in CRC-checked chunks under the bound, assembled then installed",
          "[paxos][flow][snapshot]") {
  cluster c(3, snapshotting());
  auto l = c.elect();
  const std::size_t lagging = (l + 1) % 3;
  c.filter = cut_off(lagging);
  write_many(c, l, 40, 20'000);  // ~800 KB of state: 13 chunks of 64 KiB
  const auto before = c.sent.size();
  c.filter = [](message&) { return true; };
  REQUIRE(c.tick_until([&] { return c.nodes[lagging]->chosen_index() >= c.nodes[l]->chosen_index(); }, 300));
  auto chunks = data_chunks_to(c, lagging, before);
  REQUIRE(chunks.size() >= 12);
  std::uint64_t expect = 0;
  for (const auto& ch : chunks) {
    CHECK(ch.bytes.size() <= c.base.snapshot_chunk_bytes);
    CHECK(ch.offset == expect);  // in order, from zero, no chunk twice
    expect = ch.offset + ch.bytes.size();
  }
  CHECK(expect == chunks.back().total);
  CHECK(c.nodes[lagging]->stats().snapshots_assembled == 1);
  CHECK(c.largest_message <= c.base.max_message_bytes);
  CHECK(c.nodes[lagging]->checksum() == c.nodes[l]->checksum());
  CHECK(c.nodes[lagging]->state().value("key39") == value_of(20'000, 39));
  CHECK(c.nodes[lagging]->state() == c.nodes[l]->state());
}

TEST_CASE("paxos a lost snapshot chunk is re-requested from the offset reached, not from zero",
          "[paxos][flow][snapshot]") {
  cluster c(3, snapshotting());
  auto l = c.elect();
  const std::size_t lagging = (l + 1) % 3;
  c.filter = cut_off(lagging);
  write_many(c, l, 40, 20'000);
  const auto before = c.sent.size();
  int data_chunks = 0;
  std::uint64_t lost_offset = 0;
  c.filter = [&](message& m) {
    if (auto* x = std::get_if<snapshot_chunk_msg>(&m); x && !x->bytes.empty() && ++data_chunks == 4) {
      lost_offset = x->offset;
      return false;  // the fourth chunk is lost
    }
    return true;
  };
  REQUIRE(c.tick_until([&] { return c.nodes[lagging]->chosen_index() >= c.nodes[l]->chosen_index(); }, 300));
  REQUIRE(lost_offset > 0);
  auto chunks = data_chunks_to(c, lagging, before);
  std::size_t at_zero = 0, at_lost = 0;
  for (const auto& ch : chunks) {
    at_zero += ch.offset == 0 ? 1 : 0;
    at_lost += ch.offset == lost_offset ? 1 : 0;
  }
  CHECK(at_zero == 1);  // the transfer resumed, it did not start again
  CHECK(at_lost == 2);  // the lost chunk, then its re-send
  CHECK(c.nodes[lagging]->stats().snapshots_assembled == 1);
  CHECK(c.nodes[lagging]->checksum() == c.nodes[l]->checksum());
}

TEST_CASE("paxos a corrupted snapshot chunk is refused and re-sent; a corrupted whole is refused and restarted",
          "[paxos][flow][snapshot]") {
  cluster c(3, snapshotting());
  auto l = c.elect();
  const std::size_t lagging = (l + 1) % 3;
  c.filter = cut_off(lagging);
  write_many(c, l, 40, 20'000);
  int data_chunks = 0;
  SECTION("a flipped byte fails the chunk's CRC") {
    c.filter = [&](message& m) {
      if (auto* x = std::get_if<snapshot_chunk_msg>(&m); x && !x->bytes.empty() && ++data_chunks == 3) {
        x->bytes[x->bytes.size() / 2] ^= 0x20;
      }
      return true;
    };
    REQUIRE(c.tick_until([&] { return c.nodes[lagging]->chosen_index() >= c.nodes[l]->chosen_index(); }, 300));
    CHECK(c.nodes[lagging]->stats().snapshot_chunks_corrupt == 1);
    CHECK(c.nodes[lagging]->stats().snapshots_corrupt == 0);
  }
  SECTION("a chunk altered with a matching chunk CRC fails the whole snapshot's CRC") {
    c.filter = [&](message& m) {
      if (auto* x = std::get_if<snapshot_chunk_msg>(&m); x && !x->bytes.empty() && ++data_chunks == 3) {
        x->bytes[x->bytes.size() / 2] ^= 0x20;
        x->chunk_crc = distkit::detail::crc32c(x->bytes);
      }
      return true;
    };
    REQUIRE(c.tick_until([&] { return c.nodes[lagging]->chosen_index() >= c.nodes[l]->chosen_index(); }, 300));
    CHECK(c.nodes[lagging]->stats().snapshots_corrupt == 1);
    CHECK(c.nodes[lagging]->stats().snapshots_assembled == 1);
  }
  CHECK(c.nodes[lagging]->checksum() == c.nodes[l]->checksum());
  CHECK(c.nodes[lagging]->state() == c.nodes[l]->state());
}

TEST_CASE("paxos codec round-trips the flow-control messages and rejects their truncations", "[paxos][flow][codec]") {
  const std::vector<message> msgs = {
      promise_msg{2, 1, ballot{5, 1}, true, ballot{5, 1}, 8, {log_entry{9, ballot{5, 1}, batch{}}}, 10},
      snapshot_chunk_msg{1, 3, 100, 5000, 0xDEADBEEF, 4096, 0x1234, std::string("\0\1\2\3", 4)},
      snapshot_chunk_msg{1, 3, 100, 5000, 0xDEADBEEF, 0, 0, {}}, snapshot_ack_msg{3, 1, 100, 4100}};
  for (const auto& m : msgs) {
    auto bytes = encode(m);
    CHECK(decode(bytes) == m);
    for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
      CHECK_THROWS_AS(decode(std::string_view(bytes).substr(0, cut)), paxos_corrupt_error);
    }
  }
}
