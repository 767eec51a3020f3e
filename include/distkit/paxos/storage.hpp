// SPDX-License-Identifier: MIT
// distkit/paxos/storage.hpp: durable acceptor state: an in-memory store and a file WAL.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "distkit/detail/crc32c.hpp"
#include "distkit/detail/error.hpp"
#include "distkit/paxos/concepts.hpp"
#include "distkit/paxos/message.hpp"
#include "distkit/paxos/types.hpp"

namespace distkit::inline v0::paxos {

/// Thrown when a WAL or snapshot file is corrupt in a way that is not a torn last write
/// (a bad checksum or header before the end): recovery refuses rather than lose synced data.
class wal_corrupt_error : public paxos_corrupt_error {
 public:
  using paxos_corrupt_error::paxos_corrupt_error;
};

/// Thrown when the disk cannot make state durable (a failed write or fdatasync). Fatal: the
/// storage refuses every later call, because after a failed fsync the kernel may have dropped
/// the dirty pages and retrying would report success for lost data.
class storage_failure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

/// One durable record of the acceptor state.
using storage_record = std::variant<ballot, log_entry, slot_t, snapshot>;

/// Replays records into the state a replica recovers from (later records win).
inline auto replay(const std::optional<snapshot>& snap, std::span<const storage_record> records) -> recovered_state {
  recovered_state rs;
  rs.snap = snap;
  if (snap) rs.commit_index = snap->index;
  for (const auto& r : records) {
    if (const auto* b = std::get_if<ballot>(&r)) {
      rs.promised = std::max(rs.promised, *b);
    } else if (const auto* e = std::get_if<log_entry>(&r)) {
      rs.promised = std::max(rs.promised, e->accepted);
      if (!rs.snap || e->slot > rs.snap->index) rs.entries.push_back(*e);
    } else if (const auto* c = std::get_if<slot_t>(&r)) {
      rs.commit_index = std::max(rs.commit_index, *c);
    } else if (const auto* s = std::get_if<snapshot>(&r)) {
      if (!rs.snap || s->index > rs.snap->index) {
        rs.snap = *s;
        rs.commit_index = std::max(rs.commit_index, s->index);
      }
    }
  }
  if (rs.snap) {
    std::erase_if(rs.entries, [&](const log_entry& e) { return e.slot <= rs.snap->index; });
  }
  return rs;
}

/// Records that survive compaction at `snap_index`: the highest promise, and entries and the
/// commit index above the snapshot.
inline auto compact_records(std::vector<storage_record> records, slot_t snap_index) -> std::vector<storage_record> {
  ballot promised;
  slot_t commit = 0;
  std::vector<storage_record> kept;
  for (auto& r : records) {
    if (const auto* b = std::get_if<ballot>(&r)) {
      promised = std::max(promised, *b);
    } else if (auto* e = std::get_if<log_entry>(&r)) {
      promised = std::max(promised, e->accepted);
      if (e->slot > snap_index) kept.emplace_back(std::move(*e));
    } else if (const auto* c = std::get_if<slot_t>(&r)) {
      commit = std::max(commit, *c);
    }
  }
  std::vector<storage_record> out;
  out.reserve(kept.size() + 2);
  if (promised.valid()) out.emplace_back(promised);
  for (auto& r : kept) out.push_back(std::move(r));
  if (commit > snap_index) out.emplace_back(commit);
  return out;
}

}  // namespace detail

/// @brief Acceptor state kept in memory, with an explicit durable/volatile split so a
/// simulation can crash it: writes since the last `sync()` are lost by `crash()`, or torn
/// (a random prefix kept) by `crash_torn()`.
///
/// **Thread safety:** none. **Complexity:** O(1) per write; `load` is linear in the records.
class memory_storage {
 public:
  [[nodiscard]] auto load() -> recovered_state { return detail::replay(snap_, durable_); }
  void save_promise(const ballot& b) { pending_.emplace_back(b); }
  void append(std::span<const log_entry> entries) {
    for (const auto& e : entries) pending_.emplace_back(e);
  }
  void save_commit(slot_t c) { pending_.emplace_back(c); }
  void save_snapshot(const snapshot& s) { pending_.emplace_back(s); }
  void sync() {
    ++syncs_;
    for (auto& r : pending_) {
      if (auto* s = std::get_if<snapshot>(&r)) {
        if (!snap_ || s->index > snap_->index) snap_ = std::move(*s);
      } else {
        durable_.push_back(std::move(r));
      }
    }
    pending_.clear();
    if (snap_ && snap_->index > compacted_) {
      durable_ = detail::compact_records(std::move(durable_), snap_->index);
      compacted_ = snap_->index;
    }
  }
  /// A crash: every write since the last sync is lost.
  void crash() noexcept { pending_.clear(); }
  /// A crash during the write-back: a random prefix of the unsynced writes survives (and is
  /// durable). Returns how many of the unsynced writes survived, in the order they were made.
  template <class Rng>
  auto crash_torn(Rng& rng) -> std::size_t {
    std::uniform_int_distribution<std::size_t> d(0, pending_.size());
    auto kept = d(rng);
    pending_.resize(kept);
    sync();
    --syncs_;
    return kept;
  }
  [[nodiscard]] auto sync_count() const noexcept -> std::uint64_t { return syncs_; }
  [[nodiscard]] auto durable_records() const noexcept -> std::size_t { return durable_.size(); }

 private:
  std::vector<detail::storage_record> durable_;
  std::vector<detail::storage_record> pending_;
  std::optional<snapshot> snap_;
  slot_t compacted_ = 0;
  std::uint64_t syncs_ = 0;
};
static_assert(paxos_storage<memory_storage>);

namespace detail {

// WAL record: u32 length of payload | u32 crc32c(length) | u32 crc32c(payload) | payload.
// Payload: u8 type (1 promise, 2 entry, 3 commit) then the fields (message codec encoding).
inline constexpr std::size_t wal_header = 12;
inline constexpr std::uint32_t wal_max_record = 1U << 30;

inline void wal_append_record(std::string& out, const storage_record& r) {
  std::string payload;
  writer w(payload);
  if (const auto* b = std::get_if<ballot>(&r)) {
    w.u8(1);
    w.bal(*b);
  } else if (const auto* e = std::get_if<log_entry>(&r)) {
    w.u8(2);
    w.entry(*e);
  } else if (const auto* c = std::get_if<slot_t>(&r)) {
    w.u8(3);
    w.u64(*c);
  } else {
    return;  // snapshots live in their own file
  }
  char hdr[wal_header];
  auto len = static_cast<std::uint32_t>(payload.size());
  distkit::detail::store_le<std::uint32_t>(hdr, len);
  distkit::detail::store_le<std::uint32_t>(hdr + 4, distkit::detail::crc32c(hdr, 4));
  distkit::detail::store_le<std::uint32_t>(hdr + 8, distkit::detail::crc32c(payload.data(), payload.size()));
  out.append(hdr, wal_header);
  out.append(payload);
}

struct wal_scan {
  std::vector<storage_record> records;
  std::size_t valid_bytes = 0;  ///< bytes of whole, checked records (the rest is a torn tail)
};

/// Parses a WAL image. A record cut short by the end of the file is a torn tail; any checksum
/// or type failure in a complete record throws `wal_corrupt_error` (with its byte offset).
inline auto wal_parse(std::string_view img) -> wal_scan {
  wal_scan out;
  std::size_t pos = 0;
  auto corrupt = [&](const char* what) {
    throw wal_corrupt_error("distkit::paxos::file_storage: corrupt WAL record at byte " + std::to_string(pos) + ": " +
                            what);
  };
  while (pos < img.size()) {
    if (img.size() - pos < wal_header) break;  // torn header
    const char* h = img.data() + pos;
    auto len = distkit::detail::load_le<std::uint32_t>(h);
    if (distkit::detail::load_le<std::uint32_t>(h + 4) != distkit::detail::crc32c(h, 4)) corrupt("header checksum");
    if (len == 0 || len > wal_max_record) corrupt("length");
    if (img.size() - pos - wal_header < len) break;  // torn payload
    std::string_view payload = img.substr(pos + wal_header, len);
    if (distkit::detail::load_le<std::uint32_t>(h + 8) != distkit::detail::crc32c(payload.data(), payload.size())) {
      corrupt("payload checksum");
    }
    try {
      reader r(payload);
      auto type = r.u8();
      if (type == 1) {
        out.records.emplace_back(r.bal());
      } else if (type == 2) {
        out.records.emplace_back(r.entry());
      } else if (type == 3) {
        out.records.emplace_back(slot_t{r.u64()});
      } else {
        corrupt("type");
      }
      r.expect_end();
    } catch (const wal_corrupt_error&) {
      throw;
    } catch (const paxos_corrupt_error& e) {
      corrupt(e.what());
    }
    pos += wal_header + len;
    out.valid_bytes = pos;
  }
  return out;
}

}  // namespace detail

/// @brief Durable acceptor state in a directory: an append-only WAL (`wal`) of length +
/// CRC-32C records and a snapshot file (`snapshot`).
///
/// Writes are buffered and written with one `write` + one `fdatasync` per `sync()` (group
/// commit: one sync covers every record of a ready cycle). On open, a record cut short at the
/// end of the WAL (a torn last write) is truncated away; a complete record with a bad checksum
/// anywhere is refused with `wal_corrupt_error` (never skipped: it may hold synced state).
/// After a snapshot is synced, the WAL is rewritten without the entries it covers (written to
/// a temporary file, synced, renamed, directory synced). A failed write or fdatasync throws
/// `storage_failure` and the storage refuses every later call.
///
/// @throws std::invalid_argument if `dir` is empty; `wal_corrupt_error`,
///         `storage_failure` from `load()`/`sync()` as above.
/// **Thread safety:** none. **Complexity:** `sync` is O(bytes written); `load` O(WAL size).
class file_storage {
 public:
  explicit file_storage(std::filesystem::path dir) : dir_(std::move(dir)) {
    if (dir_.empty()) distkit::detail::throw_invalid_argument("paxos::file_storage", "dir", "must not be empty");
    std::filesystem::create_directories(dir_);
  }
  file_storage(const file_storage&) = delete;
  auto operator=(const file_storage&) -> file_storage& = delete;
  ~file_storage() {
    if (fd_ >= 0) ::close(fd_);
  }

  /// Reads the snapshot and the WAL, truncating a torn tail. Call once, before writing.
  [[nodiscard]] auto load() -> recovered_state {
    check_usable();
    std::optional<snapshot> snap;
    if (auto img = read_file(dir_ / "snapshot")) snap = parse_snapshot(*img);
    auto img = read_file(dir_ / "wal").value_or(std::string{});
    auto scan = detail::wal_parse(img);
    open_wal();
    if (scan.valid_bytes != img.size()) {
      if (::ftruncate(fd_, static_cast<off_t>(scan.valid_bytes)) != 0 || ::fdatasync(fd_) != 0) fail("truncate");
      truncated_bytes_ = img.size() - scan.valid_bytes;
    }
    if (snap) compacted_ = snap->index;
    return detail::replay(snap, scan.records);
  }
  void save_promise(const ballot& b) { detail::wal_append_record(buf_, b); }
  void append(std::span<const log_entry> entries) {
    for (const auto& e : entries) detail::wal_append_record(buf_, e);
  }
  void save_commit(slot_t c) { detail::wal_append_record(buf_, c); }
  void save_snapshot(const snapshot& s) {
    if (!pending_snap_ || s.index > pending_snap_->index) pending_snap_ = s;
  }

  /// Makes every write since the last sync durable (one write + one fdatasync).
  void sync() {
    check_usable();
    if (fd_ < 0) open_wal();
    if (!buf_.empty()) {
      write_all(fd_, buf_);
      buf_.clear();
      if (::fdatasync(fd_) != 0) fail("fdatasync");
      ++syncs_;
    }
    if (pending_snap_) {
      auto s = std::move(*pending_snap_);
      pending_snap_.reset();
      if (s.index > compacted_) install_snapshot(s);
    }
  }

  [[nodiscard]] auto sync_count() const noexcept -> std::uint64_t { return syncs_; }
  /// Bytes of torn tail removed by the last `load()`.
  [[nodiscard]] auto truncated_bytes() const noexcept -> std::size_t { return truncated_bytes_; }
  [[nodiscard]] auto directory() const -> const std::filesystem::path& { return dir_; }
  /// Testing only: the next fdatasync is reported as failed (as a full or dying disk would).
  void inject_sync_failure() noexcept { inject_failure_ = true; }

 private:
  void check_usable() const {
    if (failed_) throw storage_failure("distkit::paxos::file_storage: unusable after an earlier write/sync failure");
  }
  [[noreturn]] void fail(const char* what) {
    failed_ = true;
    throw storage_failure(std::string("distkit::paxos::file_storage: ") + what + " failed: " + std::strerror(errno));
  }
  void open_wal() {
    if (fd_ >= 0) return;
    fd_ = ::open((dir_ / "wal").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("open wal");
  }
  void write_all(int fd, std::string_view data) {
    if (inject_failure_) {
      inject_failure_ = false;
      errno = EIO;
      fail("fdatasync");
    }
    while (!data.empty()) {
      auto n = ::write(fd, data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail("write");
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  static auto read_file(const std::filesystem::path& p) -> std::optional<std::string> {
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return std::nullopt;
      throw storage_failure("distkit::paxos::file_storage: cannot open " + p.string() + ": " + std::strerror(errno));
    }
    std::string out;
    char buf[1 << 16];
    for (;;) {
      auto n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        ::close(fd);
        throw storage_failure("distkit::paxos::file_storage: cannot read " + p.string());
      }
      if (n == 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return out;
  }
  static auto parse_snapshot(std::string_view img) -> snapshot {
    auto bad = [] { throw wal_corrupt_error("distkit::paxos::file_storage: corrupt snapshot file"); };
    if (img.size() < 8) bad();
    auto len = distkit::detail::load_le<std::uint32_t>(img.data());
    if (len != img.size() - 8) bad();
    if (distkit::detail::load_le<std::uint32_t>(img.data() + 4) !=
        distkit::detail::crc32c(img.data() + 8, std::size_t{len}))
      bad();
    try {
      detail::reader r(img.substr(8));
      auto s = r.snap();
      r.expect_end();
      return s;
    } catch (const paxos_corrupt_error&) {
      bad();
    }
    return {};
  }
  void write_durably(const std::filesystem::path& path, std::string_view data) {
    auto tmp = path;
    tmp += ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fail("open temporary file");
    try {
      write_all(fd, data);
    } catch (...) {
      ::close(fd);
      throw;
    }
    if (::fsync(fd) != 0) {
      ::close(fd);
      fail("fsync");
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename");
    sync_dir();
  }
  void sync_dir() {
    int d = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d < 0) fail("open directory");
    if (::fsync(d) != 0) {
      ::close(d);
      fail("fsync directory");
    }
    ::close(d);
  }
  void install_snapshot(const snapshot& s) {
    std::string body;
    detail::writer w(body);
    w.snap(s);
    std::string img(8, '\0');
    distkit::detail::store_le<std::uint32_t>(img.data(), static_cast<std::uint32_t>(body.size()));
    distkit::detail::store_le<std::uint32_t>(img.data() + 4, distkit::detail::crc32c(body.data(), body.size()));
    img += body;
    write_durably(dir_ / "snapshot", img);
    // Compact: rewrite the WAL without what the snapshot covers.
    auto wal = read_file(dir_ / "wal").value_or(std::string{});
    auto scan = detail::wal_parse(wal);
    auto kept = detail::compact_records(std::move(scan.records), s.index);
    std::string out;
    for (const auto& r : kept) detail::wal_append_record(out, r);
    ::close(fd_);
    fd_ = -1;
    write_durably(dir_ / "wal", out);
    open_wal();
    compacted_ = s.index;
  }

  std::filesystem::path dir_;
  int fd_ = -1;
  std::string buf_;
  std::optional<snapshot> pending_snap_;
  slot_t compacted_ = 0;
  std::uint64_t syncs_ = 0;
  std::size_t truncated_bytes_ = 0;
  bool failed_ = false;
  bool inject_failure_ = false;
};
static_assert(paxos_storage<file_storage>);

}  // namespace distkit::inline v0::paxos
