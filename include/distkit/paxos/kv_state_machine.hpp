// SPDX-License-Identifier: MIT
// distkit/paxos/kv_state_machine.hpp: a key-value state machine (get/put/append/cas) for Paxos.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <string_view>

#include "distkit/paxos/concepts.hpp"
#include "distkit/paxos/message.hpp"

namespace distkit::inline v0::paxos {

/// The operations of `kv_state_machine`. Values are part of the command encoding.
enum class kv_op : std::uint8_t { get = 1, put = 2, append = 3, cas = 4 };

/// @brief A replicated string map: `get`, `put`, `append` and compare-and-set.
///
/// Commands are built with `encode_get/put/append/cas`; results: `get` returns the value (empty
/// for a missing key), `put`/`append` return "", `cas` returns "1" when it swapped, else "0".
/// A malformed command returns "!bad" and changes nothing (commands come from clients).
/// With a value bound, a `put`, `append` or `cas` that would leave a value longer than
/// `max_value_bytes` returns "!value_too_large: N bytes, more than max_value_bytes (M)" and
/// changes nothing, so every value stays small enough for a reply that carries it. Every
/// replica of a group must use the same bound (it decides what the log's commands do).
///
/// **Thread safety:** none (driven by one replica).
class kv_state_machine {
 public:
  /// A map whose values are unbounded.
  kv_state_machine() = default;
  /// A map whose values never exceed `max_value_bytes`.
  explicit kv_state_machine(std::size_t max_value_bytes) : max_value_(max_value_bytes) {}

  /// True for a `get` (it changes nothing): a replica may answer its retry by reading again.
  [[nodiscard]] static auto is_read_only(std::string_view command) noexcept -> bool {
    return !command.empty() && static_cast<kv_op>(command.front()) == kv_op::get;
  }

  /// The largest value this map keeps.
  [[nodiscard]] auto max_value_bytes() const noexcept -> std::size_t { return max_value_; }

  [[nodiscard]] static auto encode_get(std::string_view key) -> std::string { return encode(kv_op::get, key, {}, {}); }
  [[nodiscard]] static auto encode_put(std::string_view key, std::string_view value) -> std::string {
    return encode(kv_op::put, key, value, {});
  }
  [[nodiscard]] static auto encode_append(std::string_view key, std::string_view value) -> std::string {
    return encode(kv_op::append, key, value, {});
  }
  [[nodiscard]] static auto encode_cas(std::string_view key, std::string_view expected, std::string_view desired)
      -> std::string {
    return encode(kv_op::cas, key, expected, desired);
  }

  auto apply(std::string_view command) -> std::string {
    try {
      internal::reader r(command);
      auto op = static_cast<kv_op>(r.u8());
      auto key = r.bytes_view();
      auto a = r.bytes_view();
      auto b = r.bytes_view();
      r.expect_end();
      switch (op) {
        case kv_op::get: {
          auto it = data_.find(key);
          return it == data_.end() ? std::string{} : it->second;
        }
        case kv_op::put:
          if (a.size() > max_value_) return too_large(a.size());
          slot(key).assign(a);
          return {};
        case kv_op::append: {
          auto it = data_.find(key);
          const std::size_t now = it == data_.end() ? 0 : it->second.size();
          if (a.size() > max_value_ || now > max_value_ - a.size()) return too_large(now + a.size());
          slot(key).append(a);
          return {};
        }
        case kv_op::cas: {
          auto& v = slot(key);
          if (v != a) return "0";
          if (b.size() > max_value_) return too_large(b.size());
          v.assign(b);
          return "1";
        }
      }
    } catch (const paxos_corrupt_error&) {
    }
    return "!bad";
  }

  [[nodiscard]] auto snapshot() const -> std::string {
    std::string out;
    internal::writer w(out);
    w.u64(data_.size());
    for (const auto& [k, v] : data_) {
      w.bytes(k);
      w.bytes(v);
    }
    return out;
  }

  void restore(std::string_view bytes) {
    internal::reader r(bytes);
    auto n = r.u64();
    if (n > r.remaining() / 8) internal::reader::fail("kv snapshot count");
    std::map<std::string, std::string, std::less<>> data;
    for (std::uint64_t i = 0; i < n; ++i) {
      auto k = r.bytes();
      data[std::move(k)] = r.bytes();
    }
    r.expect_end();
    data_ = std::move(data);
  }

  /// The current value of `key` ("" when absent).
  [[nodiscard]] auto value(std::string_view key) const -> std::string {
    auto it = data_.find(key);
    return it == data_.end() ? std::string{} : it->second;
  }
  [[nodiscard]] auto size() const noexcept -> std::size_t { return data_.size(); }
  friend auto operator==(const kv_state_machine& x, const kv_state_machine& y) -> bool { return x.data_ == y.data_; }

  /// The result prefix of a refused write (the rest of the result says the sizes).
  static constexpr std::string_view value_too_large = "!value_too_large";

 private:
  [[nodiscard]] auto too_large(std::size_t bytes) const -> std::string {
    return std::string(value_too_large) + ": " + std::to_string(bytes) + " bytes, more than max_value_bytes (" +
           std::to_string(max_value_) + ")";
  }

  static auto encode(kv_op op, std::string_view key, std::string_view a, std::string_view b) -> std::string {
    std::string out;
    internal::writer w(out);
    w.u8(static_cast<std::uint8_t>(op));
    w.bytes(key);
    w.bytes(a);
    w.bytes(b);
    return out;
  }
  auto slot(std::string_view key) -> std::string& {
    auto it = data_.find(key);
    if (it == data_.end()) it = data_.emplace(std::string(key), std::string{}).first;
    return it->second;
  }
  std::map<std::string, std::string, std::less<>> data_;
  std::size_t max_value_ = std::numeric_limits<std::size_t>::max();
};

static_assert(state_machine<kv_state_machine>);
static_assert(read_only_aware<kv_state_machine>);

}  // namespace distkit::inline v0::paxos
