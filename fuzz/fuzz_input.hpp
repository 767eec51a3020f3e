// SPDX-License-Identifier: MIT
// fuzz/fuzz_input.hpp: reads typed values from a fuzzer's input, for targets that build
// near-valid inputs (checksums right, lengths plausible) from the bytes they are given, so the
// fuzzer reaches past the first integrity check instead of spending its time on it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

namespace distkit_fuzz {

class input {
 public:
  input(const std::uint8_t* data, std::size_t size) noexcept : data_(data), size_(size) {}

  /// The next `T`, zero where the input has run out.
  template <class T>
  auto take() noexcept -> T {
    T v{};
    const std::size_t n = std::min(sizeof(T), size_ - pos_);
    if (n > 0) std::memcpy(&v, data_ + pos_, n);
    pos_ += n;
    return v;
  }
  /// Up to `max` bytes, their count taken from the input first.
  auto bytes(std::size_t max) -> std::string {
    const std::size_t n = std::min<std::size_t>({take<std::uint16_t>(), max, size_ - pos_});
    std::string out(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return out;
  }
  /// Everything not read yet.
  auto rest() noexcept -> std::span<const std::byte> {
    auto out = std::as_bytes(std::span(data_ + pos_, size_ - pos_));
    pos_ = size_;
    return out;
  }
  [[nodiscard]] auto empty() const noexcept -> bool { return pos_ >= size_; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

/// Stops the process: under libFuzzer as a crash (a trap, which it reports with the input);
/// when replaying a corpus, with exit status 3.
[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "distkit fuzz: property violated: %s\n", what);
#if defined(DISTKIT_FUZZ_REPLAY)
  std::_Exit(3);
#else
  __builtin_trap();
#endif
}

}  // namespace distkit_fuzz
