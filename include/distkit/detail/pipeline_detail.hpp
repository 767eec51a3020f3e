// SPDX-License-Identifier: MIT
// distkit/detail/pipeline_detail.hpp: stage type checks, stage buffers and the pipeline's own threads.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "distkit/detail/error.hpp"

namespace distkit::inline v0::detail {

// ---- runtime index to compile-time index -------------------------------------------------------

/// Calls `f(std::integral_constant<std::size_t, J>{})` for the `J` in [0, N) equal to `index` and
/// returns what it returns (a value-initialised result when `index >= N`). This is how a stage
/// number chosen at run time reaches the code of that stage, which is a template over its index.
template <std::size_t N, class F>
constexpr auto visit_index(std::size_t index, F&& f) -> decltype(f(std::integral_constant<std::size_t, 0>{})) {
  using result = decltype(f(std::integral_constant<std::size_t, 0>{}));
  return [&]<std::size_t... J>(std::index_sequence<J...>) -> result {
    if constexpr (std::is_void_v<result>) {
      (void)((index == J ? (f(std::integral_constant<std::size_t, J>{}), true) : false) || ...);
    } else {
      result r{};
      (void)((index == J ? (r = f(std::integral_constant<std::size_t, J>{}), true) : false) || ...);
      return r;
    }
  }(std::make_index_sequence<N>{});
}

// ---- compile-time typing of a stage chain -------------------------------------------------------

template <class T>
struct optional_traits {
  static constexpr bool is_optional = false;
  using value_type = T;
};
template <class T>
struct optional_traits<std::optional<T>> {
  static constexpr bool is_optional = true;
  using value_type = T;
};

/// Placeholder type that stands for "no valid item type" after a typing error, so that one
/// mistake produces one static_assert message instead of a cascade.
struct invalid_pipeline_item {};

/// What a source produces: `F()` must return `std::optional<T>`; an empty optional ends the stream.
template <class F>
struct source_check {
  static constexpr bool invocable = std::is_invocable_v<F&>;
  static_assert(invocable, "distkit::make_pipeline: the source must be callable with no arguments");
  using result = std::remove_cvref_t<
      typename std::conditional_t<invocable, std::invoke_result<F&>, std::type_identity<invalid_pipeline_item>>::type>;
  static_assert(!invocable || optional_traits<result>::is_optional,
                "distkit::make_pipeline: the source must return std::optional<T> (an empty optional ends the "
                "stream)");
  using output = typename optional_traits<result>::value_type;
};

/// What stage number `Index` (1-based, the source is 0) makes of an `In`: `F(In&&)` returns the
/// next item, `std::optional` of it (empty = drop), or void (a sink, which must come last).
template <std::size_t Index, class In, class F, bool Last>
struct stage_check {
  static constexpr bool input_valid = !std::is_same_v<In, invalid_pipeline_item>;
  // Items are moved into the callable; one that takes `In&` gets the buffered item by reference.
  static constexpr bool by_rvalue = input_valid && std::is_invocable_v<F&, In&&>;
  static constexpr bool by_lvalue = input_valid && !by_rvalue && std::is_invocable_v<F&, In&>;
  static constexpr bool invocable = !input_valid || by_rvalue || by_lvalue;
  using argument = std::conditional_t<by_rvalue, In&&, In&>;
  static_assert(invocable,
                "distkit::make_pipeline: a stage cannot be called with the item type the previous stage produces "
                "(stage_check<Index, In, F, Last> names the stage number, the item type and the callable)");
  using raw_result = typename std::conditional_t<input_valid && invocable, std::invoke_result<F&, argument>,
                                                 std::type_identity<invalid_pipeline_item>>::type;
  using result = std::remove_cvref_t<raw_result>;
  static constexpr bool is_sink = std::is_void_v<raw_result>;
  static constexpr bool filters = optional_traits<result>::is_optional;
  static_assert(!(input_valid && invocable) || !Last || is_sink,
                "distkit::make_pipeline: the last stage must be a sink (its callable returns void)");
  static_assert(!(input_valid && invocable) || Last || !is_sink,
                "distkit::make_pipeline: only the last stage may return void; a middle stage returns the next "
                "item or a std::optional of it");
  using output =
      std::conditional_t<is_sink || Last, invalid_pipeline_item, typename optional_traits<result>::value_type>;
};

template <class... Ts>
struct type_list {};

template <class List, class T>
struct push_back_type;
template <class... Ts, class T>
struct push_back_type<type_list<Ts...>, T> {
  using type = type_list<Ts..., T>;
};

/// Folds the stage checks along the chain and collects each stage's input type:
/// `inputs = type_list<T0, T1, ..., T(k-1)>` where T0 is what the source produces.
template <std::size_t Index, class In, class Acc, class... Fs>
struct chain_check;
template <std::size_t Index, class In, class Acc, class F>
struct chain_check<Index, In, Acc, F> {
  using check = stage_check<Index, In, F, true>;
  static_assert(sizeof(check) != 0);  // instantiates the check, and so its static_asserts
  using inputs = typename push_back_type<Acc, In>::type;
};
template <std::size_t Index, class In, class Acc, class F, class G, class... Rest>
struct chain_check<Index, In, Acc, F, G, Rest...> {
  using check = stage_check<Index, In, F, false>;
  using next = chain_check<Index + 1, typename check::output, typename push_back_type<Acc, In>::type, G, Rest...>;
  using inputs = typename next::inputs;
};

// ---- items and buffers ---------------------------------------------------------------------------

/// An item on its way: its position in source order and its value. An empty value is a hole: an
/// item that an earlier stage dropped, still travelling so that later in-order stages can step
/// over its sequence number.
template <class T>
struct pipeline_entry {
  std::uint64_t seq;
  std::optional<T> value;
};

inline constexpr std::uint64_t no_seq = std::numeric_limits<std::uint64_t>::max();

inline auto round_up_pow2(std::size_t n) -> std::size_t {
  std::size_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

/// The input buffer of one stage: a ring of `capacity` slots (capacity >= the token cap, a power
/// of two), allocated once per run. FIFO for parallel and out-of-order stages; for an in-order
/// stage, an item sits in slot `seq % capacity` until every earlier item has been taken. That slot
/// is always free: the items in flight hold distinct tokens, so their sequence numbers span fewer
/// than `capacity` values from the oldest item not yet past this stage.
template <class T>
class stage_buffer {
 public:
  void reset(std::size_t capacity, bool ordered) {
    if (slots_.size() != capacity) slots_ = std::vector<slot>(capacity);
    clear();
    mask_ = capacity - 1;
    ordered_ = ordered;
  }

  /// Destroys every buffered item; returns how many were real items (not holes).
  auto clear() -> std::size_t {
    std::size_t items = 0;
    for (auto& s : slots_) {
      if (s.seq != no_seq && s.value) ++items;
      s.seq = no_seq;
      s.value.reset();
    }
    head_ = 0;
    size_ = 0;
    return items;
  }

  [[nodiscard]] auto size() const noexcept -> std::size_t { return size_; }

  void push(pipeline_entry<T>&& e) {
    DISTKIT_ASSERT(size_ <= mask_);
    slot& s = slots_[(ordered_ ? e.seq : head_ + size_) & mask_];
    DISTKIT_ASSERT(s.seq == no_seq);
    s.seq = e.seq;
    s.value = std::move(e.value);
    ++size_;
  }

  /// In-order stages: is the item numbered `next` here?
  [[nodiscard]] auto ready(std::uint64_t next) const noexcept -> bool {
    return size_ != 0 && slots_[next & mask_].seq == next;
  }

  /// FIFO stages: moves up to `n` oldest entries to `out`.
  void take_fifo(std::vector<pipeline_entry<T>>& out, std::size_t n) {
    n = std::min(n, size_);
    for (std::size_t i = 0; i < n; ++i) {
      slot& s = slots_[head_ & mask_];
      out.push_back(pipeline_entry<T>{s.seq, std::move(s.value)});
      s.value.reset();
      s.seq = no_seq;
      ++head_;
    }
    size_ -= n;
  }

  /// In-order stages: moves the consecutive run starting at `next` (at most `n`) to `out` and
  /// advances `next` past it.
  void take_ordered(std::vector<pipeline_entry<T>>& out, std::uint64_t& next, std::size_t n) {
    while (n != 0 && ready(next)) {
      slot& s = slots_[next & mask_];
      out.push_back(pipeline_entry<T>{s.seq, std::move(s.value)});
      s.value.reset();
      s.seq = no_seq;
      ++next;
      --size_;
      --n;
    }
  }

 private:
  struct slot {
    std::uint64_t seq = no_seq;
    std::optional<T> value;
  };
  std::vector<slot> slots_;
  std::size_t mask_ = 0;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
  bool ordered_ = false;
};

// ---- the pipeline's own threads ------------------------------------------------------------------

/// A plain fixed set of threads with one FIFO of tasks: what a pipeline runs on when it is given
/// no executor. The destructor runs every task already posted, then joins.
class pipeline_threads {
 public:
  explicit pipeline_threads(std::size_t threads) {
    threads_.reserve(threads);
    for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
  }
  pipeline_threads(const pipeline_threads&) = delete;
  auto operator=(const pipeline_threads&) -> pipeline_threads& = delete;
  ~pipeline_threads() {
    {
      std::lock_guard lock(mutex_);
      closing_ = true;
    }
    ready_.notify_all();
    for (auto& t : threads_) t.join();
  }

  void post(std::function<void()> task) {
    {
      std::lock_guard lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    ready_.notify_one();
  }

  [[nodiscard]] auto concurrency() const noexcept -> std::size_t { return threads_.size(); }

 private:
  void work() {
    std::unique_lock lock(mutex_);
    for (;;) {
      ready_.wait(lock, [this] { return closing_ || !tasks_.empty(); });
      if (tasks_.empty()) return;
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> tasks_;
  bool closing_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace distkit::inline v0::detail
