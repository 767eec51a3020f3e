// SPDX-License-Identifier: MIT
// Uses the installed package: the core (xxh3, manual_clock) and the openssl component (md5).
#include <distkit/clock.hpp>
#include <distkit/hash.hpp>
#include <distkit/md5.hpp>

#include <chrono>
#include <cstdio>
#include <string>

auto main() -> int {
  const std::string key = "consumer";
  distkit::manual_clock clock;
  clock.advance(std::chrono::seconds(1));
  const bool ok = distkit::xxh3_hash{}(key) != distkit::md5_hash{}(key) && clock.now().time_since_epoch().count() > 0 &&
                  distkit::md5_hash::bytes("", 0) == 0x04b2008fd98c1dd4ULL;  // MD5("") = d41d8cd9 8f00b204 ...
  std::puts(ok ? "consumer ok" : "consumer FAILED");
  return ok ? 0 : 1;
}
