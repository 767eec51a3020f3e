// SPDX-License-Identifier: MIT
// benchmarks/lb_loopback/driver.cpp: closed-loop HTTP load for scripts/bench-lb-haproxy.
// `--proxy HOST:PORT` sends every request through a proxy (HAProxy); `--picker NAME
// --backends HOST:PORT,...` picks each request's backend with a distkit load_balancer and sends
// it there directly. Each of `--clients` threads keeps one keep-alive connection per
// destination and sends its next request as soon as the previous one is answered. Prints one
// line: requests, the share each backend served (its id is the response body), p50 and p99.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "distkit/load_balancer.hpp"

namespace {

using steady = std::chrono::steady_clock;

struct address {
  std::string host;
  std::uint16_t port = 0;
};

auto parse_address(const std::string& s) -> address {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos) throw std::invalid_argument("expected HOST:PORT, got " + s);
  return {s.substr(0, colon), static_cast<std::uint16_t>(std::stoul(s.substr(colon + 1)))};
}

/// One keep-alive HTTP/1.1 connection; `get` returns the body, or nullopt on any error.
class connection {
 public:
  explicit connection(address a) : a_(std::move(a)) {}
  connection(const connection&) = delete;
  auto operator=(const connection&) -> connection& = delete;
  ~connection() { drop(); }

  auto get() -> std::optional<std::string> {
    if (fd_ < 0 && !open()) return std::nullopt;
    static constexpr char request[] = "GET / HTTP/1.1\r\nHost: backend\r\n\r\n";
    if (::send(fd_, request, sizeof(request) - 1, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof(request) - 1)) {
      drop();
      return std::nullopt;
    }
    std::string head;
    while (head.find("\r\n\r\n") == std::string::npos) {
      if (!fill(head)) return std::nullopt;
    }
    const auto end = head.find("\r\n\r\n") + 4;
    std::string body = head.substr(end);
    std::size_t length = 0;
    const auto at = head.find("Content-Length:");
    const auto at_lower = head.find("content-length:");
    const auto pos = at != std::string::npos ? at : at_lower;
    if (pos == std::string::npos || pos > end) {
      drop();
      return std::nullopt;
    }
    length = std::strtoul(head.c_str() + pos + 15, nullptr, 10);
    while (body.size() < length) {
      if (!fill(body)) return std::nullopt;
    }
    body.resize(length);
    return body;
  }

 private:
  auto open() -> bool {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(a_.port);
    ::inet_pton(AF_INET, a_.host.c_str(), &sa.sin_addr);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
      drop();
      return false;
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return true;
  }
  auto fill(std::string& out) -> bool {
    char buf[4096];
    const auto n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) {
      drop();
      return false;
    }
    out.append(buf, static_cast<std::size_t>(n));
    return true;
  }
  void drop() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  address a_;
  int fd_ = -1;
};

struct tally {
  std::vector<double> latencies_ms;
  std::map<std::string, std::uint64_t> by_backend;
  std::uint64_t errors = 0;

  void answered(const std::string& backend, steady::duration took) {
    latencies_ms.push_back(std::chrono::duration<double, std::milli>(took).count());
    ++by_backend[backend];
  }
  void add(const tally& other) {
    latencies_ms.insert(latencies_ms.end(), other.latencies_ms.begin(), other.latencies_ms.end());
    for (const auto& [k, v] : other.by_backend) by_backend[k] += v;
    errors += other.errors;
  }
};

/// Runs `clients` threads until `duration` ends, each calling its own requester (made by
/// `make`, one per thread: it sends one request and records it) in a closed loop; adds every
/// thread's tally to `total`.
template <class MakeRequester>
void run_clients(int clients, std::chrono::seconds duration, tally& total, MakeRequester make) {
  const auto until = steady::now() + duration;
  std::mutex mutex;
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      auto request = make();
      tally mine;
      while (steady::now() < until) request(mine);
      const std::lock_guard lock(mutex);
      total.add(mine);
    });
  }
  for (auto& th : threads) th.join();
}

template <class Picker>
void run_balanced(const std::vector<address>& backends, int clients, std::chrono::seconds duration, tally& t) {
  distkit::load_balancer<std::size_t, Picker, distkit::no_outlier_detection> lb;
  for (std::size_t i = 0; i < backends.size(); ++i) lb.add(i);
  run_clients(clients, duration, t, [&] {
    std::vector<std::unique_ptr<connection>> conns;
    for (const auto& b : backends) conns.push_back(std::make_unique<connection>(b));
    return [&lb, conns = std::move(conns)](tally& mine) {
      auto req = lb.try_pick();
      if (!req) return;
      const auto start = steady::now();
      auto body = conns[req->endpoint()]->get();
      const auto took = steady::now() - start;
      if (!body) {
        ++mine.errors;
        req->failure(took);
        return;
      }
      req->success(took);
      mine.answered(*body, took);
    };
  });
}

void run_proxied(const address& proxy, int clients, std::chrono::seconds duration, tally& t) {
  run_clients(clients, duration, t, [&] {
    return [conn = std::make_unique<connection>(proxy)](tally& mine) {
      const auto start = steady::now();
      auto body = conn->get();
      const auto took = steady::now() - start;
      if (!body) {
        ++mine.errors;
        return;
      }
      mine.answered(*body, took);
    };
  });
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string proxy, picker = "p2c_peak_ewma", backends_arg, slow = "4", label;
    int clients = 32;
    int seconds = 20;
    for (int i = 1; i + 1 < argc; i += 2) {
      const std::string a = argv[i], v = argv[i + 1];
      if (a == "--proxy")
        proxy = v;
      else if (a == "--picker")
        picker = v;
      else if (a == "--backends")
        backends_arg = v;
      else if (a == "--clients")
        clients = std::stoi(v);
      else if (a == "--seconds")
        seconds = std::stoi(v);
      else if (a == "--slow")
        slow = v;
      else if (a == "--label")
        label = v;
      else
        throw std::invalid_argument("unknown argument " + a);
    }
    tally t;
    const std::chrono::seconds duration(seconds);
    if (!proxy.empty()) {
      run_proxied(parse_address(proxy), clients, duration, t);
    } else {
      std::vector<address> backends;
      std::size_t start = 0;
      while (start <= backends_arg.size()) {
        auto end = backends_arg.find(',', start);
        if (end == std::string::npos) end = backends_arg.size();
        if (end > start) backends.push_back(parse_address(backends_arg.substr(start, end - start)));
        start = end + 1;
      }
      if (backends.empty()) throw std::invalid_argument("--backends: at least one");
      if (picker == "round_robin") {
        run_balanced<distkit::round_robin_picker>(backends, clients, duration, t);
      } else if (picker == "p2c_least_request") {
        run_balanced<distkit::p2c_least_request_picker>(backends, clients, duration, t);
      } else if (picker == "p2c_peak_ewma") {
        run_balanced<distkit::p2c_peak_ewma_picker>(backends, clients, duration, t);
      } else {
        throw std::invalid_argument("--picker: round_robin, p2c_least_request or p2c_peak_ewma");
      }
    }
    auto& l = t.latencies_ms;
    if (l.empty()) throw std::runtime_error("no request was answered");
    std::sort(l.begin(), l.end());
    const auto q = [&](double p) { return l[std::min(l.size() - 1, static_cast<std::size_t>(p * l.size()))]; };
    std::uint64_t total = 0;
    for (const auto& [k, v] : t.by_backend) total += v;
    const double slow_share =
        total == 0 ? 0 : 100.0 * static_cast<double>(t.by_backend[slow]) / static_cast<double>(total);
    std::printf("| %s | %llu | %.2f%% | %.1f ms | %.1f ms | %llu |\n", label.c_str(),
                static_cast<unsigned long long>(total), slow_share, q(0.5), q(0.99),
                static_cast<unsigned long long>(t.errors));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lb_loopback: %s\n", e.what());
    return 2;
  }
}
