// SPDX-License-Identifier: MIT
// A user program built with nothing but `pkg-config --cflags --libs distkit`: core headers only.
#include <distkit/bloom_filter.hpp>
#include <distkit/hash_ring.hpp>
#include <distkit/version.hpp>

#include <cstdio>
#include <string>

auto main() -> int {
  distkit::bloom_filter<std::string> seen{1'000, 0.01};
  seen.insert("pkg-config");
  distkit::hash_ring<std::string> ring;
  ring.add("a");
  ring.add("b");
  const bool ok = seen.contains("pkg-config") && !ring.node_for("key").empty() && distkit::version.major == 0;
  std::puts(ok ? "pkg-config consumer ok" : "pkg-config consumer FAILED");
  return ok ? 0 : 1;
}
