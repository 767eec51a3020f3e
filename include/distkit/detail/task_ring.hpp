// SPDX-License-Identifier: MIT
// distkit/detail/task_ring.hpp: a block-linked double-ended queue of tasks.
#pragma once

#include <cstddef>
#include <new>
#include <utility>

#include "distkit/detail/unique_function.hpp"

namespace distkit::inline v0::detail {

/// @brief A double-ended queue of `unique_function` kept in a linked list of fixed blocks of
/// 128 tasks (8 KiB). Not synchronised: the worker pool guards each one with a mutex.
///
/// Blocks rather than one doubling array: a burst of a million tasks never copies the queue,
/// never touches a fresh multi-megabyte allocation at once, and the few emptied blocks kept
/// as spares make steady state allocation-free. Slots are raw storage: a task is constructed
/// on push and destroyed on pop, so nothing is value-initialised.
class task_ring {
 public:
  static constexpr std::size_t block_tasks = 128;

  task_ring() = default;
  task_ring(const task_ring&) = delete;
  auto operator=(const task_ring&) -> task_ring& = delete;

  ~task_ring() {
    while (size_ != 0) (void)pop_front();
    free_chain(head_);
    free_chain(spare_);
  }

  [[nodiscard]] auto size() const noexcept -> std::size_t { return size_; }
  [[nodiscard]] auto empty() const noexcept -> bool { return size_ == 0; }

  void push_back(unique_function&& task) {
    if (tail_ == nullptr) {
      head_ = tail_ = acquire_block();
      head_index_ = tail_index_ = 0;
    } else if (tail_index_ == block_tasks) {
      block* next = acquire_block();
      next->prev = tail_;
      tail_->next = next;
      tail_ = next;
      tail_index_ = 0;
    }
    ::new (static_cast<void*>(tail_->slot(tail_index_))) unique_function(std::move(task));
    ++tail_index_;
    ++size_;
  }

  /// Removes the newest task (LIFO end). Precondition: not empty.
  auto pop_back() noexcept -> unique_function {
    if (tail_index_ == 0) {
      block* old = tail_;
      tail_ = tail_->prev;
      tail_->next = nullptr;
      tail_index_ = block_tasks;
      release_block(old);
    }
    --tail_index_;
    unique_function* slot = tail_->slot(tail_index_);
    unique_function task(std::move(*slot));
    slot->~unique_function();
    if (--size_ == 0) head_index_ = tail_index_ = 0;
    return task;
  }

  /// Removes the oldest task (FIFO end). Precondition: not empty.
  auto pop_front() noexcept -> unique_function {
    unique_function* slot = head_->slot(head_index_);
    unique_function task(std::move(*slot));
    slot->~unique_function();
    ++head_index_;
    if (--size_ == 0) {
      // Empty: rewind to the start of the head block; a later (empty) block is let go.
      for (block* b = std::exchange(head_->next, nullptr); b != nullptr;) release_block(std::exchange(b, b->next));
      tail_ = head_;
      head_index_ = tail_index_ = 0;
    } else if (head_index_ == block_tasks) {
      block* old = head_;
      head_ = head_->next;
      head_->prev = nullptr;
      head_index_ = 0;
      release_block(old);
    }
    return task;
  }

 private:
  struct block {
    block* prev = nullptr;
    block* next = nullptr;
    // Cache-line aligned: each 64-byte task occupies exactly one line.
    alignas(64) unsigned char storage[block_tasks * sizeof(unique_function)];
    auto slot(std::size_t i) noexcept -> unique_function* {
      return std::launder(reinterpret_cast<unique_function*>(storage + i * sizeof(unique_function)));
    }
  };

  static constexpr std::size_t max_spares = 4;

  auto acquire_block() -> block* {
    if (spare_ != nullptr) {
      block* b = spare_;
      spare_ = b->next;
      --spare_count_;
      b->prev = b->next = nullptr;
      return b;
    }
    return new block;
  }

  void release_block(block* b) noexcept {
    if (spare_count_ < max_spares) {
      b->prev = nullptr;
      b->next = spare_;
      spare_ = b;
      ++spare_count_;
    } else {
      delete b;
    }
  }

  static void free_chain(block* b) noexcept {
    while (b != nullptr) delete std::exchange(b, b->next);
  }

  block* head_ = nullptr;  // oldest block; tasks [head_index_, ...)
  block* tail_ = nullptr;  // newest block; tasks [..., tail_index_)
  std::size_t head_index_ = 0;
  std::size_t tail_index_ = 0;
  std::size_t size_ = 0;
  block* spare_ = nullptr;  // emptied blocks kept for reuse (singly linked through next)
  std::size_t spare_count_ = 0;
};

}  // namespace distkit::inline v0::detail
