// SPDX-License-Identifier: MIT
// tests/paxos/safety_test.cpp: one regression test per safety finding, against the real
// replica, the real `persist` and the real file storage over a crashing in-memory file
// system. Each scenario also runs with the finding's test-only mutation, and must then fail:
// that proves the test sees the bug it guards against.
#include <catch2/catch.hpp>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

#include "distkit/paxos.hpp"
#include "distkit/paxos/testing/memory_file_layer.hpp"
#include "distkit/paxos/testing/mutations.hpp"

namespace {

using namespace distkit::paxos;
using namespace distkit::paxos::testing;
using kv = kv_state_machine;

auto value(std::uint64_t client, std::uint64_t req, const std::string& key, const std::string& v) -> batch {
  return batch{command{client, req, kv::encode_put(key, v)}};
}

/// Runs every pending ready cycle of `r` through `persist` into `disk`; returns the messages.
template <class Storage>
auto cycle(replica<kv>& r, Storage& disk, mutation m = mutation::none) -> std::vector<message> {
  std::vector<message> out;
  while (r.has_ready()) {
    auto rd = r.ready();
    testing::persist(disk, rd, m);
    for (auto& msg : rd.messages) out.push_back(std::move(msg));
    r.advance();
  }
  return out;
}

/// Ticks `r` until it sends prepares; returns its ballot.
template <class Storage>
auto campaign(replica<kv>& r, Storage& disk) -> ballot {
  for (int t = 0; t < 1000; ++t) {
    r.tick();
    for (const auto& m : cycle(r, disk)) {
      if (const auto* p = std::get_if<prepare_msg>(&m)) return p->bal;
    }
  }
  FAIL("the replica never started an election");
  return {};
}

// ---- finding 1: a received snapshot and a commit record past it --------------------------

/// The state a leader's snapshot at index 3 stands for: three chosen puts.
auto leader_snapshot() -> snapshot {
  kv sm;
  for (int k = 1; k <= 3; ++k) (void)sm.apply(kv::encode_put("r" + std::to_string(k), "chosen"));
  std::string data;
  distkit::paxos::internal::writer w(data);
  w.u64(0);  // no clients in the dedupe table
  w.bytes(sm.snapshot());
  return snapshot{3, 0xC0FFEE, data};
}

/// A follower holds stale acceptances at slots 1..3 (never chosen), then installs the leader's
/// snapshot at 3 over the real file storage; the save is crashed at `crash_step` (0: no
/// crash) or fails there with ENOSPC. Returns a description of the violation, if recovery
/// took a never-chosen value for a chosen one.
auto snapshot_crash_case(std::uint64_t crash_step, bool fail_instead, const crash_shape& shape, mutation m,
                         std::uint64_t* steps_used = nullptr) -> std::optional<std::string> {
  memory_file_system fs;
  {
    memory_file_storage disk{"/n3", memory_file_layer{&fs}};
    replica<kv> f{{.id = 3, .nodes = {1, 2, 3}}, kv{}, disk.load()};
    set_mutations(f, m);
    for (slot_t s = 1; s <= 3; ++s)
      f.step(accept_msg{1, 3, ballot{1, 1}, s, value(9, s, "r" + std::to_string(s), "stale"), 0});
    (void)cycle(f, disk, m);
    f.step(snapshot_msg{2, 3, leader_snapshot()});
    const auto before = fs.steps();
    if (crash_step != 0) {
      if (fail_instead) {
        fs.fail_at_step(crash_step, ENOSPC);
      } else {
        fs.crash_at_step(crash_step);
      }
    }
    try {
      (void)cycle(f, disk, m);
    } catch (const simulated_crash&) {
    } catch (const storage_failure&) {
      // a failed write is fatal: the process stops here, as after a crash
    }
    if (steps_used) *steps_used = fs.steps() - before;
  }
  fs.crash(shape);
  memory_file_storage disk{"/n3", memory_file_layer{&fs}};
  replica<kv> again{{.id = 3, .nodes = {1, 2, 3}}, kv{}, disk.load()};
  if (again.chosen_index() == 0) return std::nullopt;  // the snapshot was lost: nothing learned
  if (again.chosen_index() == 3 && again.checksum() == 0xC0FFEE && again.state().value("r1") == "chosen") {
    return std::nullopt;
  }
  return "recovered chosen index " + std::to_string(again.chosen_index()) + " with r1 = \"" +
         again.state().value("r1") + "\" (a value that was never chosen)";
}

auto shapes() -> std::vector<crash_shape> {
  std::vector<crash_shape> out;
  for (bool renames : {false, true}) {
    out.push_back({tear::lose, 0, 0, renames});
    for (std::size_t keep : {std::size_t{1}, std::size_t{13}, std::size_t{64}, std::size_t{1} << 20}) {
      out.push_back({tear::torn, keep, 0, renames});
      out.push_back({tear::zero_fill, keep, 4096, renames});
    }
  }
  return out;
}

/// Crashes (and fails) the snapshot save at every step, in every crash shape; returns the
/// first violation.
auto first_snapshot_violation(mutation m) -> std::optional<std::string> {
  std::uint64_t steps = 0;
  REQUIRE_FALSE(snapshot_crash_case(0, false, {}, m, &steps));
  REQUIRE(steps > 4);
  for (std::uint64_t k = 1; k <= steps; ++k) {
    for (const auto& shape : shapes()) {
      for (bool fail : {false, true}) {
        if (auto v = snapshot_crash_case(k, fail, shape, m)) {
          return "step " + std::to_string(k) + (fail ? " failed" : " crashed") + ": " + *v;
        }
      }
    }
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("paxos recovery never applies stale entries below a received snapshot, at any crash or failed write",
          "[paxos][safety][finding1]") {
  auto v = first_snapshot_violation(mutation::none);
  INFO(v.value_or(""));
  CHECK_FALSE(v);
  // The same walk with the commit record made durable before the snapshot finds the bug.
  auto bug = first_snapshot_violation(mutation::commit_before_snapshot);
  INFO(bug.value_or("not found"));
  CHECK(bug);
}

TEST_CASE("paxos file_storage makes a pending snapshot durable before a commit record saved with it",
          "[paxos][safety][finding1][wal]") {
  // Without `persist`: one sync with a commit record and a snapshot pending, crashed at every
  // step, never leaves the commit record durable without the snapshot.
  for (std::uint64_t k = 1; k <= 16; ++k) {
    memory_file_system fs;
    {
      memory_file_storage disk{"/d", memory_file_layer{&fs}};
      (void)disk.load();
      std::vector<log_entry> stale{log_entry{1, ballot{1, 1}, value(9, 1, "r1", "stale")}};
      disk.append(stale);
      disk.sync();
      disk.save_commit(3);
      disk.save_snapshot(leader_snapshot());
      fs.crash_at_step(k);
      try {
        disk.sync();
      } catch (const simulated_crash&) {
      }
    }
    fs.crash(crash_shape{tear::torn, std::size_t{1} << 20, 0, false});
    memory_file_storage disk{"/d", memory_file_layer{&fs}};
    auto rs = disk.load();
    INFO("crash at step " << k);
    if (rs.commit_index >= 1) {
      REQUIRE(rs.snap);
      CHECK(rs.snap->index >= rs.commit_index);
    }
  }
}

// ---- finding 2: learned values carry a chosen marker -------------------------------------

namespace {

/// Node 3 of 5 learns `v` for slot 1 from a catch-up reply; its save is torn so that the
/// entry may survive without the commit record. Node 1 then campaigns; node 2 reports `w`
/// accepted at slot 1 (at a ballot below the one `v` was chosen at). Returns the value node 1
/// proposes for slot 1 as the new leader (none: it learned node 3 is ahead and steps down to
/// catch up, which is also safe).
auto torn_learned_case(mutation m, std::size_t keep_bytes, bool* entry_survived, slot_t* recovered_chosen)
    -> std::optional<batch> {
  const batch v = value(1, 1, "k", "v");
  const batch w = value(2, 1, "k", "w");
  memory_file_system fs;
  const std::vector<node_id> nodes{1, 2, 3, 4, 5};
  {
    memory_file_storage disk{"/n3", memory_file_layer{&fs}};
    replica<kv> f{{.id = 3, .nodes = nodes}, kv{}, disk.load()};
    set_mutations(f, m);
    f.step(catchup_reply_msg{4, 3, 1, {v}, 1});
    REQUIRE(f.chosen_index() == 1);
    fs.crash_at_step(2);  // the WAL write lands; the fdatasync never happens
    try {
      (void)cycle(f, disk, m);
    } catch (const simulated_crash&) {
    }
  }
  fs.crash(crash_shape{tear::torn, keep_bytes, 0, true});
  memory_file_storage disk3{"/n3", memory_file_layer{&fs}};
  auto rs = disk3.load();
  *entry_survived = !rs.entries.empty();
  replica<kv> f{{.id = 3, .nodes = nodes}, kv{}, std::move(rs)};
  set_mutations(f, m);
  *recovered_chosen = f.chosen_index();

  memory_storage disk1;
  replica<kv> c{{.id = 1, .nodes = nodes, .seed = 3}, kv{}, disk1.load()};
  const ballot b = campaign(c, disk1);
  memory_storage disk3b;
  f.step(prepare_msg{1, 3, b, 1});
  for (auto& msg : cycle(f, disk3b, m)) {
    if (std::holds_alternative<promise_msg>(msg)) c.step(std::move(msg));
  }
  c.step(promise_msg{2, 1, b, true, b, 0, {log_entry{1, ballot{1, 2}, w}}});
  for (const auto& msg : cycle(c, disk1)) {
    if (const auto* a = std::get_if<accept_msg>(&msg); a && a->slot == 1) return a->value;
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("paxos a learned value survives a torn save as chosen and outranks every acceptance in a promise",
          "[paxos][safety][finding2]") {
  const batch v = value(1, 1, "k", "v");
  bool bug_seen = false;
  std::size_t survived = 0;
  for (std::size_t keep = 0; keep <= 200; ++keep) {
    bool entry_survived = false;
    slot_t chosen = 0;
    auto proposed = torn_learned_case(mutation::none, keep, &entry_survived, &chosen);
    INFO("torn after " << keep << " bytes");
    if (entry_survived) {
      ++survived;
      CHECK(chosen == 1);                    // recovered as chosen, from the marker
      CHECK((!proposed || *proposed == v));  // never the older acceptance
    }
    bool mutated_survived = false;
    auto mutated = torn_learned_case(mutation::learned_at_zero_ballot, keep, &mutated_survived, &chosen);
    if (mutated_survived && mutated && *mutated != v) bug_seen = true;
  }
  CHECK(survived > 0);
  // Stored at ballot {0,0} without the marker, the learned value loses to the acceptance.
  CHECK(bug_seen);
}

TEST_CASE("paxos a candidate takes a value a voter reports chosen over any accepted ballot",
          "[paxos][safety][finding2]") {
  const batch v = value(1, 1, "k", "v");
  const batch w = value(2, 1, "k", "w");
  for (bool chosen_first : {true, false}) {
    memory_storage disk;
    replica<kv> c{{.id = 1, .nodes = {1, 2, 3, 4, 5}, .seed = 3}};
    c.step(heartbeat_msg{2, 1, ballot{9, 2}, 0});  // an earlier leader's ballot
    (void)cycle(c, disk);
    const ballot b = campaign(c, disk);
    REQUIRE(ballot{9, 4} < b);
    // Slot 2 is chosen (a voter recovered it from its marker above a gap); another voter
    // accepted an older value there, at a higher ballot than any the chosen one carries.
    promise_msg marked{2, 1, b, true, b, 0, {log_entry{2, ballot{}, v, true}}};
    promise_msg accepted{4, 1, b, true, b, 0, {log_entry{2, ballot{9, 4}, w}}};
    c.step(chosen_first ? marked : accepted);
    c.step(chosen_first ? accepted : marked);
    std::optional<batch> at2;
    for (const auto& msg : cycle(c, disk)) {
      if (const auto* a = std::get_if<accept_msg>(&msg); a && a->slot == 2) at2 = a->value;
    }
    REQUIRE(c.is_leader());
    REQUIRE(at2);
    CHECK(*at2 == v);
  }
}

TEST_CASE("paxos recovery marks a slot chosen from its marker when the commit record was lost",
          "[paxos][safety][finding2]") {
  memory_storage disk;
  replica<kv> f{{.id = 3, .nodes = {1, 2, 3}}};
  f.step(catchup_reply_msg{1, 3, 1, {value(1, 1, "a", "1"), value(1, 2, "a", "2")}, 2});
  auto rd = f.ready();
  REQUIRE(rd.entries.size() == 2);
  CHECK(rd.entries[0].chosen);
  CHECK(rd.entries[0].accepted == ballot{});
  // Keep the entries, lose the commit record.
  disk.append(rd.entries);
  disk.sync();
  replica<kv> again{{.id = 3, .nodes = {1, 2, 3}}, kv{}, disk.load()};
  CHECK(again.chosen_index() == 2);
  CHECK(again.state().value("a") == "2");
  // And a WAL written before the marker existed still reads: type-2 records stay acceptances.
  CHECK(again.entry_at(2)->chosen);
}

// ---- finding 3: a late catch-up reply to a leader ----------------------------------------

namespace {

/// Node 1 becomes leader with nothing chosen; a catch-up reply it asked for as a follower then
/// arrives with slots 1..3 chosen. Returns the slot its next proposal goes to and whether
/// slot 1 still holds the chosen value.
auto late_catchup_case(mutation m) -> std::pair<slot_t, bool> {
  memory_storage disk;
  replica<kv> l{{.id = 1, .nodes = {1, 2, 3}, .seed = 5}};
  set_mutations(l, m);
  const ballot b = campaign(l, disk);
  l.step(promise_msg{2, 1, b, true, b, 0, {}});
  (void)cycle(l, disk, m);
  REQUIRE(l.is_leader());
  const batch chosen1 = value(7, 1, "x", "chosen-1");
  l.step(catchup_reply_msg{3, 1, 1, {chosen1, value(7, 2, "x", "chosen-2"), value(7, 3, "x", "chosen-3")}, 3});
  (void)cycle(l, disk, m);
  REQUIRE(l.chosen_index() == 3);
  REQUIRE(l.propose(8, 1, kv::encode_put("x", "new")) == propose_status::accepted);
  slot_t slot = 0;
  for (const auto& msg : cycle(l, disk, m)) {
    if (const auto* a = std::get_if<accept_msg>(&msg); a && a->value.size() == 1 && a->value[0].client_id == 8) {
      slot = a->slot;
    }
  }
  return {slot, l.entry_at(1) && l.entry_at(1)->value == chosen1};
}

}  // namespace

TEST_CASE("paxos a leader never proposes into a slot a late catch-up reply showed chosen",
          "[paxos][safety][finding3]") {
  auto [slot, kept] = late_catchup_case(mutation::none);
  CHECK(slot == 4);
  CHECK(kept);
  auto [bad_slot, bad_kept] = late_catchup_case(mutation::late_catchup_past_leader);
  CHECK(bad_slot <= 3);  // the mutation re-introduces the overwrite; the check above sees it
  CHECK_FALSE(bad_kept);
}

// ---- finding 5: a torn WAL tail ----------------------------------------------------------

namespace {

namespace fs = std::filesystem;

struct temp_dir {
  fs::path path;
  temp_dir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("distkit_paxos_safety_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  auto operator=(const temp_dir&) -> temp_dir& = delete;
};

auto read_all(const fs::path& p) -> std::string {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_all(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(s.data(), static_cast<std::streamsize>(s.size()));
}

/// A WAL of synced records; the last one is large enough to cross a sector boundary.
auto synced_wal(const fs::path& dir) -> std::pair<std::string, recovered_state> {
  {
    file_storage f(dir);
    (void)f.load();
    f.save_promise(ballot{2, 1});
    std::vector<log_entry> es{log_entry{1, ballot{2, 1}, value(1, 1, "a", "x")}};
    f.append(es);
    f.save_commit(1);
    f.sync();
  }
  file_storage f(dir);
  return {read_all(dir / "wal"), f.load()};
}

auto same(const recovered_state& a, const recovered_state& b) -> bool {
  return a.promised == b.promised && a.entries == b.entries && a.commit_index == b.commit_index && a.snap == b.snap;
}

/// One more record as `file_storage` would append it (an entry of `size` payload bytes).
auto record_bytes(std::size_t size) -> std::string {
  temp_dir d;
  file_storage f(d.path);
  (void)f.load();
  std::vector<log_entry> es{log_entry{2, ballot{2, 1}, value(1, 2, "b", std::string(size, 'p'))}};
  f.append(es);
  f.sync();
  return read_all(d.path / "wal");
}

}  // namespace

TEST_CASE("paxos file_storage repairs a torn WAL tail on load and refuses corruption before it",
          "[paxos][safety][finding5][wal]") {
  temp_dir d;
  const auto wal = synced_wal(d.path);
  const std::string& image = wal.first;
  const recovered_state& synced = wal.second;
  const std::string rec = record_bytes(1500);  // spans sectors
  REQUIRE(rec.size() > 1024);

  auto load_with_tail = [&](const std::string& tail) -> std::pair<recovered_state, std::size_t> {
    temp_dir p;
    write_all(p.path / "wal", image + tail);
    file_storage f(p.path);
    auto rs = f.load();
    const auto size = fs::file_size(p.path / "wal");
    // The repaired storage keeps working.
    std::vector<log_entry> es{log_entry{3, ballot{2, 1}, value(1, 3, "c", "z")}};
    f.append(es);
    f.sync();
    file_storage g(p.path);
    CHECK(g.load().entries.size() == rs.entries.size() + 1);
    return {rs, size};
  };

  SECTION("a zero-filled tail") {
    for (std::size_t zeros : {std::size_t{1}, std::size_t{12}, std::size_t{511}, std::size_t{4096}}) {
      auto [rs, size] = load_with_tail(std::string(zeros, '\0'));
      INFO(zeros << " zero bytes");
      CHECK(same(rs, synced));
      CHECK(size == image.size());
    }
  }
  SECTION("a header whose payload never landed") {
    // Where the file offset of the payload starts a new sector, the payload's sectors are zero.
    std::string tail = rec.substr(0, 12) + std::string(rec.size() - 12, '\0');
    auto [rs, size] = load_with_tail(tail);
    CHECK(same(rs, synced));
    CHECK(size == image.size());
  }
  SECTION("a last record with whole sectors missing") {
    // The record's bytes land sector by sector: keep the first sector of the file's new bytes,
    // zero the rest.
    const std::size_t start = image.size();
    const std::size_t first_boundary = (start / 512 + 1) * 512;
    std::string tail = rec.substr(0, first_boundary - start);
    tail += std::string(rec.size() - tail.size(), '\0');
    auto [rs, size] = load_with_tail(tail);
    CHECK(same(rs, synced));
    CHECK(size == image.size());
  }
  SECTION("a partial last record, cut at every byte") {
    for (std::size_t cut = 1; cut < rec.size(); cut += 37) {
      auto [rs, size] = load_with_tail(rec.substr(0, cut));
      INFO("cut after " << cut << " bytes");
      CHECK(same(rs, synced));
      CHECK(size == image.size());
    }
  }
  SECTION("corruption before the last record is refused") {
    temp_dir p;
    std::string bad = image + rec;
    bad[20] = static_cast<char>(bad[20] ^ 0x10);  // inside the first record
    write_all(p.path / "wal", bad);
    file_storage f(p.path);
    CHECK_THROWS_AS(f.load(), wal_corrupt_error);
  }
  SECTION("a zeroed sector followed by a valid record is refused") {
    temp_dir p;
    std::string bad = image + std::string(rec.size(), '\0') + rec;
    write_all(p.path / "wal", bad);
    file_storage f(p.path);
    CHECK_THROWS_AS(f.load(), wal_corrupt_error);
  }
  SECTION("a bit flip in the last record is refused, not taken for a torn tail") {
    temp_dir p;
    std::string bad = image + rec;
    bad[image.size() + 700] = static_cast<char>(bad[image.size() + 700] ^ 0x01);
    write_all(p.path / "wal", bad);
    file_storage f(p.path);
    CHECK_THROWS_AS(f.load(), wal_corrupt_error);
  }
}
