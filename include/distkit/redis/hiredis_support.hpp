// SPDX-License-Identifier: MIT
// distkit/redis/hiredis_support.hpp: what the Redis stores share around hiredis: owning pointers
// for replies and connections, the SIGPIPE guard around socket writes, and timeouts as timeval.
#pragma once

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>

#include <chrono>
#include <ctime>
#include <memory>

namespace distkit::inline v0::detail::hiredis {

/// Blocks SIGPIPE on this thread while hiredis writes to a socket whose peer may be gone, then
/// discards a SIGPIPE raised meanwhile: a dead server must not kill the process.
class sigpipe_guard {
 public:
  sigpipe_guard() noexcept {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  sigpipe_guard(const sigpipe_guard&) = delete;
  auto operator=(const sigpipe_guard&) -> sigpipe_guard& = delete;
  ~sigpipe_guard() {
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        const timespec zero{0, 0};
        sigtimedwait(&pipe_, nullptr, &zero);
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t pipe_{};
  sigset_t old_{};
  bool was_pending_ = false;
};

struct reply_free {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
/// Owns a hiredis reply.
using reply_ptr = std::unique_ptr<redisReply, reply_free>;

struct context_free {
  void operator()(redisContext* c) const noexcept { redisFree(c); }
};
/// Owns a hiredis connection.
using context_ptr = std::unique_ptr<redisContext, context_free>;

/// `d` as the timeval hiredis takes for its connect and command timeouts.
[[nodiscard]] inline auto to_timeval(std::chrono::milliseconds d) noexcept -> timeval {
  timeval tv{};
  tv.tv_sec = static_cast<decltype(tv.tv_sec)>(d.count() / 1000);
  tv.tv_usec = static_cast<decltype(tv.tv_usec)>((d.count() % 1000) * 1000);
  return tv;
}

}  // namespace distkit::inline v0::detail::hiredis
