// SPDX-License-Identifier: MIT
// distkit/detail/bloom_storage.hpp: the Bloom filter's word array (cache-line aligned, huge
// pages for big filters) and the false-positive models its sizing uses.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace distkit::inline v0::detail {

/// Bytes of one cache line: every filter's array starts on one, so no block straddles two.
inline constexpr std::size_t bloom_cache_line = 64;
/// Arrays at least this big are aligned to 2 MiB and offered to the kernel as transparent huge
/// pages: a 100 MB filter then costs one TLB entry per 2 MiB instead of per 4 KiB, which is most
/// of the cost of an out-of-cache lookup.
inline constexpr std::size_t bloom_huge_page = std::size_t{2} << 20;

/// An owning, zero-initialised, over-aligned array of `W` (the filter's bits).
template <class W>
class bloom_words {
 public:
  bloom_words() noexcept = default;
  explicit bloom_words(std::size_t count) : size_(count) {
    if (count == 0) return;
    const std::size_t bytes = count * sizeof(W);
    align_ = bytes >= bloom_huge_page ? bloom_huge_page : bloom_cache_line;
    const std::size_t rounded = (bytes + align_ - 1) / align_ * align_;
    data_ = static_cast<W*>(::operator new(rounded, std::align_val_t{align_}));
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (align_ == bloom_huge_page) (void)::madvise(data_, rounded, MADV_HUGEPAGE);  // a hint; failure is harmless
#endif
    std::memset(data_, 0, bytes);
  }
  bloom_words(const bloom_words& other) : bloom_words(other.size_) {
    if (size_ != 0) std::memcpy(data_, other.data_, size_ * sizeof(W));
  }
  bloom_words(bloom_words&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)),
        align_(std::exchange(other.align_, bloom_cache_line)) {}
  auto operator=(bloom_words other) noexcept -> bloom_words& {
    swap(other);
    return *this;
  }
  ~bloom_words() { release(); }

  void swap(bloom_words& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    std::swap(align_, other.align_);
  }
  [[nodiscard]] auto data() noexcept -> W* { return data_; }
  [[nodiscard]] auto data() const noexcept -> const W* { return data_; }
  [[nodiscard]] auto size() const noexcept -> std::size_t { return size_; }

 private:
  void release() noexcept {
    if (data_ != nullptr) ::operator delete(data_, std::align_val_t{align_});
    data_ = nullptr;
  }
  W* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t align_ = bloom_cache_line;
};

/// `floor(x * n / 2^32)`: maps 32 uniform bits onto [0, n) without a division (Lemire).
[[nodiscard]] inline auto bloom_reduce32(std::uint32_t x, std::uint64_t n) noexcept -> std::uint64_t {
  return (static_cast<std::uint64_t>(x) * n) >> 32;
}

// A GCC/Clang extension; `__extension__` keeps -Wpedantic quiet about it.
__extension__ typedef unsigned __int128 bloom_uint128;

/// `floor(x * n / 2^64)`: maps 64 uniform bits onto [0, n).
[[nodiscard]] inline auto bloom_reduce64(std::uint64_t x, std::uint64_t n) noexcept -> std::uint64_t {
  return static_cast<std::uint64_t>((static_cast<bloom_uint128>(x) * n) >> 64);
}

/// The Poisson distribution of the number of keys that land in one block, over the range of
/// loads that carries all but ~1e-12 of its mass (and that weight), for block-model sums.
struct poisson_weights {
  std::uint64_t first = 0;
  std::vector<double> pmf;
};

[[nodiscard]] inline auto make_poisson_weights(double mean) -> poisson_weights {
  poisson_weights w;
  if (!(mean > 0)) {
    w.pmf.push_back(1.0);
    return w;
  }
  const double spread = 8.0 * std::sqrt(mean) + 12.0;
  const double lo = std::max(0.0, std::floor(mean - spread));
  const double hi = std::ceil(mean + spread);
  w.first = static_cast<std::uint64_t>(lo);
  const double log_mean = std::log(mean);
  w.pmf.reserve(static_cast<std::size_t>(hi - lo) + 1);
  for (double j = lo; j <= hi; j += 1.0) w.pmf.push_back(std::exp(j * log_mean - mean - std::lgamma(j + 1.0)));
  return w;
}

}  // namespace distkit::inline v0::detail
