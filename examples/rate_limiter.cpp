// SPDX-License-Identifier: MIT
// examples/rate_limiter.cpp: 1,000 simulated clients, some steady and some bursty, against a
// limit of 10 requests per second each, under every algorithm; then the HTTP answer to one
// refused request. Time is simulated (manual_clock), so the run is instant and repeatable.
#include <distkit/rate_limiter.hpp>
#include <exception>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

struct request {
  std::int64_t at_ns;
  std::uint32_t client;
};

// Steady clients send ~6 requests/s at random; bursty ones sleep, then fire 25 requests in
// 50 ms, often right across a second boundary (where fixed windows are weakest).
auto make_traffic(std::uint32_t clients, std::int64_t seconds) -> std::vector<request> {
  std::mt19937_64 rng(42);
  std::vector<request> traffic;
  const std::int64_t end = seconds * 1'000'000'000;
  for (std::uint32_t c = 0; c < clients; ++c) {
    if (c % 4 != 0) {
      std::exponential_distribution<double> gap(6.0 / 1e9);
      for (double t = gap(rng); t < static_cast<double>(end); t += gap(rng)) {
        traffic.push_back({static_cast<std::int64_t>(t), c});
      }
    } else {
      for (std::int64_t s = 1; s < seconds; s += 3) {
        const std::int64_t burst_start = s * 1'000'000'000 - 25'000'000;  // 25 ms before a boundary
        for (int i = 0; i < 25; ++i) traffic.push_back({burst_start + std::int64_t{i} * 2'000'000, c});
      }
    }
  }
  std::sort(traffic.begin(), traffic.end(), [](const request& a, const request& b) { return a.at_ns < b.at_ns; });
  return traffic;
}

template <class Algorithm>
auto run(const char* name, const std::vector<request>& traffic, std::uint32_t clients,
         const distkit::rate_limit& policy) -> distkit::decision {
  distkit::manual_clock clock;
  distkit::rate_limiter<Algorithm, distkit::manual_clock> limiter{policy, clock};
  std::vector<std::vector<std::int64_t>> admitted(clients);
  std::uint64_t allowed = 0;
  std::uint64_t denied = 0;
  distkit::decision first_refusal;
  for (const request& r : traffic) {
    clock.set(distkit::manual_clock::time_point(std::chrono::nanoseconds(r.at_ns)));
    const std::string key = "client-" + std::to_string(r.client);
    const distkit::decision d = limiter.try_acquire(key);
    if (d.allowed) {
      ++allowed;
      admitted[r.client].push_back(r.at_ns);
    } else {
      if (denied == 0) first_refusal = d;
      ++denied;
    }
  }
  // The most any client got through in any sliding 1 s window.
  std::size_t worst = 0;
  for (const auto& times : admitted) {
    std::size_t first = 0;
    for (std::size_t i = 0; i < times.size(); ++i) {
      while (times[first] <= times[i] - policy.window.count()) ++first;
      worst = std::max(worst, i - first + 1);
    }
  }
  const auto st = limiter.stats();
  std::printf("%-24s allowed %7llu  denied %7llu  max in any 1 s window %3zu  keys held %5zu\n", name,
              static_cast<unsigned long long>(allowed), static_cast<unsigned long long>(denied), worst, st.keys);
  return first_refusal;
}

}  // namespace

int main() try {
  constexpr std::uint32_t clients = 1000;
  const distkit::rate_limit policy{10, 1s};
  const auto traffic = make_traffic(clients, 30);
  std::printf("%zu requests from %u clients over 30 s; limit %llu per second per client\n\n", traffic.size(), clients,
              static_cast<unsigned long long>(policy.limit));
  (void)run<distkit::sliding_window_log>("sliding_window_log", traffic, clients, policy);
  (void)run<distkit::sliding_window_counter>("sliding_window_counter", traffic, clients, policy);
  const distkit::decision refused = run<distkit::gcra>("gcra", traffic, clients, policy);
  (void)run<distkit::fixed_window>("fixed_window", traffic, clients, policy);

  const auto h = distkit::format_headers(refused, policy, "per-client");
  std::printf("\nHTTP answer to the first request gcra refused:\n");
  std::printf("HTTP/1.1 %d Too Many Requests\n", h.status);
  std::printf("Retry-After: %s\n", h.retry_after.c_str());
  std::printf("RateLimit-Policy: %s\n", h.policy.c_str());
  std::printf("RateLimit: %s\n", h.ratelimit.c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "rate-limiter example: %s\n", e.what());
  return 1;
}
