// SPDX-License-Identifier: MIT
// fuzz/bloom_filter.cpp: `bloom_filter::from_bytes` (every layout) and `from_parquet_bitset`
// (distkit/bloom_filter.hpp). With the low bit of the first byte set, the input's CRC-32C
// trailer is recomputed first, so the fuzzer explores the header checks behind the checksum.
// Properties: untrusted bytes give a filter or bloom_filter_format_error (no crash, no
// allocation the input does not pay for); an accepted input is canonical (to_bytes gives it
// back); a loaded filter answers queries and keeps every key inserted into it.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "distkit/bloom_filter.hpp"
#include "fuzz_input.hpp"

namespace {

template <class Layout>
void from_bytes(std::vector<std::byte> bytes, bool fix_crc) {
  using filter = distkit::bloom_filter<std::string, distkit::xxh3_hash, Layout>;
  if (fix_crc && bytes.size() >= filter::trailer_bytes) {
    const std::size_t body = bytes.size() - filter::trailer_bytes;
    distkit::detail::store_le<std::uint32_t>(bytes.data() + body, distkit::detail::crc32c(bytes.data(), body));
  }
  try {
    auto f = filter::from_bytes(bytes);
    if (f.to_bytes() != bytes) distkit_fuzz::fail("an accepted serialized filter is not canonical");
    (void)f.contains("probe");
    f.insert("inserted");
    if (!f.contains("inserted")) distkit_fuzz::fail("a loaded filter lost a key");
  } catch (const distkit::bloom_filter_format_error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool fix_crc = (data[0] & 1U) != 0;
  const auto rest = std::as_bytes(std::span(data + 1, size - 1));
  const std::vector<std::byte> bytes(rest.begin(), rest.end());
  switch ((data[0] >> 1U) % 4) {
    case 0:
      from_bytes<distkit::split_block_layout>(bytes, fix_crc);
      break;
    case 1:
      from_bytes<distkit::blocked_layout>(bytes, fix_crc);
      break;
    case 2:
      from_bytes<distkit::classic_layout>(bytes, fix_crc);
      break;
    default:
      try {
        auto f = distkit::bloom_filter<std::string>::from_parquet_bitset(bytes);
        if (f.to_parquet_bitset() != bytes) distkit_fuzz::fail("a Parquet bitset did not round-trip");
        f.insert("inserted");
        if (!f.contains("inserted")) distkit_fuzz::fail("a loaded filter lost a key");
      } catch (const distkit::bloom_filter_format_error&) {
      }
      break;
  }
  return 0;
}
