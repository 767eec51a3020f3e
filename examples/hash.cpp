// SPDX-License-Identifier: MIT
// examples/hash.cpp: the four hash policies on the same keys, and how evenly they spread them.
#include <distkit/hash.hpp>
#include <distkit/md5.hpp>

#include <array>
#include <cstdint>
#include <cstdio>
#include <string>

namespace {

// Hashes 100,000 keys into 16 buckets and reports the fullest bucket against the mean: a good
// 64-bit hash keeps the ratio close to 1 even when only the low bits are used.
template <class Hash>
void spread(const char* name) {
  std::array<unsigned, 16> buckets{};
  const Hash hash;
  for (int i = 0; i < 100'000; ++i) ++buckets[hash("user:" + std::to_string(i)) & 15U];
  unsigned peak = 0;
  for (unsigned b : buckets) peak = b > peak ? b : peak;
  std::printf("  %-6s %016llx  peak/mean over 16 buckets: %.3f\n", name,
              static_cast<unsigned long long>(hash(std::string("distkit"))), peak / (100'000.0 / 16));
}

}  // namespace

auto main() -> int {
  std::puts("hash(\"distkit\") and low-bit spread of 100k keys:");
  spread<distkit::xxh3_hash>("xxh3");
  spread<distkit::xxh64_hash>("xxh64");
  spread<distkit::fnv1a_hash>("fnv1a");
  spread<distkit::md5_hash>("md5");
  return 0;
}
