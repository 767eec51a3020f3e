// SPDX-License-Identifier: MIT
// Uses distkit through add_subdirectory: the umbrella header alone.
#include <distkit/distkit.hpp>

#include <cstdio>
#include <string_view>

auto main() -> int {
  // XXH64("", 0) is xxHash's published answer for the empty input.
  const bool ok =
      distkit::xxh64_hash::bytes("", 0) == 0xEF46DB3751D8E999ULL && distkit::version.major == DISTKIT_VERSION_MAJOR;
  std::puts(ok ? "consumer ok" : "consumer FAILED");
  return ok ? 0 : 1;
}
