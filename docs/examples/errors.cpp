// SPDX-License-Identifier: MIT
// docs/examples/errors.cpp: distkit's three error channels.
#include <distkit/bloom_filter.hpp>
#include <distkit/errors.hpp>
#include <distkit/worker_pool.hpp>

#include <cstddef>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

auto main() -> int {
  // 1. Invalid configuration: std::invalid_argument from the constructor, naming the parameter.
  try {
    const distkit::bloom_filter<std::string> bad{1'000, 1.5};
  } catch (const std::invalid_argument& e) {
    std::printf("configuration: %s\n", e.what());
  }

  // 2. Corrupt input: checked by length and CRC-32C, refused with a corrupt_data_error.
  distkit::bloom_filter<std::string> filter{1'000, 0.01};
  filter.insert("user:1");
  std::vector<std::byte> bytes = filter.to_bytes();
  bytes[bytes.size() / 2] ^= std::byte{0x01};  // one flipped bit in transit
  try {
    (void)distkit::bloom_filter<std::string>::from_bytes(bytes);
  } catch (const distkit::corrupt_data_error& e) {
    std::printf("corrupt input refused: %s\n", e.what());
  }

  // 3. Errors of user code come back where the user joins: here, through the future.
  distkit::worker_pool pool{distkit::worker_pool_options{.threads = 1}};
  auto result = pool.submit([]() -> int { throw std::runtime_error("backend unavailable"); });
  try {
    (void)result.get();
  } catch (const std::runtime_error& e) {
    std::printf("task error at the join point: %s\n", e.what());
  }
}
