// SPDX-License-Identifier: MIT
// distkit/paxos/tcp_message_transport.hpp: Paxos messages over `tcp_transport` (a paxos_transport policy).
//
// Link `distkit::tcp`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "distkit/detail/error.hpp"
#include "distkit/paxos/concepts.hpp"
#include "distkit/paxos/message.hpp"
#include "distkit/paxos/tcp_transport.hpp"

namespace distkit::inline v0::paxos {

/// @brief Sends Paxos messages as authenticated frames over a `tcp_transport`, and decodes the
/// frames it received back into messages. Models `paxos_transport`.
///
/// A frame's verified sender must match the sender written inside the message; a message that
/// does not decode, or claims another sender or receiver, is dropped and counted
/// (`malformed()`), never stepped into a replica. A message larger than the transport's frame
/// limit is dropped and counted (`oversized()`); construct with the replica's
/// `max_message_bytes` to have that refused up front instead.
///
/// **Thread safety:** `send` as `tcp_transport::send`; `decode` and `malformed` from one thread.
/// @code
/// #include "distkit/paxos/kv_state_machine.hpp"
/// #include "distkit/paxos/replica.hpp"
/// distkit::paxos::tcp_transport_options cfg;  // as for tcp_transport
/// distkit::paxos::replica<distkit::paxos::kv_state_machine> replica{{.id = 1, .nodes = {1, 2, 3}}};
/// distkit::paxos::tcp_transport net(cfg);
/// distkit::paxos::tcp_message_transport msgs(net);
/// msgs.send(distkit::paxos::heartbeat_msg{.from = 1, .to = 2, .bal = {}, .commit_index = 0});
/// distkit::paxos::tcp_message in;
/// if (net.try_receive(in)) if (auto m = msgs.decode(in)) replica.step(std::move(*m));
/// @endcode
class tcp_message_transport {
 public:
  explicit tcp_message_transport(tcp_transport& net) noexcept : net_(net) {}

  /// As above, for a replica whose messages encode to at most `max_message_bytes`
  /// (`replica_options::max_message_bytes`).
  /// @throws std::invalid_argument naming both bounds if such a message could exceed the
  ///         transport's frame limit (`tcp_transport_options::max_body`).
  tcp_message_transport(tcp_transport& net, std::size_t max_message_bytes) : net_(net) {
    if (max_message_bytes > net.max_body()) {
      distkit::detail::throw_invalid_argument(
          "paxos::tcp_message_transport", "replica_options::max_message_bytes",
          "must be at most the frame limit tcp_transport_options::max_body (" + std::to_string(net.max_body()) + ")",
          max_message_bytes);
    }
  }

  /// Encodes and queues `m` for `message_to(m)`; messages to unknown nodes or to this node are
  /// dropped (the replica only addresses cluster members). Best effort, like the protocol wants.
  void send(const message& m) {
    const auto to = message_to(m);
    if (to == net_.node_id()) return;
    buffer_.clear();
    encode_to(m, buffer_);
    if (buffer_.size() > net_.max_body()) {
      ++oversized_;
      return;
    }
    try {
      if (!net_.send(to, std::as_bytes(std::span(buffer_.data(), buffer_.size())))) ++refused_;
    } catch (const std::invalid_argument&) {
      ++unroutable_;
    }
  }

  /// The message inside a verified frame, or nothing if it is malformed or misattributed.
  [[nodiscard]] auto decode(const tcp_message& in) -> std::optional<message> {
    try {
      auto m = paxos::decode(std::string_view(reinterpret_cast<const char*>(in.body.data()), in.body.size()));
      if (message_from(m) != in.from || message_to(m) != net_.node_id()) {
        ++malformed_;
        return std::nullopt;
      }
      return m;
    } catch (const paxos_corrupt_error&) {
      ++malformed_;
      return std::nullopt;
    }
  }

  [[nodiscard]] auto malformed() const noexcept -> std::uint64_t { return malformed_; }
  [[nodiscard]] auto unroutable() const noexcept -> std::uint64_t { return unroutable_; }
  /// Messages dropped because they encode to more than the transport's frame limit.
  [[nodiscard]] auto oversized() const noexcept -> std::uint64_t { return oversized_; }
  /// Messages the transport refused (a full queue with `overflow_policy::refuse`, or stopped).
  [[nodiscard]] auto refused() const noexcept -> std::uint64_t { return refused_; }
  [[nodiscard]] auto network() noexcept -> tcp_transport& { return net_; }

 private:
  tcp_transport& net_;
  std::string buffer_;
  std::uint64_t malformed_ = 0;
  std::uint64_t unroutable_ = 0;
  std::uint64_t oversized_ = 0;
  std::uint64_t refused_ = 0;
};

static_assert(paxos_transport<tcp_message_transport>);

}  // namespace distkit::inline v0::paxos
