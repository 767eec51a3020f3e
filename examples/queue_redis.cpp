// SPDX-License-Identifier: MIT
// examples/queue_redis.cpp: a work queue shared by two processes on Redis Streams. A consumer
// process takes two jobs and dies (SIGKILL) mid-message; the other process completes every job,
// the dead consumer's two after their lease ran out (attempt 2).
//
// Starts its own redis-server on a free loopback port; without redis-server it says so and
// exits 0 (apt-get install redis-server).
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "distkit/redis/work_queue_store.hpp"

namespace {

using namespace std::chrono_literals;
using queue = distkit::work_queue<distkit::redis_streams_store>;

auto on_path(const std::string& program) -> bool {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    dir.append("/").append(program);
    if (::access(dir.c_str(), X_OK) == 0) return true;
  }
  return false;
}

auto free_port() -> int {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw std::runtime_error("cannot bind a loopback port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

auto start_redis(int port) -> pid_t {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    const std::string p = std::to_string(port);
    ::execlp("redis-server", "redis-server", "--port", p.c_str(), "--bind", "127.0.0.1", "--save", "", "--appendonly",
             "no", "--logfile", "/dev/null", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

auto run() -> int {
  if (!on_path("redis-server")) {
    std::cout << "queue_redis: skipped: redis-server is not installed (apt-get install redis-server)\n";
    return 0;
  }
  const int port = free_port();
  const pid_t redis = start_redis(port);
  distkit::redis_queue_options o;
  o.port = port;
  o.queue = "thumbnails";
  const distkit::work_queue_options opts{.lease = 300ms, .max_deliver = 5};
  queue q(opts, {}, std::in_place, o);
  for (int attempt = 0;; ++attempt) {  // wait (bounded) for the server to accept connections
    try {
      q.add_group("resizers");
      break;
    } catch (const distkit::redis_queue_error&) {
      if (attempt == 100) {
        std::cerr << "queue_redis: redis-server did not start\n";
        ::kill(redis, SIGKILL);
        return 1;
      }
      std::this_thread::sleep_for(50ms);
    }
  }
  for (int i = 1; i <= 6; ++i)
    (void)q.publish("img-" + std::to_string(i) + ".png", {.id = "upload-" + std::to_string(i)});
  std::cout << "published 6 jobs\n" << std::flush;  // before fork: the child must not print it again

  // Another process takes two jobs and dies before acking them.
  const pid_t crasher = ::fork();
  if (crasher == 0) {
    queue mine(opts, {}, std::in_place, o);
    for (const auto& d : mine.consume("resizers", "crasher", 2)) {
      std::cout << "  crasher took " << d.payload << " (attempt " << d.attempt << ") and dies\n" << std::flush;
    }
    ::raise(SIGKILL);
  }
  int status = 0;
  ::waitpid(crasher, &status, 0);

  // This process completes everything; the two lost jobs come back once their lease runs out.
  int done = 0;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (done < 6 && std::chrono::steady_clock::now() < deadline) {
    for (const auto& d : q.consume("resizers", "worker", 4)) {
      if (q.ack(d) == distkit::settle_result::ok) {
        ++done;
        std::cout << "  worker completed " << d.payload << " (attempt " << d.attempt << ")\n";
      }
    }
    std::this_thread::sleep_for(50ms);
  }
  std::cout << "completed " << done << " of 6, pending " << q.pending("resizers") << "\n";
  ::kill(redis, SIGKILL);
  ::waitpid(redis, &status, 0);
  return done == 6 ? 0 : 1;
}

}  // namespace

auto main() -> int {
  try {
    return run();
  } catch (const std::exception& e) {
    std::cerr << "queue_redis: " << e.what() << "\n";
    return 1;
  }
}
