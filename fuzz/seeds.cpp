// SPDX-License-Identifier: MIT
// fuzz/seeds.cpp: writes the seed corpus of every fuzz target (valid inputs built with the
// real encoders), one directory per target under the given root. Run once; the files are kept
// in the repository: `fuzz_seeds fuzz/corpus`.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "distkit/bloom_filter.hpp"
#include "distkit/paxos/frame.hpp"
#include "distkit/paxos/kv_state_machine.hpp"
#include "distkit/paxos/message.hpp"
#include "distkit/paxos/testing/memory_file_layer.hpp"
#include "paxos_kv/kv_protocol.hpp"

namespace paxos = distkit::paxos;

namespace {

std::filesystem::path root;

void put(const std::string& target, const std::string& name, std::string_view bytes) {
  const auto dir = root / target;
  std::filesystem::create_directories(dir);
  std::ofstream(dir / ("seed-" + name), std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

auto str(std::span<const std::byte> b) -> std::string { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

void u16(std::string& out, std::uint16_t v) { out.append(reinterpret_cast<const char*>(&v), 2); }

template <class Layout>
void bloom(int layout_case, const char* name) {
  distkit::bloom_filter<std::string, distkit::xxh3_hash, Layout> f(100, 0.01);
  f.insert("a");
  f.insert("b");
  const auto serialized = f.to_bytes();
  const std::string bytes = str(serialized);
  put("bloom_filter", name, std::string(1, static_cast<char>(layout_case << 1)) + bytes);
  put("bloom_filter", std::string(name) + "-fixcrc", std::string(1, static_cast<char>((layout_case << 1) | 1)) + bytes);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds <corpus-root>\n");
    return 2;
  }
  root = argv[1];

  // bloom_filter: a serialized filter of each layout, and a Parquet bitset.
  bloom<distkit::split_block_layout>(0, "split-block");
  bloom<distkit::blocked_layout>(1, "blocked");
  bloom<distkit::classic_layout>(2, "classic");
  {
    distkit::bloom_filter<std::string> f(100, 0.01);
    f.insert("a");
    const auto bitset = f.to_parquet_bitset();
    put("bloom_filter", "parquet", std::string(1, static_cast<char>(3 << 1)) + str(bitset));
  }

  // message: one of each kind.
  const paxos::batch value{{7, 1, "put k v"}, {8, 2, ""}};
  const paxos::ballot b{3, 1};
  const std::vector<paxos::message> messages{
      paxos::prepare_msg{1, 2, b, 5},
      paxos::promise_msg{2, 1, b, true, b, 4, {{5, b, value, false}, {6, {}, value, true}}, 0},
      paxos::accept_msg{1, 2, b, 5, value, 4},
      paxos::accepted_msg{2, 1, b, 5, true, b},
      paxos::heartbeat_msg{1, 2, b, 5},
      paxos::heartbeat_ack_msg{2, 1, b, true, b, 5},
      paxos::catchup_request_msg{2, 1, 3},
      paxos::catchup_reply_msg{1, 2, 3, {value, {}}, 4},
      paxos::snapshot_msg{1, 2, {9, 1234, "state"}},
      paxos::snapshot_chunk_msg{1, 2, 9, 100, 77, 0, 88, "chunk"},
      paxos::snapshot_ack_msg{2, 1, 9, 5},
  };
  for (std::size_t i = 0; i < messages.size(); ++i) put("message", std::to_string(i), paxos::encode(messages[i]));

  // kv_protocol: request bodies (without the length prefix) carrying each command, and a
  // snapshot.
  const std::vector<std::string> commands{
      paxos::kv_state_machine::encode_put("k", "v"), paxos::kv_state_machine::encode_get("k"),
      paxos::kv_state_machine::encode_append("k", "w"), paxos::kv_state_machine::encode_cas("k", "vw", "x")};
  for (std::size_t i = 0; i < commands.size(); ++i) {
    put("kv_protocol", "request-" + std::to_string(i),
        paxos_kv::encode_request(paxos_kv::request_kind::command, 42, i + 1, commands[i]).substr(4));
  }
  {
    paxos::kv_state_machine sm;
    for (const auto& c : commands) (void)sm.apply(c);
    put("kv_protocol", "snapshot", sm.snapshot());
    put("kv_protocol", "members", "1=127.0.0.1:7001/127.0.0.1:8001,2=127.0.0.1:7002/127.0.0.1:8002");
  }

  // wal: a WAL the storage wrote (raw mode: mode byte 0, a 16-bit length, the bytes), and
  // structured inputs (mode byte 1: records written by the storage, then damage).
  {
    paxos::testing::memory_file_system fs;
    {
      paxos::testing::memory_file_storage s{"/d", paxos::testing::memory_file_layer{&fs}};
      (void)s.load();
      s.save_promise(b);
      const paxos::log_entry e{5, b, value, false};
      s.append(std::span(&e, 1));
      s.save_commit(5);
      s.sync();
    }
    const std::string wal = fs.contents("/d/wal").value_or("");
    std::string raw(1, '\0');
    u16(raw, static_cast<std::uint16_t>(wal.size()));
    put("wal", "raw", raw + wal);
    put("wal", "structured", std::string("\x01\x07\x00\x03\x00\x00\x00\x02\x01\x05\x00\x03\x00\x00\x00\x02\x00", 17));
    put("wal", "structured-damaged",
        std::string("\x03\x04\x00\x03\x00\x00\x00\x02\x03\x01\x10\x00\x00\x00\x55\x08\x00\x00\x00", 19));
  }

  // frame: a raw stream of two frames (mode 0) and a structured input (mode 2).
  {
    paxos::frame_encoder enc(7, 1, std::nullopt, 100);
    std::vector<std::byte> wire;
    const std::string body = paxos::encode(messages[2]);
    enc.encode(2, std::as_bytes(std::span(body.data(), body.size())), wire);
    enc.encode(2, std::as_bytes(std::span(body.data(), body.size())), wire);
    put("frame", "raw", std::string(1, '\0') + str(wire));
    put("frame", "structured",
        std::string("\x02\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01\x05\x00"
                    "hello\x00",
                    18));
    put("frame", "structured-keyed",
        std::string("\x03\x00\x00\x01\x00\x00\x00\x00\x00\x00\x02\x03\x00"
                    "abc\x02\x00"
                    "xy\x00",
                    21));
  }
  std::printf("seed corpus written under %s\n", root.c_str());
  return 0;
}
