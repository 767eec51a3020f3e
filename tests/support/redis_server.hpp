// SPDX-License-Identifier: MIT
// tests/support/redis_server.hpp: a throwaway redis-server child process on a free loopback port.
//
// Started with no persistence (`--save "" --appendonly no`), or with an append-only file synced
// on every write when given a directory; ready once it logs that it accepts
// connections (read from its stdout with a bounded poll, a condition wait) and answers PING.
// Killed (SIGKILL) and reaped by the destructor or `kill()`. Throws when it cannot be started:
// a test that needs Redis fails, it never skips.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <utility>

namespace distkit_test {

/// A loopback TCP port that was free a moment ago (bound to port 0, then released).
inline auto free_loopback_port() -> int {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot bind a loopback port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// A listening loopback socket that never accepts or answers: connections complete (the
/// kernel's backlog) but every command hangs until the client's timeout.
class silent_server {
 public:
  silent_server() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("cannot listen on loopback");
    }
    port_ = ntohs(addr.sin_port);
  }
  silent_server(const silent_server&) = delete;
  auto operator=(const silent_server&) -> silent_server& = delete;
  ~silent_server() { ::close(fd_); }
  [[nodiscard]] auto port() const noexcept -> int { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

class redis_server {
 public:
  redis_server() {
    std::string last_log;
    for (int attempt = 0; attempt < 5; ++attempt) {  // a port can be taken between probe and bind
      port_ = free_loopback_port();
      if (start(last_log)) return;
    }
    throw std::runtime_error("redis-server did not start: " + last_log);
  }
  /// A server on a given port (to restart one where a client expects it).
  explicit redis_server(int port) : port_(port) {
    std::string log;
    if (!start(log))
      throw std::runtime_error("redis-server did not start on port " + std::to_string(port) + ": " + log);
  }
  /// A durable server on a given port: AOF on, fsync on every write, files in `dir` (a restart
  /// with the same port and dir reloads what was acknowledged).
  redis_server(int port, std::string dir) : port_(port), dir_(std::move(dir)) {
    std::string log;
    if (!start(log))
      throw std::runtime_error("redis-server did not start on port " + std::to_string(port) + ": " + log);
  }
  redis_server(const redis_server&) = delete;
  auto operator=(const redis_server&) -> redis_server& = delete;
  ~redis_server() { kill(); }

  [[nodiscard]] auto port() const noexcept -> int { return port_; }
  [[nodiscard]] auto running() const noexcept -> bool { return pid_ > 0; }

  /// SIGKILL, then reap: afterwards the port refuses connections.
  void kill() noexcept {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  auto start(std::string& log) -> bool {
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe() failed");
    const std::string port = std::to_string(port_);
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork() failed");
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test
      ::dup2(out[1], STDOUT_FILENO);
      ::dup2(out[1], STDERR_FILENO);
      ::close(out[0]);
      ::close(out[1]);
      if (dir_.empty()) {
        ::execlp("redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--daemonize", "no", "--logfile", "", "--dir", "/tmp", "--loglevel", "notice",
                 static_cast<char*>(nullptr));
      } else {
        ::execlp("redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no", "--logfile", "", "--dir",
                 dir_.c_str(), "--loglevel", "notice", static_cast<char*>(nullptr));
      }
      ::_exit(127);
    }
    ::close(out[1]);
    pid_ = pid;
    // Wait (bounded) for the server to say it is ready; EOF means it exited.
    log.clear();
    bool ready = false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!ready) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) break;
      pollfd p{out[0], POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) break;
      char buf[4096];
      const ssize_t n = ::read(out[0], buf, sizeof(buf));
      if (n <= 0) break;
      log.append(buf, static_cast<std::size_t>(n));
      ready = log.find("Ready to accept connections") != std::string::npos;
    }
    // Redis ignores SIGPIPE, so closing our end only silences its later log lines.
    ::close(out[0]);
    if (!ready || !answers_ping()) {
      kill();
      if (log.empty()) log = "no output (is the redis-server package installed?)";
      return false;
    }
    return true;
  }

  [[nodiscard]] auto answers_ping() const -> bool {
    redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, timeval{5, 0});
    bool ok = false;
    if (c != nullptr && c->err == 0) {
      auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
      ok = r != nullptr && r->type == REDIS_REPLY_STATUS && std::string(r->str, r->len) == "PONG";
      if (r != nullptr) freeReplyObject(r);
    }
    if (c != nullptr) redisFree(c);
    return ok;
  }

  pid_t pid_ = -1;
  int port_ = 0;
  std::string dir_;
};

}  // namespace distkit_test
