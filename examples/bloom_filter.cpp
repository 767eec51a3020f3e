// SPDX-License-Identifier: MIT
// examples/bloom_filter.cpp: a crawler's "seen URLs" filter. Builds a filter for a million URLs
// at 1%, measures its false-positive rate on URLs it never saw, saves it to a file, loads it
// back, and shows that a damaged file is refused.
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "distkit/bloom_filter.hpp"

namespace {

auto url(std::uint64_t i) -> std::string {
  return "https://example.com/articles/" + std::to_string(i * 7919 % 1'000'003) + "/page-" + std::to_string(i);
}

}  // namespace

int main() try {
  constexpr std::uint64_t n = 1'000'000;
  constexpr double target = 0.01;
  distkit::bloom_filter<std::string> seen(n, target);  // split-block layout, XXH3
  std::printf("filter for %llu URLs at %.2f%%: %llu bits (%.2f bits/URL), k = %u, %.2f MiB\n",
              static_cast<unsigned long long>(n), target * 100, static_cast<unsigned long long>(seen.bit_count()),
              static_cast<double>(seen.bit_count()) / static_cast<double>(n), seen.hash_count(),
              static_cast<double>(seen.memory_bytes()) / 1048576.0);

  std::vector<std::string> batch;
  batch.reserve(4096);
  for (std::uint64_t i = 0; i < n; ++i) {
    batch.push_back(url(i));
    if (batch.size() == batch.capacity() || i + 1 == n) {
      seen.insert_many(batch);  // hashes and prefetches ahead of the inserts
      batch.clear();
    }
  }

  std::uint64_t missed = 0;
  for (std::uint64_t i = 0; i < n; i += 97) missed += seen.contains(url(i)) ? 0 : 1;
  constexpr std::uint64_t probes = 1'000'000;
  std::uint64_t false_positives = 0;
  for (std::uint64_t i = 0; i < probes; ++i) false_positives += seen.contains(url(n + i)) ? 1 : 0;
  const double measured = static_cast<double>(false_positives) / probes;
  std::printf("false negatives among inserted URLs: %llu (always 0)\n", static_cast<unsigned long long>(missed));
  std::printf("false-positive rate on %llu new URLs: %.4f%% (target %.2f%%, model %.4f%%, from bits %.4f%%)\n",
              static_cast<unsigned long long>(probes), measured * 100, target * 100,
              seen.model_false_positive_rate(n) * 100, seen.estimated_false_positive_rate() * 100);
  std::printf("estimated number of URLs from the bits set: %.0f\n", seen.approximate_count());

  const auto path = std::filesystem::temp_directory_path() / "distkit_bloom_filter_example.bin";
  {
    const auto bytes = seen.to_bytes();
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  std::ifstream in(path, std::ios::binary);
  std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(raw.data()), raw.size());
  const auto reloaded = distkit::bloom_filter<std::string>::from_bytes(bytes);
  std::printf("saved %zu bytes to %s and reloaded: %s, contains(url(42)) = %s\n", raw.size(), path.c_str(),
              reloaded == seen ? "identical" : "DIFFERENT", reloaded.contains(url(42)) ? "true" : "false");

  raw[raw.size() / 2] ^= 0x10;  // one flipped bit in the middle of the bitset
  try {
    (void)distkit::bloom_filter<std::string>::from_bytes(bytes);
    std::printf("a damaged file was accepted (this is a bug)\n");
    return 1;
  } catch (const distkit::bloom_filter_format_error& e) {
    std::printf("a damaged copy is refused: %s\n", e.what());
  }
  std::filesystem::remove(path);
  return reloaded == seen && missed == 0 ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bloom-filter example: %s\n", e.what());
  return 1;
}
