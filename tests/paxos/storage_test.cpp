// SPDX-License-Identifier: MIT
// tests/paxos/storage_test.cpp: memory and file storage, WAL crash recovery (torn tails, bit flips).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include "distkit/paxos/kv_state_machine.hpp"
#include "distkit/paxos/node.hpp"
#include "distkit/paxos/storage.hpp"

namespace {

using namespace distkit::paxos;
namespace fs = std::filesystem;

struct temp_dir {
  fs::path path;
  temp_dir() {
    static int counter = 0;
    path =
        fs::temp_directory_path() / ("distkit_paxos_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
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

auto same(const recovered_state& a, const recovered_state& b) -> bool {
  return a.promised == b.promised && a.entries == b.entries && a.commit_index == b.commit_index && a.snap == b.snap;
}

auto entry(slot_t s, std::uint64_t counter, const std::string& payload) -> log_entry {
  return log_entry{s, ballot{counter, 1}, batch{command{1, s, payload}}};
}

template <class Storage>
void write_history(Storage& st, std::vector<std::size_t>* sizes = nullptr, const fs::path* wal = nullptr) {
  auto mark = [&] {
    if (sizes) sizes->push_back(fs::file_size(*wal));
  };
  st.save_promise(ballot{1, 1});
  st.sync();
  mark();
  std::vector<log_entry> es{entry(1, 1, "a"), entry(2, 1, "bb")};
  st.append(es);
  st.save_commit(1);
  st.sync();  // one sync covers three records
  mark();
  st.save_promise(ballot{2, 3});
  st.sync();
  mark();
  std::vector<log_entry> last{entry(3, 2, std::string(40, 'z'))};
  st.append(last);
  st.sync();
  mark();
}

}  // namespace

TEST_CASE("paxos memory_storage keeps synced writes and loses or tears unsynced ones on a crash", "[paxos][storage]") {
  memory_storage m;
  write_history(m);
  auto full = m.load();
  CHECK(full.promised == ballot{2, 3});
  CHECK(full.entries.size() == 3);
  CHECK(full.commit_index == 1);
  std::vector<log_entry> more{entry(4, 2, "q")};
  m.append(more);
  m.crash();
  CHECK(same(m.load(), full));
  std::mt19937_64 rng(1);
  m.append(more);
  m.save_commit(4);
  m.crash_torn(rng);
  auto torn = m.load();
  CHECK(torn.entries.size() >= 3);
  CHECK(torn.entries.size() <= 4);
}

TEST_CASE("paxos file_storage recovers exactly what was synced", "[paxos][storage][wal]") {
  temp_dir d;
  recovered_state expected;
  {
    file_storage f(d.path);
    CHECK(f.load().entries.empty());
    write_history(f);
    memory_storage m;
    write_history(m);
    expected = m.load();
  }
  file_storage again(d.path);
  auto got = again.load();
  CHECK(same(got, expected));
  CHECK(again.truncated_bytes() == 0);
  CHECK_THROWS_WITH(file_storage(""), Catch::Matchers::Contains("dir"));
}

TEST_CASE("paxos file_storage truncated at every byte of its last record keeps the synced prefix",
          "[paxos][storage][wal][crash]") {
  temp_dir d;
  std::vector<std::size_t> sizes;
  auto wal = d.path / "wal";
  {
    file_storage f(d.path);
    (void)f.load();
    write_history(f, &sizes, &wal);
  }
  auto image = read_all(wal);
  REQUIRE(image.size() == sizes.back());
  auto prefix_end = sizes[sizes.size() - 2];
  recovered_state before_last, full;
  {
    temp_dir p;
    write_all(p.path / "wal", image.substr(0, prefix_end));
    file_storage f(p.path);
    before_last = f.load();
  }
  {
    temp_dir p;
    write_all(p.path / "wal", image);
    file_storage f(p.path);
    full = f.load();
  }
  REQUIRE(full.entries.size() == before_last.entries.size() + 1);
  for (std::size_t cut = prefix_end; cut < image.size(); ++cut) {
    temp_dir p;
    write_all(p.path / "wal", image.substr(0, cut));
    file_storage f(p.path);
    auto got = f.load();
    INFO("cut at byte " << cut);
    CHECK(same(got, before_last));
    CHECK(f.truncated_bytes() == cut - prefix_end);
    CHECK(fs::file_size(p.path / "wal") == prefix_end);  // the torn tail is gone
    // And the storage keeps working after the repair.
    std::vector<log_entry> next{entry(9, 5, "n")};
    f.append(next);
    f.sync();
    file_storage g(p.path);
    auto after = g.load();
    CHECK(after.entries.size() == before_last.entries.size() + 1);
  }
}

TEST_CASE("paxos file_storage refuses a WAL with a flipped bit anywhere instead of losing synced state",
          "[paxos][storage][wal][crash]") {
  temp_dir d;
  {
    file_storage f(d.path);
    (void)f.load();
    write_history(f);
  }
  auto image = read_all(d.path / "wal");
  recovered_state full;
  {
    file_storage f(d.path);
    full = f.load();
  }
  std::size_t refused = 0, intact = 0;
  for (std::size_t at = 0; at < image.size(); ++at) {
    for (int bit : {0, 3, 7}) {
      auto bad = image;
      bad[at] = static_cast<char>(bad[at] ^ (1 << bit));
      temp_dir p;
      write_all(p.path / "wal", bad);
      file_storage f(p.path);
      INFO("flip bit " << bit << " of byte " << at);
      try {
        auto got = f.load();
        CHECK(same(got, full));  // only acceptable non-error outcome: nothing synced lost
        ++intact;
      } catch (const wal_corrupt_error& e) {
        CHECK_THAT(e.what(), Catch::Matchers::Contains("corrupt WAL record at byte"));
        ++refused;
      }
    }
  }
  CHECK(refused == image.size() * 3);
  CHECK(intact == 0);
}

TEST_CASE("paxos file_storage compacts its WAL after a snapshot and recovers from both",
          "[paxos][storage][wal][snapshot]") {
  temp_dir d;
  {
    file_storage f(d.path);
    (void)f.load();
    for (slot_t s = 1; s <= 50; ++s) {
      std::vector<log_entry> e{entry(s, 3, std::string(100, 'v'))};
      f.append(e);
      f.save_commit(s);
      f.sync();
    }
  }
  auto big = fs::file_size(d.path / "wal");
  {
    file_storage f(d.path);
    auto st = f.load();
    CHECK(st.entries.size() == 50);
    f.save_snapshot(snapshot{45, 77, "state"});
    f.sync();
  }
  CHECK(fs::file_size(d.path / "wal") < big / 4);
  file_storage f(d.path);
  auto st = f.load();
  REQUIRE(st.snap.has_value());
  CHECK(st.snap->index == 45);
  CHECK(st.snap->data == "state");
  CHECK(st.entries.size() == 5);
  CHECK(st.entries.front().slot == 46);
  CHECK(st.commit_index == 50);
  CHECK(st.promised == ballot{3, 1});  // the promise implied by compacted entries survives
  // A corrupt snapshot file is refused, never trusted.
  auto snap = read_all(d.path / "snapshot");
  snap[snap.size() - 1] ^= 1;
  write_all(d.path / "snapshot", snap);
  file_storage g(d.path);
  CHECK_THROWS_AS(g.load(), wal_corrupt_error);
}

TEST_CASE("paxos file_storage treats a failed sync as fatal", "[paxos][storage][wal]") {
  temp_dir d;
  file_storage f(d.path);
  (void)f.load();
  f.save_promise(ballot{1, 1});
  f.inject_sync_failure();
  CHECK_THROWS_AS(f.sync(), storage_failure);
  f.save_promise(ballot{2, 1});
  CHECK_THROWS_AS(f.sync(), storage_failure);  // never retried
  CHECK_THROWS_AS(f.load(), storage_failure);
}

TEST_CASE("paxos cluster on file_storage survives a restart of every replica", "[paxos][storage][node]") {
  struct outbox {
    std::vector<message> msgs;
    void send(const message& m) { msgs.push_back(m); }
  };
  using kv_node = node<kv_state_machine, file_storage, outbox>;
  temp_dir root;
  std::vector<std::unique_ptr<file_storage>> disks;
  std::vector<outbox> nets(3);
  std::vector<std::unique_ptr<kv_node>> nodes(3);
  auto boot = [&] {
    disks.clear();
    for (std::size_t i = 0; i < 3; ++i) {
      disks.push_back(std::make_unique<file_storage>(root.path / std::to_string(i)));
      replica_options o;
      o.id = static_cast<node_id>(i + 1);
      o.nodes = {1, 2, 3};
      o.snapshot_interval = 8;
      o.log_retention = 2;
      o.seed = i + 1;
      nodes[i] = std::make_unique<kv_node>(o, *disks[i], nets[i]);
    }
  };
  auto pump = [&](int ticks) {
    for (int t = 0; t < ticks; ++t) {
      for (auto& n : nodes) {
        n->tick();
        (void)n->process();
      }
      for (int k = 0; k < 50; ++k) {
        bool any = false;
        for (auto& net : nets) {
          auto msgs = std::move(net.msgs);
          net.msgs.clear();
          for (auto& m : msgs) {
            any = true;
            auto& to = nodes[message_to(m) - 1];
            to->step(std::move(m));
            (void)to->process();
          }
        }
        if (!any) break;
      }
    }
  };
  auto leader = [&]() -> kv_node* {
    for (auto& n : nodes) {
      if (n->core().is_leader()) return n.get();
    }
    return nullptr;
  };
  boot();
  pump(40);
  REQUIRE(leader() != nullptr);
  for (std::uint64_t k = 1; k <= 30; ++k) {
    REQUIRE(leader()->propose(5, k, kv_state_machine::encode_append("log", std::to_string(k % 10))) ==
            propose_status::accepted);
    pump(1);
  }
  pump(5);
  std::string expected;
  for (std::uint64_t k = 1; k <= 30; ++k) expected += std::to_string(k % 10);
  auto checksum = leader()->core().checksum();
  // Every process exits; the replicas come back from their directories alone.
  for (auto& n : nodes) n.reset();
  for (auto& net : nets) net.msgs.clear();
  boot();
  for (auto& n : nodes) {
    CHECK(n->core().state().value("log") == expected);
    CHECK(n->core().checksum() == checksum);
  }
  pump(40);
  REQUIRE(leader() != nullptr);
  REQUIRE(leader()->propose(5, 31, kv_state_machine::encode_append("log", "!")) == propose_status::accepted);
  pump(5);
  for (auto& n : nodes) CHECK(n->core().state().value("log") == expected + "!");
}
