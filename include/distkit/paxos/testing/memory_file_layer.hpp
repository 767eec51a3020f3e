// SPDX-License-Identifier: MIT
// distkit/paxos/testing/memory_file_layer.hpp: an in-memory file system with crash semantics,
// put under the real `basic_file_storage` to crash it or fail its writes at every step.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/types.h>

#include "distkit/paxos/storage.hpp"

namespace distkit::inline v0::paxos::testing {

/// Thrown by a `memory_file_layer` call when an armed crash fires: the process "dies" in the
/// middle of whatever it was doing. Catch it where the process would have ended, then call
/// `memory_file_system::crash` to get the state a reboot would see.
class simulated_crash : public std::exception {
 public:
  [[nodiscard]] auto what() const noexcept -> const char* override { return "distkit::paxos: simulated crash"; }
};

/// What a crash does to the bytes written to a file since its last fsync/fdatasync.
enum class tear : std::uint8_t {
  lose,       ///< all of them are lost
  torn,       ///< a prefix of them survives, cut at any byte
  zero_fill,  ///< a prefix survives, then zeros: the file grew but the data never landed
};

/// The shape of one crash (for tests that walk every byte); `memory_file_system::crash(rng)`
/// draws one at random per file.
struct crash_shape {
  tear mode = tear::lose;
  std::size_t keep = 0;       ///< unsynced bytes kept (torn) or kept before the zeros (zero_fill)
  std::size_t zeros = 0;      ///< zero bytes after the kept ones (zero_fill)
  bool keep_renames = false;  ///< renames and creations not yet made durable by a directory
                              ///< fsync survive (both outcomes are legal after a crash)
};

/// @brief The state of an in-memory file system: every file's current and durable bytes, and
/// the current and durable directory entries. Shared by the `memory_file_layer` handles of the
/// storages that run on it (one per incarnation of a simulated process).
///
/// Every call that changes something counts as one step; `crash_at_step(n)` makes step `n`
/// throw `simulated_crash` (and every later call too, until `crash()` applies the crash), and
/// `fail_at_step(n, err)` makes step `n` fail with `errno = err` (ENOSPC, EIO).
///
/// **Thread safety:** none.
class memory_file_system {
 public:
  /// The unit a disk writes atomically.
  static constexpr std::size_t sector = 512;

  struct inode {
    std::string data;     // what reads see
    std::string durable;  // what survives a crash for certain
  };
  struct open_file {
    std::shared_ptr<inode> node;  // null for a directory
    std::size_t offset = 0;
    bool append = false;
  };

  /// Steps performed so far (calls that change state, including fsyncs).
  [[nodiscard]] auto steps() const noexcept -> std::uint64_t { return steps_; }
  /// Step `n` (counted from now: 1 is the next one) throws `simulated_crash`.
  void crash_at_step(std::uint64_t n) noexcept { crash_at_ = steps_ + n; }
  /// Step `n` (counted from now) fails with `errno = err`; later steps succeed again.
  void fail_at_step(std::uint64_t n, int err) noexcept {
    fail_at_ = steps_ + n;
    fail_errno_ = err;
  }
  /// Disarms a pending crash or failure.
  void disarm() noexcept {
    crash_at_.reset();
    fail_at_.reset();
  }
  /// True after an armed crash fired and before `crash()` applied it.
  [[nodiscard]] auto down() const noexcept -> bool { return down_; }

  /// Applies a crash: unsynced bytes of every file are torn as `shape` says, unsynced
  /// directory changes are kept or lost, every open file is closed.
  void crash(const crash_shape& shape) {
    for (auto& node : all_inodes()) apply(*node, shape);
    if (!shape.keep_renames) names_ = durable_names_;
    durable_names_ = names_;
    fds_.clear();
    down_ = false;
    disarm();
  }
  /// Applies a crash drawn at random: per file, lose / tear / zero-fill its unsynced bytes.
  template <class Rng>
  void crash(Rng& rng) {
    bool keep_renames = std::uniform_int_distribution<int>(0, 1)(rng) == 1;
    for (auto& node : all_inodes()) {
      crash_shape s;
      s.mode = static_cast<tear>(std::uniform_int_distribution<int>(0, 2)(rng));
      std::size_t tail = node->data.size() > node->durable.size() ? node->data.size() - node->durable.size() : 0;
      s.keep = std::uniform_int_distribution<std::size_t>(0, tail)(rng);
      s.zeros = std::uniform_int_distribution<std::size_t>(0, tail - s.keep)(rng);
      apply(*node, s);
    }
    if (!keep_renames) names_ = durable_names_;
    durable_names_ = names_;
    fds_.clear();
    down_ = false;
    disarm();
  }

  /// The current bytes of `path` (what a read sees), if it exists.
  [[nodiscard]] auto contents(const std::string& path) const -> std::optional<std::string> {
    auto it = names_.find(path);
    if (it == names_.end()) return std::nullopt;
    return it->second->data;
  }
  /// Replaces the bytes of `path` durably (for tests that corrupt a file on purpose).
  void set_contents(const std::string& path, std::string bytes) {
    auto& n = names_[path];
    if (!n) n = std::make_shared<inode>();
    n->data = bytes;
    n->durable = std::move(bytes);
    durable_names_ = names_;
  }

  // ---- the POSIX calls, as `memory_file_layer` forwards them ----------------------------

  auto open(const char* path, int flags, mode_t) -> int {
    if ((flags & O_DIRECTORY) != 0) {
      if (!check()) return -1;
      return add_fd(open_file{});
    }
    const bool creates = (flags & (O_CREAT | O_TRUNC)) != 0;
    if (creates && !step()) return -1;
    if (!creates && !check()) return -1;
    auto it = names_.find(path);
    if (it == names_.end()) {
      if ((flags & O_CREAT) == 0) {
        errno = ENOENT;
        return -1;
      }
      it = names_.emplace(path, std::make_shared<inode>()).first;
    } else if ((flags & O_TRUNC) != 0) {
      it->second->data.clear();
    }
    return add_fd(open_file{it->second, 0, (flags & O_APPEND) != 0});
  }
  auto close(int fd) -> int {
    fds_.erase(fd);
    return 0;
  }
  auto read(int fd, void* buf, std::size_t n) -> ssize_t {
    if (!check()) return -1;
    auto* f = find(fd);
    if (!f || !f->node) return bad_fd();
    const auto& d = f->node->data;
    std::size_t k = f->offset >= d.size() ? 0 : std::min(n, d.size() - f->offset);
    if (k != 0) std::memcpy(buf, d.data() + f->offset, k);
    f->offset += k;
    return static_cast<ssize_t>(k);
  }
  auto write(int fd, const void* buf, std::size_t n) -> ssize_t {
    if (!step()) return -1;
    auto* f = find(fd);
    if (!f || !f->node) return bad_fd();
    auto& d = f->node->data;
    if (f->append) f->offset = d.size();
    if (d.size() < f->offset + n) d.resize(f->offset + n, '\0');
    std::memcpy(d.data() + f->offset, buf, n);
    f->offset += n;
    return static_cast<ssize_t>(n);
  }
  auto fsync(int fd) -> int {
    if (!step()) return -1;
    auto* f = find(fd);
    if (!f) return bad_fd();
    if (f->node) {
      f->node->durable = f->node->data;
    } else {
      durable_names_ = names_;  // a directory fsync makes its entries durable
    }
    return 0;
  }
  auto fdatasync(int fd) -> int { return fsync(fd); }
  auto ftruncate(int fd, off_t size) -> int {
    if (!step()) return -1;
    auto* f = find(fd);
    if (!f || !f->node) return bad_fd();
    f->node->data.resize(static_cast<std::size_t>(size), '\0');
    return 0;
  }
  auto rename(const char* from, const char* to) -> int {
    if (!step()) return -1;
    auto it = names_.find(from);
    if (it == names_.end()) {
      errno = ENOENT;
      return -1;
    }
    auto node = it->second;
    names_.erase(it);
    names_[to] = std::move(node);
    return 0;
  }

 private:
  // Every inode reachable from the current or the durable directory entries, once each, in
  // the order of its first name (current names, then durable ones). The order must not
  // depend on heap addresses: a seeded crash draws its tears file by file in this order, and
  // the same seed must tear the same files the same way in every run.
  auto all_inodes() -> std::vector<std::shared_ptr<inode>> {
    std::vector<std::shared_ptr<inode>> out;
    std::set<const inode*> seen;
    for (const auto* dir : {&names_, &durable_names_}) {
      for (const auto& [n, p] : *dir) {
        if (seen.insert(p.get()).second) out.push_back(p);
      }
    }
    return out;
  }
  static void apply(inode& n, const crash_shape& s) {
    const bool extends = n.data.size() > n.durable.size() && n.data.compare(0, n.durable.size(), n.durable) == 0;
    if (!extends || s.mode == tear::lose) {
      n.data = n.durable;
      return;
    }
    std::string tail = n.data.substr(n.durable.size());
    std::size_t keep = std::min(s.keep, tail.size());
    if (s.mode == tear::zero_fill) {
      // The file grew, but whole sectors of the new bytes never landed: a disk writes a
      // sector atomically, so the kept bytes end at a sector boundary (or where the durable
      // bytes end), and zeros follow.
      const std::size_t end = n.durable.size() + keep;
      const std::size_t aligned = std::max(n.durable.size(), end / sector * sector);
      keep = aligned - n.durable.size();
      n.data = n.durable + tail.substr(0, keep);
      n.data.append(std::min(s.zeros + (end - aligned), tail.size() - keep), '\0');
    } else {
      n.data = n.durable + tail.substr(0, keep);
    }
    n.durable = n.data;
  }
  auto step() -> bool {
    if (!check()) return false;
    ++steps_;
    if (crash_at_ && steps_ == *crash_at_) {
      down_ = true;
      throw simulated_crash{};
    }
    if (fail_at_ && steps_ == *fail_at_) {
      fail_at_.reset();
      errno = fail_errno_;
      return false;
    }
    return true;
  }
  auto check() const -> bool {
    if (down_) throw simulated_crash{};
    return true;
  }
  auto add_fd(open_file f) -> int {
    int fd = next_fd_++;
    fds_.emplace(fd, std::move(f));
    return fd;
  }
  auto find(int fd) -> open_file* {
    auto it = fds_.find(fd);
    return it == fds_.end() ? nullptr : &it->second;
  }
  static auto bad_fd() -> int {
    errno = EBADF;
    return -1;
  }

  std::map<std::string, std::shared_ptr<inode>> names_;
  std::map<std::string, std::shared_ptr<inode>> durable_names_;
  std::map<int, open_file> fds_;
  int next_fd_ = 3;
  std::uint64_t steps_ = 0;
  std::optional<std::uint64_t> crash_at_;
  std::optional<std::uint64_t> fail_at_;
  int fail_errno_ = EIO;
  bool down_ = false;
};

/// @brief A `file_layer` over a `memory_file_system` (a handle: copies share the file system).
/// Put it under the real storage: `basic_file_storage<memory_file_layer> s{"/d", {&fs}}`.
class memory_file_layer {
 public:
  explicit memory_file_layer(memory_file_system* fs = nullptr) noexcept : fs_(fs) {}
  auto open(const char* path, int flags, mode_t mode) -> int { return fs_->open(path, flags, mode); }
  auto close(int fd) -> int { return fs_->close(fd); }
  auto read(int fd, void* buf, std::size_t n) -> ssize_t { return fs_->read(fd, buf, n); }
  auto write(int fd, const void* buf, std::size_t n) -> ssize_t { return fs_->write(fd, buf, n); }
  auto fsync(int fd) -> int { return fs_->fsync(fd); }
  auto fdatasync(int fd) -> int { return fs_->fdatasync(fd); }
  auto ftruncate(int fd, off_t size) -> int { return fs_->ftruncate(fd, size); }
  auto rename(const char* from, const char* to) -> int { return fs_->rename(from, to); }
  void make_directories(const std::filesystem::path&) {}
  [[nodiscard]] auto file_system() const noexcept -> memory_file_system* { return fs_; }

 private:
  memory_file_system* fs_;
};
static_assert(file_layer<memory_file_layer>);

/// `file_storage` over the in-memory file system.
using memory_file_storage = basic_file_storage<memory_file_layer>;
static_assert(paxos_storage<memory_file_storage>);

}  // namespace distkit::inline v0::paxos::testing
