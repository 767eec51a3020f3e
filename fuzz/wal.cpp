// SPDX-License-Identifier: MIT
// fuzz/wal.cpp: the real `file_storage` recovery (WAL and snapshot file readers,
// distkit/paxos/storage.hpp) over the in-memory file system, on raw file bytes and on files the
// storage wrote itself and that were then damaged. Properties: `load()` returns a state or
// throws a corruption error (never a crash or a huge allocation); an undamaged WAL loads back
// exactly what was synced; a load that succeeded leaves a storage that accepts writes and
// loads the same state again.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "distkit/paxos/testing/memory_file_layer.hpp"
#include "fuzz_input.hpp"

namespace paxos = distkit::paxos;
using paxos::testing::memory_file_layer;
using paxos::testing::memory_file_storage;
using paxos::testing::memory_file_system;

namespace {

auto load(memory_file_system& fs, bool& corrupt) -> paxos::recovered_state {
  memory_file_storage storage{"/d", memory_file_layer{&fs}};
  corrupt = false;
  try {
    return storage.load();
  } catch (const paxos::paxos_corrupt_error&) {
    corrupt = true;
  }
  return {};
}

auto same(const paxos::recovered_state& a, const paxos::recovered_state& b) -> bool {
  return a.promised == b.promised && a.entries == b.entries && a.commit_index == b.commit_index && a.snap == b.snap;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  distkit_fuzz::input in(data, size);
  const auto mode = in.take<std::uint8_t>();
  memory_file_system fs;
  paxos::recovered_state written;
  bool expect_written = false;
  if ((mode & 1U) != 0) {
    // Records written by the storage itself, then (maybe) damaged.
    {
      memory_file_storage storage{"/d", memory_file_layer{&fs}};
      (void)storage.load();
      const unsigned steps = in.take<std::uint8_t>() % 8 + 1;
      for (unsigned i = 0; i < steps && !in.empty(); ++i) {
        switch (in.take<std::uint8_t>() % 4) {
          case 0: {
            const paxos::ballot b{in.take<std::uint32_t>(), in.take<std::uint8_t>()};
            storage.save_promise(b);
            break;
          }
          case 1: {
            paxos::log_entry e;
            e.slot = in.take<std::uint16_t>() + 1U;
            e.accepted = {in.take<std::uint32_t>(), in.take<std::uint8_t>()};
            e.chosen = (in.take<std::uint8_t>() & 1U) != 0;
            e.value.push_back({in.take<std::uint64_t>(), in.take<std::uint64_t>(), in.bytes(64)});
            storage.append(std::span(&e, 1));
            break;
          }
          case 2:
            storage.save_commit(in.take<std::uint16_t>());
            break;
          default:
            storage.sync();
            break;
        }
      }
      storage.sync();
    }
    bool corrupt = false;
    written = load(fs, corrupt);
    if (corrupt) distkit_fuzz::fail("the storage refused a WAL it wrote itself");
    expect_written = true;
    const unsigned flips = in.take<std::uint8_t>() % 3U;
    for (const char* file : {"/d/wal", "/d/snapshot"}) {
      auto bytes = fs.contents(file);
      if (!bytes || bytes->empty()) continue;
      for (unsigned i = 0; i < flips; ++i) {
        (*bytes)[in.take<std::uint32_t>() % bytes->size()] ^= static_cast<char>(in.take<std::uint8_t>() | 1U);
      }
      if ((mode & 2U) != 0) bytes->resize(in.take<std::uint32_t>() % (bytes->size() + 1));
      if (flips != 0 || (mode & 2U) != 0) expect_written = false;
      fs.set_contents(file, *bytes);
    }
  } else {
    fs.set_contents("/d/wal", in.bytes(1U << 16));
    if ((mode & 4U) != 0) fs.set_contents("/d/snapshot", in.bytes(1U << 16));
  }

  bool corrupt = false;
  const paxos::recovered_state first = load(fs, corrupt);
  if (expect_written && (corrupt || !same(first, written))) distkit_fuzz::fail("an undamaged WAL did not load back");
  if (corrupt) return 0;
  // A load repairs a torn tail for good: the next load sees the same state.
  const paxos::recovered_state second = load(fs, corrupt);
  if (corrupt || !same(first, second)) distkit_fuzz::fail("a repaired WAL did not load the same state twice");
  return 0;
}
