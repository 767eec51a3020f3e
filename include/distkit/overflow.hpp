// SPDX-License-Identifier: MIT
// distkit/overflow.hpp: what a producer does when a bounded queue is full. One set of policies
// for the worker pool's inbox and the in-process queues.
#pragma once

#include <concepts>

namespace distkit::inline v0 {

/// What a producer does when a bounded queue is full.
enum class overflow_action {
  block,        ///< wait for room
  reject,       ///< give the item back at once
  caller_runs,  ///< run the task in the producer's thread (worker pool only)
  drop_oldest,  ///< discard the oldest queued item to make room (queues only)
};

/// The producer waits for room. The default of the worker pool and the queues.
struct blocking_overflow {
  static constexpr overflow_action action = overflow_action::block;
};
/// The producer is refused at once and keeps its item: `admission::rejected` or an empty
/// optional from the worker pool, `push_result::rejected` from a queue.
struct rejecting_overflow {
  static constexpr overflow_action action = overflow_action::reject;
};
/// The submitting thread runs the task itself, which slows the producer down to the pool's pace.
/// Worker pool only: a queue has nothing to run.
struct caller_runs_overflow {
  static constexpr overflow_action action = overflow_action::caller_runs;
};
/// The oldest queued item is discarded for the new one (`push_result::dropped_oldest`).
/// `mpmc_queue` only: the worker pool never discards a task it accepted.
struct drop_oldest_overflow {
  static constexpr overflow_action action = overflow_action::drop_oldest;
};

/// An overflow policy: `O::action` is an `overflow_action` constant.
template <class O>
concept overflow_policy = requires {
  { O::action } -> std::convertible_to<overflow_action>;
};

static_assert(overflow_policy<blocking_overflow>);
static_assert(overflow_policy<rejecting_overflow>);
static_assert(overflow_policy<caller_runs_overflow>);
static_assert(overflow_policy<drop_oldest_overflow>);

/// The former spellings of the worker pool's policies.
namespace overflow {
using block [[deprecated("use distkit::blocking_overflow")]] = blocking_overflow;
using reject [[deprecated("use distkit::rejecting_overflow")]] = rejecting_overflow;
using caller_runs [[deprecated("use distkit::caller_runs_overflow")]] = caller_runs_overflow;
}  // namespace overflow

/// The former spellings of the queues' policies.
namespace queue_overflow {
using block [[deprecated("use distkit::blocking_overflow")]] = blocking_overflow;
using reject [[deprecated("use distkit::rejecting_overflow")]] = rejecting_overflow;
using drop_oldest [[deprecated("use distkit::drop_oldest_overflow")]] = drop_oldest_overflow;
}  // namespace queue_overflow
using queue_overflow_action [[deprecated("use distkit::overflow_action")]] = overflow_action;

}  // namespace distkit::inline v0
