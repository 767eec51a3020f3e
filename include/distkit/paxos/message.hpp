// SPDX-License-Identifier: MIT
// distkit/paxos/message.hpp: the messages replicas exchange, and their binary codec.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "distkit/detail/endian.hpp"
#include "distkit/detail/error.hpp"
#include "distkit/paxos/types.hpp"

namespace distkit::inline v0::paxos {

/// Phase 1a: "promise me `ballot`, and report what you accepted at slots >= first_slot".
struct prepare_msg {
  node_id from = 0, to = 0;
  ballot bal;
  slot_t first_slot = 1;
  friend auto operator==(const prepare_msg&, const prepare_msg&) -> bool = default;
};

/// Phase 1b. `ok` false is a refusal that names the acceptor's promised ballot.
/// `chosen_index`: every slot up to it is chosen at the acceptor.
struct promise_msg {
  node_id from = 0, to = 0;
  ballot bal;  ///< the ballot being answered
  bool ok = false;
  ballot promised;  ///< the acceptor's promised ballot
  slot_t chosen_index = 0;
  std::vector<log_entry> accepted;  ///< entries with slot >= first_slot (when ok)
  /// 0: `accepted` is the whole tail. Otherwise the tail was cut to bound the message's bytes:
  /// the candidate asks again (a prepare at the same ballot) from this slot on.
  slot_t resume_from = 0;
  friend auto operator==(const promise_msg&, const promise_msg&) -> bool = default;
};

/// Phase 2a for one slot; carries the leader's commit index so followers learn.
struct accept_msg {
  node_id from = 0, to = 0;
  ballot bal;
  slot_t slot = 0;
  batch value;
  slot_t commit_index = 0;
  friend auto operator==(const accept_msg&, const accept_msg&) -> bool = default;
};

/// Phase 2b. `ok` false is a refusal that names the acceptor's promised ballot.
struct accepted_msg {
  node_id from = 0, to = 0;
  ballot bal;
  slot_t slot = 0;
  bool ok = false;
  ballot promised;
  friend auto operator==(const accepted_msg&, const accepted_msg&) -> bool = default;
};

/// Leader -> followers: "I lead at `bal`; slots up to `commit_index` are chosen".
struct heartbeat_msg {
  node_id from = 0, to = 0;
  ballot bal;
  slot_t commit_index = 0;
  friend auto operator==(const heartbeat_msg&, const heartbeat_msg&) -> bool = default;
};

/// Follower -> leader answer to a heartbeat: its promise and how far it has learned.
struct heartbeat_ack_msg {
  node_id from = 0, to = 0;
  ballot bal;       ///< the heartbeat's ballot
  bool ok = false;  ///< false: the follower promised a higher ballot (`promised`)
  ballot promised;
  slot_t chosen_index = 0;
  friend auto operator==(const heartbeat_ack_msg&, const heartbeat_ack_msg&) -> bool = default;
};

/// Learner: "send me the chosen values from `first_slot` on".
struct catchup_request_msg {
  node_id from = 0, to = 0;
  slot_t first_slot = 1;
  friend auto operator==(const catchup_request_msg&, const catchup_request_msg&) -> bool = default;
};

/// Chosen values for slots first_slot, first_slot+1, ...; the sender's chosen index.
struct catchup_reply_msg {
  node_id from = 0, to = 0;
  slot_t first_slot = 1;
  std::vector<batch> values;
  slot_t chosen_index = 0;
  friend auto operator==(const catchup_reply_msg&, const catchup_reply_msg&) -> bool = default;
};

/// A snapshot for a replica that is behind the sender's compacted log.
struct snapshot_msg {
  node_id from = 0, to = 0;
  snapshot snap;
  friend auto operator==(const snapshot_msg&, const snapshot_msg&) -> bool = default;
};

/// @brief One chunk of a snapshot in transfer. The snapshot travels as its codec bytes
/// (`index`, `checksum`, `data`), `total` bytes with CRC-32C `total_crc`; this chunk holds
/// `bytes` from `offset` on, with CRC-32C `chunk_crc`. An empty chunk at offset 0 announces a
/// snapshot: the receiver answers with the offset it wants (a resumed transfer starts there).
struct snapshot_chunk_msg {
  node_id from = 0, to = 0;
  slot_t index = 0;             ///< last slot the snapshot covers
  std::uint64_t total = 0;      ///< size of the whole encoded snapshot
  std::uint32_t total_crc = 0;  ///< CRC-32C of the whole encoded snapshot
  std::uint64_t offset = 0;     ///< where `bytes` start
  std::uint32_t chunk_crc = 0;  ///< CRC-32C of `bytes`
  std::string bytes;
  friend auto operator==(const snapshot_chunk_msg&, const snapshot_chunk_msg&) -> bool = default;
};

/// Receiver -> sender of a snapshot: "I hold the snapshot at `index` up to `next_offset`; send
/// from there" (`next_offset == total`: installed, stop).
struct snapshot_ack_msg {
  node_id from = 0, to = 0;
  slot_t index = 0;
  std::uint64_t next_offset = 0;
  friend auto operator==(const snapshot_ack_msg&, const snapshot_ack_msg&) -> bool = default;
};

/// Every message of the protocol. Each alternative has `from` and `to`.
using message =
    std::variant<prepare_msg, promise_msg, accept_msg, accepted_msg, heartbeat_msg, heartbeat_ack_msg,
                 catchup_request_msg, catchup_reply_msg, snapshot_msg, snapshot_chunk_msg, snapshot_ack_msg>;

namespace internal {
/// `f(alternative)` for the alternative `m` holds, without `std::visit`'s exception: a valueless
/// message (a copy that failed part-way) gives `node_id{}`, which is no member.
template <std::size_t I = 0, class F>
[[nodiscard]] auto visit_header(const message& m, F f) noexcept -> node_id {
  if constexpr (I + 1 < std::variant_size_v<message>) {
    if (m.index() == I) return f(*std::get_if<I>(&m));
    return visit_header<I + 1>(m, f);
  } else {
    const auto* x = std::get_if<I>(&m);
    return x != nullptr ? f(*x) : node_id{};
  }
}
}  // namespace internal

/// The destination of a message.
[[nodiscard]] inline auto message_to(const message& m) noexcept -> node_id {
  return internal::visit_header(m, [](const auto& x) noexcept { return x.to; });
}
/// The sender of a message.
[[nodiscard]] inline auto message_from(const message& m) noexcept -> node_id {
  return internal::visit_header(m, [](const auto& x) noexcept { return x.from; });
}

namespace internal {

/// Appends little-endian fields to a byte string.
class writer {
 public:
  explicit writer(std::string& out) noexcept : out_(out) {}
  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u32(std::uint32_t v) { put(v); }
  void u64(std::uint64_t v) { put(v); }
  void boolean(bool v) { u8(v ? 1 : 0); }
  void bytes(std::string_view s) {
    length(s.size());
    out_.append(s);
  }
  /// A 32-bit length or count: one that does not fit is refused, never truncated.
  /// @throws std::invalid_argument naming the length.
  void length(std::size_t n) {
    if (n > 0xFFFF'FFFFU) {
      distkit::detail::throw_invalid_argument("paxos::codec", "length", "must fit 32 bits (under 4 GiB)", n);
    }
    u32(static_cast<std::uint32_t>(n));
  }
  void bal(const ballot& b) {
    u64(b.counter);
    u32(b.node);
  }
  void cmds(const batch& b) {
    length(b.size());
    for (const auto& c : b) {
      u64(c.client_id);
      u64(c.request_id);
      bytes(c.payload);
    }
  }
  void entry(const log_entry& e) {
    u64(e.slot);
    bal(e.accepted);
    cmds(e.value);
    boolean(e.chosen);
  }
  void snap(const snapshot& s) {
    u64(s.index);
    u64(s.checksum);
    bytes(s.data);
  }

 private:
  template <class T>
  void put(T v) {
    char buf[sizeof(T)];
    distkit::detail::store_le<T>(buf, v);
    out_.append(buf, sizeof(T));
  }
  std::string& out_;
};

/// Reads little-endian fields with bounds checks; any overrun throws `paxos_corrupt_error`.
class reader {
 public:
  explicit reader(std::string_view in) noexcept : in_(in) {}
  auto u8() -> std::uint8_t { return static_cast<std::uint8_t>(take(1)[0]); }
  auto u32() -> std::uint32_t { return get<std::uint32_t>(); }
  auto u64() -> std::uint64_t { return get<std::uint64_t>(); }
  auto boolean() -> bool {
    auto v = u8();
    if (v > 1) fail("bad boolean");
    return v == 1;
  }
  auto bytes() -> std::string {
    auto n = u32();
    return std::string(take(n));
  }
  /// Like `bytes()`, without copying: the view points into the input.
  auto bytes_view() -> std::string_view {
    auto n = u32();
    return take(n);
  }
  auto bal() -> ballot {
    ballot b;
    b.counter = u64();
    b.node = u32();
    return b;
  }
  auto count(std::size_t min_element_size) -> std::size_t {
    auto n = u32();
    // A count can never promise more elements than the bytes left could hold.
    if (min_element_size != 0 && n > remaining() / min_element_size) fail("count exceeds the bytes left");
    return n;
  }
  auto cmds() -> batch {
    batch b(count(20));
    for (auto& c : b) {
      c.client_id = u64();
      c.request_id = u64();
      c.payload = bytes();
    }
    return b;
  }
  auto entry() -> log_entry {
    log_entry e;
    e.slot = u64();
    e.accepted = bal();
    e.value = cmds();
    e.chosen = boolean();
    return e;
  }
  auto snap() -> snapshot {
    snapshot s;
    s.index = u64();
    s.checksum = u64();
    s.data = bytes();
    return s;
  }
  [[nodiscard]] auto remaining() const noexcept -> std::size_t { return in_.size() - pos_; }
  void expect_end() const {
    if (pos_ != in_.size()) fail("trailing bytes");
  }
  [[noreturn]] static void fail(const char* what) {
    throw paxos_corrupt_error(std::string("distkit::paxos: corrupt message: ") + what);
  }

 private:
  auto take(std::size_t n) -> std::string_view {
    if (n > remaining()) fail("truncated");
    auto s = in_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  template <class T>
  auto get() -> T {
    return distkit::detail::load_le<T>(take(sizeof(T)).data());
  }
  std::string_view in_;
  std::size_t pos_ = 0;
};

}  // namespace internal

/// Encoded bytes of one command inside a batch (client id, request id, length, payload).
[[nodiscard]] inline auto encoded_size(const command& c) noexcept -> std::size_t { return 20 + c.payload.size(); }
/// Encoded bytes of a batch (its count, then each command).
[[nodiscard]] inline auto encoded_size(const batch& b) noexcept -> std::size_t {
  std::size_t n = 4;
  for (const auto& c : b) n += encoded_size(c);
  return n;
}
/// Encoded bytes of a log entry (slot, ballot, batch, chosen marker).
[[nodiscard]] inline auto encoded_size(const log_entry& e) noexcept -> std::size_t {
  return 21 + encoded_size(e.value);
}

/// An upper bound on the bytes of any message besides its batches, entries or chunk bytes:
/// a message carrying at most `k` bytes of those encodes to at most `k + message_overhead`.
inline constexpr std::size_t message_overhead = 128;

/// The first byte of an encoded message: the message type. Values are part of the wire format.
enum class message_type : std::uint8_t {
  prepare = 1,
  promise = 2,
  accept = 3,
  accepted = 4,
  heartbeat = 5,
  heartbeat_ack = 6,
  catchup_request = 7,
  catchup_reply = 8,
  snapshot = 9,
  snapshot_chunk = 10,
  snapshot_ack = 11,
};

/// @brief Appends the binary encoding of `m` to `out`: one type byte, then the fields in
/// little-endian order (ballot = u64 counter + u32 node; strings and lists = u32 length + items).
///
/// The encoding carries no checksum: the transport frames and checksums it.
/// **Complexity:** O(size of the message).
inline void encode_to(const message& m, std::string& out) {
  internal::writer w(out);
  w.u8(static_cast<std::uint8_t>(m.index() + 1));
  std::visit(
      [&](const auto& x) {
        using kind = std::decay_t<decltype(x)>;
        w.u32(x.from);
        w.u32(x.to);
        if constexpr (std::is_same_v<kind, prepare_msg>) {
          w.bal(x.bal);
          w.u64(x.first_slot);
        } else if constexpr (std::is_same_v<kind, promise_msg>) {
          w.bal(x.bal);
          w.boolean(x.ok);
          w.bal(x.promised);
          w.u64(x.chosen_index);
          w.length(x.accepted.size());
          for (const auto& e : x.accepted) w.entry(e);
          w.u64(x.resume_from);
        } else if constexpr (std::is_same_v<kind, accept_msg>) {
          w.bal(x.bal);
          w.u64(x.slot);
          w.cmds(x.value);
          w.u64(x.commit_index);
        } else if constexpr (std::is_same_v<kind, accepted_msg>) {
          w.bal(x.bal);
          w.u64(x.slot);
          w.boolean(x.ok);
          w.bal(x.promised);
        } else if constexpr (std::is_same_v<kind, heartbeat_msg>) {
          w.bal(x.bal);
          w.u64(x.commit_index);
        } else if constexpr (std::is_same_v<kind, heartbeat_ack_msg>) {
          w.bal(x.bal);
          w.boolean(x.ok);
          w.bal(x.promised);
          w.u64(x.chosen_index);
        } else if constexpr (std::is_same_v<kind, catchup_request_msg>) {
          w.u64(x.first_slot);
        } else if constexpr (std::is_same_v<kind, catchup_reply_msg>) {
          w.u64(x.first_slot);
          w.length(x.values.size());
          for (const auto& v : x.values) w.cmds(v);
          w.u64(x.chosen_index);
        } else if constexpr (std::is_same_v<kind, snapshot_msg>) {
          w.snap(x.snap);
        } else if constexpr (std::is_same_v<kind, snapshot_chunk_msg>) {
          w.u64(x.index);
          w.u64(x.total);
          w.u32(x.total_crc);
          w.u64(x.offset);
          w.u32(x.chunk_crc);
          w.bytes(x.bytes);
        } else if constexpr (std::is_same_v<kind, snapshot_ack_msg>) {
          w.u64(x.index);
          w.u64(x.next_offset);
        }
      },
      m);
}

/// Returns the binary encoding of `m` (see `encode_to`).
[[nodiscard]] inline auto encode(const message& m) -> std::string {
  std::string out;
  encode_to(m, out);
  return out;
}

/// @brief Decodes one message that fills `bytes` exactly.
/// @throws paxos_corrupt_error on an unknown type, a truncated or oversized field, an
///         impossible count, or trailing bytes. Nothing in `bytes` is trusted.
[[nodiscard]] inline auto decode(std::string_view bytes) -> message {
  internal::reader r(bytes);
  auto type = r.u8();
  auto from = r.u32();
  auto to = r.u32();
  message m;
  switch (static_cast<message_type>(type)) {
    case message_type::prepare: {
      prepare_msg x{from, to, r.bal(), 0};
      x.first_slot = r.u64();
      m = x;
      break;
    }
    case message_type::promise: {
      promise_msg x;
      x.from = from;
      x.to = to;
      x.bal = r.bal();
      x.ok = r.boolean();
      x.promised = r.bal();
      x.chosen_index = r.u64();
      x.accepted.resize(r.count(24));
      for (auto& e : x.accepted) e = r.entry();
      x.resume_from = r.u64();
      m = std::move(x);
      break;
    }
    case message_type::accept: {
      accept_msg x;
      x.from = from;
      x.to = to;
      x.bal = r.bal();
      x.slot = r.u64();
      x.value = r.cmds();
      x.commit_index = r.u64();
      m = std::move(x);
      break;
    }
    case message_type::accepted: {
      accepted_msg x;
      x.from = from;
      x.to = to;
      x.bal = r.bal();
      x.slot = r.u64();
      x.ok = r.boolean();
      x.promised = r.bal();
      m = x;
      break;
    }
    case message_type::heartbeat: {
      heartbeat_msg x{from, to, r.bal(), 0};
      x.commit_index = r.u64();
      m = x;
      break;
    }
    case message_type::heartbeat_ack: {
      heartbeat_ack_msg x;
      x.from = from;
      x.to = to;
      x.bal = r.bal();
      x.ok = r.boolean();
      x.promised = r.bal();
      x.chosen_index = r.u64();
      m = x;
      break;
    }
    case message_type::catchup_request: {
      m = catchup_request_msg{from, to, r.u64()};
      break;
    }
    case message_type::catchup_reply: {
      catchup_reply_msg x;
      x.from = from;
      x.to = to;
      x.first_slot = r.u64();
      x.values.resize(r.count(4));
      for (auto& v : x.values) v = r.cmds();
      x.chosen_index = r.u64();
      m = std::move(x);
      break;
    }
    case message_type::snapshot: {
      m = snapshot_msg{from, to, r.snap()};
      break;
    }
    case message_type::snapshot_chunk: {
      snapshot_chunk_msg x;
      x.from = from;
      x.to = to;
      x.index = r.u64();
      x.total = r.u64();
      x.total_crc = r.u32();
      x.offset = r.u64();
      x.chunk_crc = r.u32();
      x.bytes = r.bytes();
      m = std::move(x);
      break;
    }
    case message_type::snapshot_ack: {
      snapshot_ack_msg x;
      x.from = from;
      x.to = to;
      x.index = r.u64();
      x.next_offset = r.u64();
      m = x;
      break;
    }
    default:
      internal::reader::fail("unknown message type");
  }
  r.expect_end();
  return m;
}

}  // namespace distkit::inline v0::paxos
