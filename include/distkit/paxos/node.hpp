// SPDX-License-Identifier: MIT
// distkit/paxos/node.hpp: a replica wired to a storage and a transport policy (the ready loop).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "distkit/paxos/concepts.hpp"
#include "distkit/paxos/persist.hpp"
#include "distkit/paxos/replica.hpp"

namespace distkit::inline v0::paxos {

/// @brief Runs one `replica` against a `paxos_storage` and a `paxos_transport`: after every
/// input, `process()` persists what the replica asks with `paxos::persist` (which keeps the
/// durable order), then sends, then returns the applied commands, then advances the replica.
/// Nothing is sent before it is durable.
///
/// @tparam StateMachine models `state_machine`.
/// @tparam Storage      models `paxos_storage` (`memory_storage`, `file_storage`).
/// @tparam Transport    models `paxos_transport`.
///
/// **Thread safety:** none; drive it from one thread (e.g. the network's event loop).
///
/// @code
/// #include "distkit/paxos/kv_state_machine.hpp"
/// #include "distkit/paxos/storage.hpp"
/// using namespace distkit::paxos;
/// struct my_transport { void send(const message&) { /* to the message's receiver */ } };
/// memory_storage disk;
/// my_transport net;
/// node<kv_state_machine, memory_storage, my_transport> n{{.id = 1, .nodes = {1, 2, 3}}, disk, net};
/// n.tick();
/// for (auto& a : n.process()) { /* answer client a.client_id */ }
/// @endcode
template <state_machine StateMachine, paxos_storage Storage, paxos_transport Transport>
class node {
 public:
  node(replica_options opts, Storage& storage, Transport& transport, StateMachine sm = StateMachine{})
      : storage_(storage), transport_(transport), replica_(std::move(opts), std::move(sm), storage.load()) {}

  void tick() { replica_.tick(); }
  void step(const message& m) { replica_.step(m); }
  void step(message&& m) { replica_.step(std::move(m)); }
  [[nodiscard]] auto propose(std::uint64_t client_id, std::uint64_t request_id, std::string command) -> propose_status {
    return replica_.propose(client_id, request_id, std::move(command));
  }

  /// Performs every pending ready cycle; returns the commands applied meanwhile.
  /// @throws whatever the storage throws (a failed sync is fatal: stop this node).
  auto process() -> std::vector<applied_command> {
    std::vector<applied_command> applied;
    while (replica_.has_ready()) {
      auto rd = replica_.ready();
      paxos::persist(storage_, rd);
      for (const auto& m : rd.messages) transport_.send(m);
      for (auto& a : rd.applied) applied.push_back(std::move(a));
      replica_.advance();
    }
    return applied;
  }

  [[nodiscard]] auto core() noexcept -> replica<StateMachine>& { return replica_; }
  [[nodiscard]] auto core() const noexcept -> const replica<StateMachine>& { return replica_; }

 private:
  Storage& storage_;
  Transport& transport_;
  replica<StateMachine> replica_;
};

}  // namespace distkit::inline v0::paxos
