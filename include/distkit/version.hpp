// SPDX-License-Identifier: MIT
// distkit/version.hpp: the library version, written once (CMake reads it from here).
#pragma once

#define DISTKIT_VERSION_MAJOR 0
#define DISTKIT_VERSION_MINOR 1
#define DISTKIT_VERSION_PATCH 0

/// The version as one integer, `major * 10000 + minor * 100 + patch`.
#define DISTKIT_VERSION (DISTKIT_VERSION_MAJOR * 10000 + DISTKIT_VERSION_MINOR * 100 + DISTKIT_VERSION_PATCH)

namespace distkit::inline v0 {
/// @brief The library version as `{major, minor, patch}`.
struct version_info {
  int major;
  int minor;
  int patch;
};
inline constexpr version_info version{DISTKIT_VERSION_MAJOR, DISTKIT_VERSION_MINOR, DISTKIT_VERSION_PATCH};
}  // namespace distkit::inline v0
