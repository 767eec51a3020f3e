// SPDX-License-Identifier: MIT
// distkit/detail/task_ring.hpp: a growable ring buffer of tasks, usable as a deque.
#pragma once

#include <cstddef>
#include <memory>
#include <utility>

#include "distkit/detail/unique_function.hpp"

namespace distkit::inline v0::detail {

/// @brief A double-ended queue of `unique_function` over one power-of-two ring that doubles when
/// full. Not synchronised: the worker pool guards each ring with a mutex. Slots hold empty
/// functions when unused, so moving in and out is a 64-byte relocation with no allocation once
/// the ring has reached its working size.
class task_ring {
 public:
  task_ring() = default;

  [[nodiscard]] auto size() const noexcept -> std::size_t { return tail_ - head_; }
  [[nodiscard]] auto empty() const noexcept -> bool { return tail_ == head_; }

  void push_back(unique_function&& task) {
    if (size() == capacity_) grow();
    slots_[tail_ & (capacity_ - 1)] = std::move(task);
    ++tail_;
  }

  /// Removes the newest task (LIFO end). Precondition: not empty.
  auto pop_back() noexcept -> unique_function {
    --tail_;
    return std::move(slots_[tail_ & (capacity_ - 1)]);
  }

  /// Removes the oldest task (FIFO end). Precondition: not empty.
  auto pop_front() noexcept -> unique_function {
    unique_function task = std::move(slots_[head_ & (capacity_ - 1)]);
    ++head_;
    return task;
  }

 private:
  void grow() {
    const std::size_t new_capacity = capacity_ == 0 ? 64 : capacity_ * 2;
    auto fresh = std::make_unique<unique_function[]>(new_capacity);
    const std::size_t count = size();
    for (std::size_t i = 0; i < count; ++i) fresh[i] = std::move(slots_[(head_ + i) & (capacity_ - 1)]);
    slots_ = std::move(fresh);
    capacity_ = new_capacity;
    head_ = 0;
    tail_ = count;
  }

  std::unique_ptr<unique_function[]> slots_;
  std::size_t capacity_ = 0;
  std::size_t head_ = 0;  // index of the oldest task (grows without wrapping; masked on access)
  std::size_t tail_ = 0;  // one past the newest task
};

}  // namespace distkit::inline v0::detail
