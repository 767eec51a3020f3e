// SPDX-License-Identifier: MIT
// distkit/paxos/synod.hpp: single-decree Paxos (the Synod algorithm): an acceptor and a proposer.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "distkit/detail/error.hpp"
#include "distkit/paxos/types.hpp"

namespace distkit::inline v0::paxos {

/// A Phase 1b answer of a single-decree acceptor.
template <class Value>
struct synod_promise {
  bool ok = false;
  ballot promised;         ///< the acceptor's promise after the call
  ballot accepted_ballot;  ///< ballot of `accepted_value` ({0,0} if none)
  std::optional<Value> accepted_value;
};

/// A Phase 2b answer of a single-decree acceptor.
struct synod_accepted {
  bool ok = false;
  ballot promised;
};

/// @brief The acceptor of single-decree Paxos.
///
/// Promises never go down; an accept at ballot b raises the promise to b (so a later prepare
/// below b is refused); a value is accepted only at a ballot >= the promise. The caller must
/// make `promised()`/`accepted()` durable before sending the answer.
///
/// **Thread safety:** none. **Complexity:** O(1) per call.
template <class Value>
class synod_acceptor {
 public:
  /// Phase 1b: promise `b` when it is above every promise made so far.
  auto on_prepare(const ballot& b) -> synod_promise<Value> {
    if (b > promised_) {
      promised_ = b;
      return {true, promised_, accepted_ballot_, accepted_};
    }
    return {false, promised_, {}, std::nullopt};
  }
  /// Phase 2b: accept `v` at `b` unless a higher ballot was promised.
  auto on_accept(const ballot& b, Value v) -> synod_accepted {
    if (b < promised_) return {false, promised_};
    promised_ = b;
    accepted_ballot_ = b;
    accepted_ = std::move(v);
    return {true, promised_};
  }
  [[nodiscard]] auto promised() const noexcept -> const ballot& { return promised_; }
  [[nodiscard]] auto accepted_ballot() const noexcept -> const ballot& { return accepted_ballot_; }
  [[nodiscard]] auto accepted() const noexcept -> const std::optional<Value>& { return accepted_; }

 private:
  ballot promised_;
  ballot accepted_ballot_;
  std::optional<Value> accepted_;
};

/// @brief The proposer of single-decree Paxos for a fixed set of `n` acceptors (0..n-1).
///
/// `start(ballot, v)` begins Phase 1; feed promises with `on_promise`: once a majority
/// promised, it returns the value to send in Phase 2 (the highest-ballot accepted value
/// reported, else `v`). Feed Phase 2 answers with `on_accepted`: once a majority accepted, it
/// returns the chosen value. A refusal ends the attempt (retry with a higher ballot).
///
/// @throws std::invalid_argument if `acceptors` is 0 or above 64.
/// **Thread safety:** none. **Complexity:** O(1) per call.
template <class Value>
class synod_proposer {
 public:
  explicit synod_proposer(std::size_t acceptors) : n_(acceptors) {
    if (acceptors == 0 || acceptors > 64) {
      distkit::detail::throw_invalid_argument("paxos::synod_proposer", "acceptors", "must be in [1, 64]", acceptors);
    }
  }
  void start(const ballot& b, Value v) {
    bal_ = b;
    own_ = std::move(v);
    best_ballot_ = {};
    best_.reset();
    promises_ = accepts_ = 0;
    phase_ = 1;
  }
  /// Returns the Phase 2 value once a majority promised (exactly once per attempt).
  auto on_promise(std::size_t from, const synod_promise<Value>& p) -> std::optional<Value> {
    if (phase_ != 1 || from >= n_) return std::nullopt;
    if (!p.ok) {
      if (p.promised > bal_) phase_ = 0;
      return std::nullopt;
    }
    if (promises_ & (std::uint64_t{1} << from)) return std::nullopt;
    promises_ |= std::uint64_t{1} << from;
    if (p.accepted_value && p.accepted_ballot > best_ballot_) {
      best_ballot_ = p.accepted_ballot;
      best_ = p.accepted_value;
    }
    if (count(promises_) * 2 > n_) {
      phase_ = 2;
      return best_ ? *best_ : own_;
    }
    return std::nullopt;
  }
  /// Returns the chosen value once a majority accepted (exactly once per attempt).
  auto on_accepted(std::size_t from, const synod_accepted& a, const Value& sent) -> std::optional<Value> {
    if (phase_ != 2 || from >= n_) return std::nullopt;
    if (!a.ok) {
      phase_ = 0;
      return std::nullopt;
    }
    accepts_ |= std::uint64_t{1} << from;
    if (count(accepts_) * 2 > n_) {
      phase_ = 3;
      return sent;
    }
    return std::nullopt;
  }
  [[nodiscard]] auto current_ballot() const noexcept -> const ballot& { return bal_; }
  /// 0 idle/refused, 1 preparing, 2 accepting, 3 chosen.
  [[nodiscard]] auto phase() const noexcept -> int { return phase_; }

 private:
  static auto count(std::uint64_t x) noexcept -> std::size_t { return static_cast<std::size_t>(std::popcount(x)); }
  std::size_t n_;
  ballot bal_;
  Value own_{};
  ballot best_ballot_;
  std::optional<Value> best_;
  std::uint64_t promises_ = 0, accepts_ = 0;
  int phase_ = 0;
};

}  // namespace distkit::inline v0::paxos
