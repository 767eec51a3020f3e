// SPDX-License-Identifier: MIT
// What the @code examples of the public headers leave to the reader: the application's own
// functions (send a request, answer 429, read a line, ...). scripts/doc_examples.py includes
// this file after the header in every generated file, so an example may call these names as
// they stand; everything else an example uses it must declare itself. Compile-only stand-ins.
#pragma once

#include <cassert>
#include <chrono>
#include <cstddef>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace distkit_doc_examples {

/// Sends a request or a message somewhere; true when it went well.
template <class... Args>
auto send(Args&&...) -> bool {
  return true;
}

/// Answers a client with HTTP 429 Too Many Requests (and a Retry-After).
template <class... Args>
void reply_429(Args&&...) {}

/// Handles something received.
template <class... Args>
void handle(Args&&...) {}

/// A pipeline's source, parser and writer: read a line (empty at the end), parse it, write the result.
inline auto read_line = []() -> std::optional<std::string> { return std::nullopt; };
inline auto parse = [](const std::string& line) -> std::size_t { return line.size(); };
inline auto write = [](const auto&) {};

}  // namespace distkit_doc_examples
