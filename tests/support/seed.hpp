// SPDX-License-Identifier: MIT
// tests/support/seed.hpp: the seed of a randomised test, printed and replayable.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>

namespace distkit_test {

/// The seed for a randomised test: `DISTKIT_TEST_SEED` from the environment when set (to replay
/// a failure), otherwise a fresh random one. It is printed either way, so every run can be
/// replayed with `DISTKIT_TEST_SEED=<seed> <test binary> "<test name>"`.
inline auto test_seed(const std::string& test_name) -> std::uint64_t {
  std::uint64_t seed = 0;
  if (const char* env = std::getenv("DISTKIT_TEST_SEED"); env != nullptr && *env != '\0') {
    seed = std::strtoull(env, nullptr, 0);
  } else {
    std::random_device rd;
    seed = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  }
  std::cout << "[seed] " << test_name << ": " << seed << " (replay with DISTKIT_TEST_SEED=" << seed << ")\n";
  return seed;
}

}  // namespace distkit_test
