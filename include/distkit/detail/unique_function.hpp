// SPDX-License-Identifier: MIT
// distkit/detail/unique_function.hpp: a move-only `void()` callable with small-buffer storage.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace distkit::inline v0::detail {

/// Tag: the callable has a `cancel() noexcept` member that settles it without running it
/// (fails a future, releases a task group). Such tasks are settled by `worker_pool::shutdown(cancel)`
/// instead of being handed back to the caller.
struct cancellable_t {
  explicit cancellable_t() = default;
};
inline constexpr cancellable_t cancellable{};

/// @brief A move-only `void()` callable. Callables of up to `buffer_size` bytes that are nothrow
/// movable live inside the object (no heap allocation); larger ones are boxed on the heap.
/// Trivially copyable callables (lambdas capturing pointers and integers) move with a plain copy.
///
/// The object is 64 bytes, one cache line, so a queue of them packs tightly.
class unique_function {
 public:
  static constexpr std::size_t buffer_size = 56;

  unique_function() noexcept = default;

  template <class F, class D = std::decay_t<F>>
    requires(!std::is_same_v<D, unique_function> && std::is_invocable_v<D&>)
  // Implicit, like std::function; the constraint leaves unique_function itself to the move
  // constructor (which the forwarding-reference check does not see in a requires-clause).
  // NOLINTNEXTLINE(google-explicit-constructor,bugprone-forwarding-reference-overload)
  unique_function(F&& f) {
    emplace<D, false>(std::forward<F>(f));
  }

  template <class F, class D = std::decay_t<F>>
    requires(std::is_invocable_v<D&>)
  unique_function(cancellable_t, F&& f) {
    emplace<D, true>(std::forward<F>(f));
  }

  unique_function(unique_function&& other) noexcept { take(other); }

  auto operator=(unique_function&& other) noexcept -> unique_function& {
    if (this != &other) {
      reset();
      take(other);
    }
    return *this;
  }

  unique_function(const unique_function&) = delete;
  auto operator=(const unique_function&) -> unique_function& = delete;

  ~unique_function() { reset(); }

  /// Runs the callable. Precondition: not empty.
  void operator()() { ops_->invoke(buf_); }

  explicit operator bool() const noexcept { return ops_ != nullptr; }

  /// True when the callable settles itself on cancellation (see `cancellable_t`).
  [[nodiscard]] auto is_cancellable() const noexcept -> bool { return ops_ != nullptr && ops_->cancel != nullptr; }

  /// Settles a cancellable callable without running it; returns false (and does nothing) if the
  /// callable is not cancellable.
  auto cancel() noexcept -> bool {
    if (!is_cancellable()) return false;
    ops_->cancel(buf_);
    return true;
  }

  /// Destroys the callable; the object becomes empty.
  void reset() noexcept {
    if (ops_ != nullptr) {
      if (ops_->destroy != nullptr) ops_->destroy(buf_);
      ops_ = nullptr;
    }
  }

 private:
  struct ops_table {
    void (*invoke)(void* self);
    // Move-constructs into `to` and destroys `from`; nullptr means "copy the bytes".
    void (*relocate)(void* from, void* to) noexcept;
    // nullptr means trivially destructible.
    void (*destroy)(void* self) noexcept;
    // nullptr means not cancellable.
    void (*cancel)(void* self) noexcept;
  };

  template <class D>
  static constexpr bool fits_inline =
      sizeof(D) <= buffer_size && alignof(D) <= alignof(std::max_align_t) && std::is_nothrow_move_constructible_v<D>;

  template <class D, bool Cancellable>
  struct inline_ops {
    static void invoke(void* self) { (*std::launder(static_cast<D*>(self)))(); }
    static void relocate(void* from, void* to) noexcept {
      D* src = std::launder(static_cast<D*>(from));
      ::new (to) D(std::move(*src));
      src->~D();
    }
    static void destroy(void* self) noexcept { std::launder(static_cast<D*>(self))->~D(); }
    static void cancel(void* self) noexcept {
      if constexpr (Cancellable) std::launder(static_cast<D*>(self))->cancel();
    }
    static constexpr bool trivial = std::is_trivially_copyable_v<D>;
    static constexpr ops_table table{&invoke, trivial ? nullptr : &relocate, trivial ? nullptr : &destroy,
                                     Cancellable ? &cancel : nullptr};
  };

  template <class D, bool Cancellable>
  struct boxed_ops {
    static auto get(void* self) -> D* { return *std::launder(static_cast<D**>(self)); }
    static void invoke(void* self) { (*get(self))(); }
    static void destroy(void* self) noexcept { delete get(self); }
    static void cancel(void* self) noexcept {
      if constexpr (Cancellable) get(self)->cancel();
    }
    // The box is a pointer: relocating copies the pointer bytes.
    static constexpr ops_table table{&invoke, nullptr, &destroy, Cancellable ? &cancel : nullptr};
  };

  template <class D, bool Cancellable, class F>
  void emplace(F&& f) {
    if constexpr (fits_inline<D>) {
      ::new (static_cast<void*>(buf_)) D(std::forward<F>(f));
      ops_ = &inline_ops<D, Cancellable>::table;
    } else {
      D* box = new D(std::forward<F>(f));
      ::new (static_cast<void*>(buf_)) D*(box);
      ops_ = &boxed_ops<D, Cancellable>::table;
    }
  }

  void take(unique_function& other) noexcept {
    ops_ = other.ops_;
    if (ops_ == nullptr) return;
    if (ops_->relocate == nullptr) {
      std::memcpy(buf_, other.buf_, buffer_size);
    } else {
      ops_->relocate(other.buf_, buf_);
    }
    other.ops_ = nullptr;
  }

  alignas(std::max_align_t) unsigned char buf_[buffer_size];
  const ops_table* ops_ = nullptr;
};

static_assert(sizeof(unique_function) == 64, "unique_function should fill exactly one cache line");

}  // namespace distkit::inline v0::detail
