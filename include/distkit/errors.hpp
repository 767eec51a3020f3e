// SPDX-License-Identifier: MIT
// distkit/errors.hpp: exception types users catch (corrupt input, refused operations).
#pragma once

#include <stdexcept>
#include <string>

namespace distkit::inline v0 {

/// @brief Thrown when bytes read from outside (a serialized filter, a WAL record, a network
/// frame) fail a length, magic, version or checksum check. Such input is never trusted.
///
/// Invalid *configuration* is reported with `std::invalid_argument` instead; this type is only
/// for data that was corrupted, truncated or written by something incompatible.
class corrupt_data_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace distkit::inline v0
