// SPDX-License-Identifier: MIT
// docs/examples/policies.cpp: plugging one's own policy into distkit's primitives.
#include <distkit/bloom_filter.hpp>
#include <distkit/clock.hpp>
#include <distkit/hash.hpp>
#include <distkit/hash_ring.hpp>
#include <distkit/rate_limiter.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

// A hash policy is any copyable function object from a key to 64 bits. This one is FNV-1a
// with a final avalanche step, written out to show how little a policy needs.
struct my_hash {
  auto operator()(std::string_view key) const noexcept -> std::uint64_t {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (const char c : key) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
    h ^= h >> 33U;
    h *= 0xff51afd7ed558ccdULL;
    return h ^ (h >> 33U);
  }
};
static_assert(distkit::hasher<my_hash, std::string>);  // checked where it is plugged in, too

auto main() -> int {
  distkit::hash_ring<std::string, my_hash> ring;
  for (const char* node : {"cache-a", "cache-b", "cache-c"}) ring.add(node);
  for (const char* key : {"user:1", "user:2", "user:3", "user:4"}) {
    std::printf("%s -> %s\n", key, ring.node_for(key).c_str());
  }

  distkit::bloom_filter<std::string, my_hash> seen{1'000, 0.01};
  seen.insert("user:1");
  std::printf("bloom: user:1 %s, user:9 %s\n", seen.contains("user:1") ? "maybe" : "no",
              seen.contains("user:9") ? "maybe" : "no");

  // The clock is a policy too: a manual_clock makes the limiter's time exact and repeatable.
  distkit::manual_clock clock;
  distkit::rate_limiter<distkit::gcra, distkit::manual_clock> limiter{{.limit = 2, .window = std::chrono::seconds(10)},
                                                                      clock};
  for (int i = 0; i < 3; ++i) {
    const distkit::decision d = limiter.try_acquire("client");
    std::printf("t=%2llds request %d: %s\n",
                static_cast<long long>(
                    std::chrono::duration_cast<std::chrono::seconds>(clock.now().time_since_epoch()).count()),
                i, d ? "allowed" : "refused");
  }
  clock.advance(std::chrono::seconds(5));
  std::printf("t= 5s request 3: %s\n", limiter.try_acquire("client") ? "allowed" : "refused");
}
