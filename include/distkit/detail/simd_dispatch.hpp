// SPDX-License-Identifier: MIT
// distkit/detail/simd_dispatch.hpp: which SIMD kernel the block layouts run, chosen once from
// the CPU at run time, so a build without -march uses AVX2 on a CPU that has it.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "distkit/detail/error.hpp"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
/// 1 when kernels for several x86 instruction sets are compiled into every build and one is
/// picked at run time; the AVX2 ones carry `DISTKIT_TARGET_AVX2`.
#define DISTKIT_X86_DISPATCH 1
#define DISTKIT_TARGET_AVX2 __attribute__((target("avx2")))
#else
#define DISTKIT_X86_DISPATCH 0
#define DISTKIT_TARGET_AVX2
#endif

namespace distkit::inline v0 {

/// @brief A kernel of the block Bloom filter layouts.
///
/// `portable` needs nothing beyond the baseline instruction set (SSE2 on x86-64, plain C++
/// elsewhere); `avx2` needs a CPU with AVX2. Both compute the same bits: the choice changes
/// speed, never a filter's contents or answers.
enum class bloom_kernel : std::uint8_t {
  portable = 1,
  avx2 = 2,
};

namespace detail {

/// 0 until the first query chooses; then a `bloom_kernel` value.
inline std::atomic<std::uint8_t> bloom_kernel_choice{0};

[[nodiscard]] inline auto cpu_has_avx2() noexcept -> bool {
#if DISTKIT_X86_DISPATCH
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") != 0;
#else
  return false;
#endif
}

/// The best kernel the CPU runs, unless `DISTKIT_BLOOM_KERNEL=portable` asks for the baseline
/// one (an unknown value, or `avx2` on a CPU without it, leaves the CPU's choice).
[[gnu::cold, gnu::noinline]] inline auto choose_bloom_kernel() noexcept -> std::uint8_t {
  auto kernel = cpu_has_avx2() ? bloom_kernel::avx2 : bloom_kernel::portable;
  if (const char* env = std::getenv("DISTKIT_BLOOM_KERNEL"); env != nullptr && std::string_view(env) == "portable") {
    kernel = bloom_kernel::portable;
  }
  std::uint8_t expected = 0;
  bloom_kernel_choice.compare_exchange_strong(expected, static_cast<std::uint8_t>(kernel), std::memory_order_relaxed);
  return bloom_kernel_choice.load(std::memory_order_relaxed);
}

/// True when the AVX2 kernels run: one relaxed load and a well-predicted branch per call.
[[nodiscard]] inline auto bloom_uses_avx2() noexcept -> bool {
  std::uint8_t kernel = bloom_kernel_choice.load(std::memory_order_relaxed);
  if (kernel == 0) [[unlikely]] {
    kernel = choose_bloom_kernel();
  }
  return kernel == static_cast<std::uint8_t>(bloom_kernel::avx2);
}

}  // namespace detail

/// The kernel the block layouts run in this process (chosen on first use).
[[nodiscard]] inline auto bloom_active_kernel() noexcept -> bloom_kernel {
  return detail::bloom_uses_avx2() ? bloom_kernel::avx2 : bloom_kernel::portable;
}

/// True when this CPU can run `kernel`.
[[nodiscard]] inline auto bloom_kernel_supported(bloom_kernel kernel) noexcept -> bool {
  return kernel == bloom_kernel::portable || (kernel == bloom_kernel::avx2 && detail::cpu_has_avx2());
}

/// @brief Makes the block layouts run `kernel` from now on, in every thread (for tests and
/// benchmarks that compare kernels; a program never needs it). Returns the previous one.
/// @throws std::invalid_argument naming `kernel` when the CPU cannot run it.
/// **Thread safety:** call it while no filter is in use.
inline auto bloom_force_kernel(bloom_kernel kernel) -> bloom_kernel {
  if (!bloom_kernel_supported(kernel)) {
    detail::throw_invalid_argument("bloom_filter", "kernel", "must be one this CPU runs (portable, or avx2 with AVX2)",
                                   static_cast<int>(kernel));
  }
  const bloom_kernel before = bloom_active_kernel();
  detail::bloom_kernel_choice.store(static_cast<std::uint8_t>(kernel), std::memory_order_relaxed);
  return before;
}

}  // namespace distkit::inline v0
