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

namespace internal {

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

}  // namespace internal

/// @brief Acceptor state kept in memory, with an explicit durable/volatile split so a
/// simulation can crash it: writes since the last `sync()` are lost by `crash()`, or torn
/// (a random prefix kept) by `crash_torn()`.
///
/// **Thread safety:** none. **Complexity:** O(1) per write; `load` is linear in the records.
class memory_storage {
 public:
  [[nodiscard]] auto load() -> recovered_state { return internal::replay(snap_, durable_); }
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
      durable_ = internal::compact_records(std::move(durable_), snap_->index);
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
  std::vector<internal::storage_record> durable_;
  std::vector<internal::storage_record> pending_;
  std::optional<snapshot> snap_;
  slot_t compacted_ = 0;
  std::uint64_t syncs_ = 0;
};
static_assert(paxos_storage<memory_storage>);

namespace internal {

// WAL record: u32 length of payload | u32 crc32c(length) | u32 crc32c(payload) | payload.
// Payload: u8 type then the fields (message codec encoding): 1 promise (ballot), 2 accepted
// entry (slot, ballot, batch), 3 commit index (slot), 4 chosen entry (slot, ballot, batch;
// carries the chosen marker). Files written before type 4 existed read unchanged.
inline constexpr std::size_t wal_header = 12;
inline constexpr std::uint32_t wal_max_record = 1U << 30;

inline void wal_append_record(std::string& out, const storage_record& r) {
  std::string payload;
  writer w(payload);
  if (const auto* b = std::get_if<ballot>(&r)) {
    w.u8(1);
    w.bal(*b);
  } else if (const auto* e = std::get_if<log_entry>(&r)) {
    w.u8(e->chosen ? 4 : 2);
    w.u64(e->slot);
    w.bal(e->accepted);
    w.cmds(e->value);
  } else if (const auto* c = std::get_if<slot_t>(&r)) {
    w.u8(3);
    w.u64(*c);
  } else {
    return;  // snapshots live in their own file
  }
  // A record the reader would refuse is refused here instead of being written.
  if (payload.size() > wal_max_record) {
    distkit::detail::throw_invalid_argument("paxos::storage", "log record",
                                            "must be at most 1 GiB (the reader's limit)", payload.size());
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

/// True when every byte of `s` is zero (a tail the file system extended but never wrote).
inline auto all_zero(std::string_view s) noexcept -> bool {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == '\0'; });
}

/// A disk writes a sector (512 bytes) atomically; a write torn by a crash leaves whole sectors
/// unwritten, which read back as zeros.
inline constexpr std::size_t wal_sector = 512;

/// True when the failing record at `[pos, end)` of `img` is a torn last write rather than
/// corruption: nothing but zeros follows it, and at least one whole sector-aligned piece of it
/// is zeros (the test etcd's WAL applies before it repairs a tail).
inline auto wal_torn_at(std::string_view img, std::size_t pos, std::size_t end) noexcept -> bool {
  if (!all_zero(img.substr(end))) return false;
  for (std::size_t c = pos; c < end;) {
    std::size_t next = std::min(end, (c / wal_sector + 1) * wal_sector);
    if (all_zero(img.substr(c, next - c))) return true;
    c = next;
  }
  return false;
}

/// Parses a WAL image. The end of the file may hold a torn last write, which is cut away (as
/// etcd's WAL repair does): a header or payload cut short by the end of the file, or a last
/// record (header or payload) that fails its checksum where a whole sector of it never landed
/// (reads as zeros) and only zeros follow: a zero-filled tail, a header whose payload never
/// landed. Anything else that fails a check (a bad record followed by more data, a bit flip,
/// an unknown type) is corruption of synced state and throws `wal_corrupt_error` with its
/// byte offset.
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
    if (distkit::detail::load_le<std::uint32_t>(h + 4) != distkit::detail::crc32c(h, 4)) {
      // Torn when the header (or its part in a second sector) never landed and nothing after.
      const std::size_t boundary = (pos / wal_sector + 1) * wal_sector;
      if (all_zero(img.substr(pos)) || (boundary < pos + wal_header && all_zero(img.substr(boundary)))) break;
      corrupt("header checksum");
    }
    if (len == 0 || len > wal_max_record) corrupt("length");
    if (img.size() - pos - wal_header < len) break;  // torn payload
    std::string_view payload = img.substr(pos + wal_header, len);
    if (distkit::detail::load_le<std::uint32_t>(h + 8) != distkit::detail::crc32c(payload.data(), payload.size())) {
      if (wal_torn_at(img, pos, pos + wal_header + len)) break;
      corrupt("payload checksum");
    }
    try {
      reader r(payload);
      auto type = r.u8();
      if (type == 1) {
        out.records.emplace_back(r.bal());
      } else if (type == 2 || type == 4) {
        log_entry e;
        e.slot = r.u64();
        e.accepted = r.bal();
        e.value = r.cmds();
        e.chosen = type == 4;
        out.records.emplace_back(std::move(e));
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

}  // namespace internal

/// @brief The file operations `basic_file_storage` performs, as a policy, so a test can put a
/// fault-injecting file system under the real storage code.
///
/// Requires the POSIX calls by the same names and contracts (return -1 and set `errno` on
/// failure): `f.open(path, flags, mode) -> int`, `f.close(fd)`, `f.read(fd, buf, n)`,
/// `f.write(fd, buf, n)`, `f.fsync(fd)`, `f.fdatasync(fd)`, `f.ftruncate(fd, size)`,
/// `f.rename(from, to)`, and `f.make_directories(path)` (creates a directory and its parents;
/// throws on failure).
template <class F>
concept file_layer = requires(F& f, const char* path, int fd, void* out, const void* in, std::size_t n, off_t size) {
  { f.open(path, int{}, mode_t{}) } -> std::same_as<int>;
  { f.close(fd) } -> std::same_as<int>;
  { f.read(fd, out, n) } -> std::same_as<ssize_t>;
  { f.write(fd, in, n) } -> std::same_as<ssize_t>;
  { f.fsync(fd) } -> std::same_as<int>;
  { f.fdatasync(fd) } -> std::same_as<int>;
  { f.ftruncate(fd, size) } -> std::same_as<int>;
  { f.rename(path, path) } -> std::same_as<int>;
  f.make_directories(std::filesystem::path{});
};

/// The default file layer: the POSIX calls themselves.
struct posix_file_layer {
  auto open(const char* path, int flags, mode_t mode) -> int { return ::open(path, flags, mode); }
  auto close(int fd) -> int { return ::close(fd); }
  auto read(int fd, void* buf, std::size_t n) -> ssize_t { return ::read(fd, buf, n); }
  auto write(int fd, const void* buf, std::size_t n) -> ssize_t { return ::write(fd, buf, n); }
  auto fsync(int fd) -> int { return ::fsync(fd); }
  auto fdatasync(int fd) -> int { return ::fdatasync(fd); }
  auto ftruncate(int fd, off_t size) -> int { return ::ftruncate(fd, size); }
  auto rename(const char* from, const char* to) -> int { return ::rename(from, to); }
  void make_directories(const std::filesystem::path& p) { std::filesystem::create_directories(p); }
};
static_assert(file_layer<posix_file_layer>);

/// @brief Durable acceptor state in a directory: an append-only WAL (`wal`) of length +
/// CRC-32C records and a snapshot file (`snapshot`).
///
/// Writes are buffered and written with one `write` + one `fdatasync` per `sync()` (group
/// commit: one sync covers every record of a ready cycle). On open, a record cut short at the
/// end of the WAL (a torn last write) is truncated away; a complete record with a bad checksum
/// anywhere is refused with `wal_corrupt_error` (never skipped: it may hold synced state).
/// A pending snapshot is made durable before the WAL records of the same `sync()` (snapshot
/// file written to a temporary file, synced, renamed, directory synced; then the WAL rewritten
/// without the entries it covers, the same way; then the new records appended and synced), so
/// a crash at any step leaves either the old or the new snapshot and never a commit record
/// past a snapshot that is not durable. A failed write or fdatasync throws `storage_failure`
/// and the storage refuses every later call.
///
/// @tparam FileLayer models `file_layer` (default `posix_file_layer`; tests put
///         `testing::memory_file_layer` under it to crash and fail it at every step).
///
/// @throws std::invalid_argument if `dir` is empty; `wal_corrupt_error`,
///         `storage_failure` from `load()`/`sync()` as above.
/// **Thread safety:** none. **Complexity:** `sync` is O(bytes written); `load` O(WAL size).
template <file_layer FileLayer = posix_file_layer>
class basic_file_storage {
 public:
  explicit basic_file_storage(std::filesystem::path dir, FileLayer files = FileLayer{})
      : dir_(std::move(dir)), files_(std::move(files)) {
    if (dir_.empty()) distkit::detail::throw_invalid_argument("paxos::file_storage", "dir", "must not be empty");
    files_.make_directories(dir_);
  }
  basic_file_storage(const basic_file_storage&) = delete;
  auto operator=(const basic_file_storage&) -> basic_file_storage& = delete;
  ~basic_file_storage() {
    if (fd_ >= 0) files_.close(fd_);
  }

  /// Reads the snapshot and the WAL, truncating a torn tail. Call once, before writing.
  [[nodiscard]] auto load() -> recovered_state {
    check_usable();
    std::optional<snapshot> snap;
    if (auto img = read_file(dir_ / "snapshot")) snap = parse_snapshot(*img);
    auto img = read_file(dir_ / "wal").value_or(std::string{});
    auto scan = internal::wal_parse(img);
    open_wal();
    if (scan.valid_bytes != img.size()) {
      if (files_.ftruncate(fd_, static_cast<off_t>(scan.valid_bytes)) != 0 || files_.fdatasync(fd_) != 0) {
        fail("truncate");
      }
      truncated_bytes_ = img.size() - scan.valid_bytes;
    }
    if (snap) compacted_ = snap->index;
    return internal::replay(snap, scan.records);
  }
  void save_promise(const ballot& b) { internal::wal_append_record(buf_, b); }
  void append(std::span<const log_entry> entries) {
    for (const auto& e : entries) internal::wal_append_record(buf_, e);
  }
  void save_commit(slot_t c) { internal::wal_append_record(buf_, c); }
  void save_snapshot(const snapshot& s) {
    if (!pending_snap_ || s.index > pending_snap_->index) pending_snap_ = s;
  }

  /// Makes every write since the last sync durable (one write + one fdatasync). A pending
  /// snapshot is made durable first (snapshot file, then the compacted WAL), then the WAL
  /// records in the order they were saved: a snapshot only holds chosen state, so making it
  /// durable early is always safe, while a commit record past it must never outlive it.
  void sync() {
    check_usable();
    if (fd_ < 0) open_wal();
    if (pending_snap_) {
      auto s = std::move(*pending_snap_);
      pending_snap_.reset();
      if (s.index > compacted_) install_snapshot(s);
    }
    if (!buf_.empty()) {
      write_all(fd_, buf_);
      buf_.clear();
      if (files_.fdatasync(fd_) != 0) fail("fdatasync");
      ++syncs_;
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
    fd_ = files_.open((dir_ / "wal").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("open wal");
    if (!wal_entry_synced_) {
      // A WAL this call may have created exists after a crash only once its directory entry
      // is durable: without this, an fdatasync'd promise could vanish with the file.
      sync_dir();
      wal_entry_synced_ = true;
    }
  }
  void write_all(int fd, std::string_view data) {
    if (inject_failure_) {
      inject_failure_ = false;
      errno = EIO;
      fail("fdatasync");
    }
    while (!data.empty()) {
      auto n = files_.write(fd, data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail("write");
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  auto read_file(const std::filesystem::path& p) -> std::optional<std::string> {
    int fd = files_.open(p.c_str(), O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) {
      if (errno == ENOENT) return std::nullopt;
      throw storage_failure("distkit::paxos::file_storage: cannot open " + p.string() + ": " + std::strerror(errno));
    }
    std::string out;
    char buf[1 << 16];
    for (;;) {
      auto n = files_.read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        files_.close(fd);
        throw storage_failure("distkit::paxos::file_storage: cannot read " + p.string());
      }
      if (n == 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    files_.close(fd);
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
      internal::reader r(img.substr(8));
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
    int fd = files_.open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fail("open temporary file");
    try {
      write_all(fd, data);
    } catch (...) {
      files_.close(fd);
      throw;
    }
    if (files_.fsync(fd) != 0) {
      files_.close(fd);
      fail("fsync");
    }
    files_.close(fd);
    if (files_.rename(tmp.c_str(), path.c_str()) != 0) fail("rename");
    sync_dir();
  }
  void sync_dir() {
    int d = files_.open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (d < 0) fail("open directory");
    if (files_.fsync(d) != 0) {
      files_.close(d);
      fail("fsync directory");
    }
    files_.close(d);
  }
  void install_snapshot(const snapshot& s) {
    std::string body;
    internal::writer w(body);
    w.snap(s);
    if (body.size() > 0xFFFF'FFFFU) {  // its length field is 32 bits: refused, never truncated
      distkit::detail::throw_invalid_argument("paxos::file_storage", "snapshot", "must be under 4 GiB", body.size());
    }
    std::string img(8, '\0');
    distkit::detail::store_le<std::uint32_t>(img.data(), static_cast<std::uint32_t>(body.size()));
    distkit::detail::store_le<std::uint32_t>(img.data() + 4, distkit::detail::crc32c(body.data(), body.size()));
    img += body;
    write_durably(dir_ / "snapshot", img);
    // Compact: rewrite the WAL without what the snapshot covers.
    auto wal = read_file(dir_ / "wal").value_or(std::string{});
    auto scan = internal::wal_parse(wal);
    auto kept = internal::compact_records(std::move(scan.records), s.index);
    std::string out;
    for (const auto& r : kept) internal::wal_append_record(out, r);
    files_.close(fd_);
    fd_ = -1;
    write_durably(dir_ / "wal", out);
    open_wal();
    compacted_ = s.index;
  }

  std::filesystem::path dir_;
  [[no_unique_address]] FileLayer files_;
  int fd_ = -1;
  std::string buf_;
  std::optional<snapshot> pending_snap_;
  slot_t compacted_ = 0;
  std::uint64_t syncs_ = 0;
  std::size_t truncated_bytes_ = 0;
  bool failed_ = false;
  bool inject_failure_ = false;
  bool wal_entry_synced_ = false;
};

/// The file storage over the POSIX file layer.
using file_storage = basic_file_storage<>;
static_assert(paxos_storage<file_storage>);

}  // namespace distkit::inline v0::paxos
