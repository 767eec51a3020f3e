// SPDX-License-Identifier: MIT
// distkit/paxos/testing/mutations.hpp: test-only switches that re-introduce known safety bugs,
// so a harness can prove that it notices them.
#pragma once

#include <cstdint>

#include "distkit/paxos/concepts.hpp"

namespace distkit::inline v0::paxos {

template <state_machine StateMachine>
class replica;

namespace testing {

/// @brief A set of deliberate bugs. Each one breaks a safety property the library guarantees;
/// the simulator and the regression tests must report a violation when one is enabled.
///
/// Enable them per replica with `set_mutations(replica, m)` and per persist call with
/// `testing::persist(storage, ready, m)`. They are not reachable from `replica_options`; a
/// replica without mutations pays one predictable branch where a mutation could apply.
enum class mutation : std::uint32_t {
  none = 0,
  /// A commit record pointing past a received snapshot is made durable before the snapshot.
  commit_before_snapshot = 1U << 0,
  /// Learned values are stored as acceptances at ballot {0,0}, with no chosen marker.
  learned_at_zero_ballot = 1U << 1,
  /// The catch-up reply handler leaves a leader's next slot behind its chosen index.
  late_catchup_past_leader = 1U << 2,
  /// Promises are not made durable.
  skip_promise_persistence = 1U << 3,
  /// A quorum is counted as a majority minus one.
  quorum_minus_one = 1U << 4,
};

[[nodiscard]] constexpr auto operator|(mutation a, mutation b) noexcept -> mutation {
  return static_cast<mutation>(static_cast<std::uint32_t>(a) | static_cast<std::uint32_t>(b));
}
[[nodiscard]] constexpr auto operator&(mutation a, mutation b) noexcept -> mutation {
  return static_cast<mutation>(static_cast<std::uint32_t>(a) & static_cast<std::uint32_t>(b));
}
[[nodiscard]] constexpr auto operator~(mutation a) noexcept -> mutation {
  return static_cast<mutation>(~static_cast<std::uint32_t>(a));
}
constexpr auto operator|=(mutation& a, mutation b) noexcept -> mutation& { return a = a | b; }
constexpr auto operator&=(mutation& a, mutation b) noexcept -> mutation& { return a = a & b; }

/// True when `set` holds every bit of `m` (and `m` is not `none`).
[[nodiscard]] constexpr auto has(mutation set, mutation m) noexcept -> bool {
  return m != mutation::none && (set & m) == m;
}

/// The replica's friend that sets its mutations (defined in replica.hpp).
struct mutation_access;

/// Enables exactly the mutations in `m` on `r` (`mutation::none` turns them off).
template <state_machine StateMachine>
void set_mutations(replica<StateMachine>& r, mutation m) noexcept;

}  // namespace testing
}  // namespace distkit::inline v0::paxos
