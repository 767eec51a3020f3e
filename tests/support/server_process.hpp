// SPDX-License-Identifier: MIT
// tests/support/server_process.hpp: a server child process for the multi-process tests
// (paxos_kv clusters): fork + exec with its output appended to a log file, kill -9, a bounded
// wait for it to exit by itself, its output and its resident memory; a free loopback port and a
// field of a `paxos_kv_client status` line.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace distkit_test {

/// A loopback TCP port that was free a moment ago (bound to port 0, then released).
inline auto free_port() -> std::uint16_t {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  ::close(fd);
  REQUIRE(ok);
  return ntohs(a.sin_port);
}

/// The value of `name=` in a `key=value key=value` status line ("" when absent): the whole
/// key, not a key that ends with `name`.
inline auto status_field(const std::string& status, const std::string& name) -> std::string {
  auto at = status.find(" " + name + "=");
  if (at == std::string::npos) at = status.rfind(name + "=", 0) == 0 ? 0 : std::string::npos;
  if (at == std::string::npos) return {};
  const auto start = status.find('=', at) + 1;
  return status.substr(start, status.find(' ', start) - start);
}

/// One server process: `args[0]` is the binary, its stdout and stderr go to `log`.
struct server_process {
  std::vector<std::string> args;
  std::string log;
  pid_t pid = -1;

  /// Starts it. fork + exec rather than posix_spawn: the child must not inherit the test's
  /// sockets (proxies, clients), or a connection the test closes would stay open in a server.
  void start() {
    REQUIRE(pid < 0);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      ::close_range(3, ~0U, 0);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }

  /// SIGKILL and reap (nothing if it is not running).
  void kill9() {
    if (pid < 0) return;
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
  }

  /// Waits up to `timeout` for the process to exit by itself: its exit status, or -1 (then it
  /// is killed).
  auto wait_exit(std::chrono::milliseconds timeout) -> int {
    const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    REQUIRE(fd >= 0);
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
    ::close(fd);
    if (ready != 1) {
      kill9();
      return -1;
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  /// Everything the process wrote so far.
  [[nodiscard]] auto output() const -> std::string {
    std::ifstream in(log);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  /// Resident memory of the running process, in KiB (VmRSS), 0 if unknown.
  [[nodiscard]] auto rss_kib() const -> std::uint64_t {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
    }
    return 0;
  }
};

}  // namespace distkit_test
