// SPDX-License-Identifier: MIT
// docs/examples/quick_start.cpp: the README's first program; its output is the README's.
#include <distkit/clock.hpp>
#include <distkit/hash.hpp>

#include <chrono>
#include <cstdio>

auto main() -> int {
  distkit::manual_clock clock;  // tests drive time by hand
  clock.advance(std::chrono::seconds(3));
  std::printf(
      "xxh3(\"user:42\") = %016llx at t=%llds\n", static_cast<unsigned long long>(distkit::xxh3_hash{}("user:42")),
      static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(clock.now().time_since_epoch()).count()));
}
