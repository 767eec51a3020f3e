// SPDX-License-Identifier: MIT
// distkit/detail/error.hpp: cold throw helpers and the internal assertion macro.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

#if defined(__GNUC__) || defined(__clang__)
#define DISTKIT_COLD __attribute__((cold, noinline))
#define DISTKIT_LIKELY(x) __builtin_expect(!!(x), 1)
#define DISTKIT_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define DISTKIT_ALWAYS_INLINE __attribute__((always_inline))
#else
#define DISTKIT_COLD
#define DISTKIT_LIKELY(x) (x)
#define DISTKIT_UNLIKELY(x) (x)
#define DISTKIT_ALWAYS_INLINE
#endif

// DISTKIT_ASSERT checks internal invariants in debug and sanitizer builds; it
// compiles to nothing when NDEBUG is set unless DISTKIT_ENABLE_ASSERTS is.
#if !defined(NDEBUG) || defined(DISTKIT_ENABLE_ASSERTS)
#define DISTKIT_ASSERT(cond) \
  (DISTKIT_LIKELY(cond) ? static_cast<void>(0) : ::distkit::detail::assertion_failed(#cond, __FILE__, __LINE__))
#else
#define DISTKIT_ASSERT(cond) static_cast<void>(0)
#endif

namespace distkit::inline v0::detail {

[[noreturn]] DISTKIT_COLD inline void assertion_failed(const char* expr, const char* file, int line) noexcept {
  std::fprintf(stderr, "distkit: assertion failed: %s (%s:%d)\n", expr, file, line);
  std::abort();
}

template <class T>
auto describe_value(const T& value) -> std::string {
  if constexpr (std::is_same_v<T, bool>) {
    return value ? "true" : "false";
  } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    return "\"" + std::string(std::string_view(value)) + "\"";
  } else {
    std::ostringstream out;
    out << +value;  // unary plus prints small integer types as numbers
    return out.str();
  }
}

[[noreturn]] DISTKIT_COLD inline void throw_invalid_argument_message(const std::string& message) {
  throw std::invalid_argument(message);
}

/// Throws `std::invalid_argument` reading
/// `distkit::<component>: <parameter> <rule>, got <value>`.
template <class T>
[[noreturn]] DISTKIT_COLD void throw_invalid_argument(std::string_view component, std::string_view parameter,
                                                      std::string_view rule, const T& value) {
  std::string message = "distkit::";
  message.append(component).append(": ").append(parameter).append(" ").append(rule);
  message.append(", got ").append(describe_value(value));
  throw_invalid_argument_message(message);
}

/// Throws `std::invalid_argument` reading `distkit::<component>: <parameter> <rule>`
/// (for rules about several values at once, where no single value is "the" culprit).
[[noreturn]] DISTKIT_COLD inline void throw_invalid_argument(std::string_view component, std::string_view parameter,
                                                             std::string_view rule) {
  std::string message = "distkit::";
  message.append(component).append(": ").append(parameter).append(" ").append(rule);
  throw_invalid_argument_message(message);
}

/// Throws `std::out_of_range` reading `distkit::<component>: <parameter> <value> is out of range
/// [0, <size>)`.
[[noreturn]] DISTKIT_COLD inline void throw_out_of_range(std::string_view component, std::string_view parameter,
                                                         std::size_t value, std::size_t size) {
  std::string message = "distkit::";
  message.append(component).append(": ").append(parameter).append(" ").append(std::to_string(value));
  message.append(" is out of range [0, ").append(std::to_string(size)).append(")");
  throw std::out_of_range(message);
}

/// Throws `std::logic_error` reading `distkit::<component>: <what>` (a call made in a state
/// that forbids it, such as submitting to a pool that was shut down).
[[noreturn]] DISTKIT_COLD inline void throw_logic_error(std::string_view component, std::string_view what) {
  std::string message = "distkit::";
  message.append(component).append(": ").append(what);
  throw std::logic_error(message);
}

}  // namespace distkit::inline v0::detail
