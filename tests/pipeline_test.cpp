// SPDX-License-Identifier: MIT
// tests/pipeline_test.cpp: typed stages, ordering, filtering, backpressure, errors, cancellation.
#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "distkit/pipeline.hpp"
#include "distkit/worker_pool.hpp"
#include "support/seed.hpp"

namespace {

using distkit::stage_kind;

auto mode_of(stage_kind kind) -> distkit::stage_mode {
  switch (kind) {
    case stage_kind::serial_in_order:
      return distkit::serial_in_order;
    case stage_kind::serial_out_of_order:
      return distkit::serial_out_of_order;
    case stage_kind::parallel:
      break;
  }
  return distkit::parallel(3);
}

template <stage_kind A, stage_kind B, stage_kind C>
struct modes {
  static constexpr stage_kind filter = A;
  static constexpr stage_kind transform = B;
  static constexpr stage_kind sink = C;
};

constexpr std::array<stage_kind, 3> kinds{stage_kind::serial_in_order, stage_kind::serial_out_of_order,
                                          stage_kind::parallel};

template <std::size_t I>
using combo = modes<kinds[I % 3], kinds[(I / 3) % 3], kinds[I / 9]>;

template <std::size_t... I>
auto make_combos(std::index_sequence<I...>) -> std::tuple<combo<I>...>;

using all_mode_combinations = decltype(make_combos(std::make_index_sequence<27>{}));

// Burns roughly `units` of CPU time without sleeping, so parallel calls finish out of order.
auto spin(std::uint32_t units) -> std::uint64_t {
  std::uint64_t x = units;
  for (std::uint32_t i = 0; i < units * 50; ++i) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  return x;
}

// A counter source of `n` items: 0, 1, ..., n-1.
auto counting_source(std::uint64_t n) {
  return distkit::source([i = std::uint64_t{0}, n]() mutable -> std::optional<std::uint64_t> {
    if (i == n) return std::nullopt;
    return i++;
  });
}

// Records the most calls of one stage that ever overlapped.
struct overlap_meter {
  std::atomic<int> inside{0};
  std::atomic<int> most{0};
  struct scope {
    overlap_meter& m;
    explicit scope(overlap_meter& meter) : m(meter) {
      const int now = m.inside.fetch_add(1) + 1;
      int seen = m.most.load();
      while (now > seen && !m.most.compare_exchange_weak(seen, now)) {
      }
    }
    scope(const scope&) = delete;
    auto operator=(const scope&) -> scope& = delete;
    ~scope() { m.inside.fetch_sub(1); }
  };
  [[nodiscard]] auto allowed(stage_kind kind) const -> bool {
    return kind == stage_kind::parallel ? most.load() <= 3 : most.load() == 1;
  }
};

/// The simplest executor a user could write: one FIFO and one thread.
class one_thread_executor {
 public:
  one_thread_executor() : thread_([this] { loop(); }) {}
  one_thread_executor(const one_thread_executor&) = delete;
  auto operator=(const one_thread_executor&) -> one_thread_executor& = delete;
  ~one_thread_executor() {
    {
      std::lock_guard lock(mutex_);
      closing_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  void post(std::function<void()> task) {
    {
      std::lock_guard lock(mutex_);
      tasks_.push_back(std::move(task));
      ++posted_;
    }
    cv_.notify_one();
  }
  [[nodiscard]] auto concurrency() const -> std::size_t { return 1; }
  [[nodiscard]] auto id() const -> std::thread::id { return thread_.get_id(); }
  [[nodiscard]] auto posted() -> std::size_t {
    std::lock_guard lock(mutex_);
    return posted_;
  }

 private:
  void loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
      cv_.wait(lock, [this] { return closing_ || !tasks_.empty(); });
      if (tasks_.empty()) return;
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  std::size_t posted_ = 0;
  bool closing_ = false;
  std::thread thread_;
};

static_assert(distkit::pipeline_executor<one_thread_executor>);
static_assert(distkit::pipeline_executor<distkit::detail::pipeline_threads>);
static_assert(!distkit::pipeline_executor<int>);
static_assert(distkit::pipeline_executor<distkit::worker_pool<>>);

}  // namespace

TEMPLATE_LIST_TEST_CASE("pipeline conserves items in every combination of stage modes", "[pipeline][conservation]",
                        all_mode_combinations) {
  constexpr std::uint64_t n = 3000;
  for (std::size_t threads : {1U, 2U, 4U, 8U}) {
    for (std::size_t cap : {1U, 5U, 64U}) {
      CAPTURE(threads, cap);
      std::mutex seen_mutex;
      std::vector<std::uint64_t> seen;
      std::array<overlap_meter, 3> overlap;
      auto p = distkit::make_pipeline({.max_in_flight = cap, .threads = threads, .max_batch = 8}, counting_source(n),
                                      distkit::stage(mode_of(TestType::filter),
                                                     [&](std::uint64_t x) -> std::optional<std::uint64_t> {
                                                       const overlap_meter::scope in(overlap[0]);
                                                       if (x % 7 == 3) return std::nullopt;
                                                       return x;
                                                     }),
                                      distkit::stage(mode_of(TestType::transform),
                                                     [&](std::uint64_t x) {
                                                       const overlap_meter::scope in(overlap[1]);
                                                       return std::to_string(x);
                                                     }),
                                      distkit::sink(mode_of(TestType::sink), [&](std::string s) {
                                        const overlap_meter::scope in(overlap[2]);
                                        std::lock_guard lock(seen_mutex);
                                        seen.push_back(std::stoull(s));
                                      }));
      REQUIRE(p.run() == distkit::pipeline_status::completed);
      const auto st = p.stats();
      REQUIRE(st.stages.size() == 4);
      const std::uint64_t dropped = n / 7 + (n % 7 > 3 ? 1 : 0);
      CHECK(st.stages[0].items_out == n);
      CHECK(st.stages[1].items_in == n);
      CHECK(st.stages[1].items_dropped == dropped);
      CHECK(st.stages[1].items_out == n - dropped);
      CHECK(st.stages[2].items_in == n - dropped);
      CHECK(st.stages[2].items_out == n - dropped);
      CHECK(st.stages[3].items_in == n - dropped);
      CHECK(st.stages[0].items_out == st.stages[3].items_out + st.stages[1].items_dropped + st.stages[2].items_dropped);
      CHECK(st.in_flight == 0);
      CHECK(st.discarded == 0);
      CHECK(st.peak_in_flight <= cap);
      for (std::size_t j = 1; j < st.stages.size(); ++j) CHECK(st.stages[j].peak_buffered <= cap);
      CHECK(overlap[0].allowed(TestType::filter));
      CHECK(overlap[1].allowed(TestType::transform));
      CHECK(overlap[2].allowed(TestType::sink));
      REQUIRE(seen.size() == n - dropped);
      if (TestType::sink == stage_kind::serial_in_order) {
        CHECK(std::is_sorted(seen.begin(), seen.end()));
      }
      std::sort(seen.begin(), seen.end());
      std::vector<std::uint64_t> expected;
      for (std::uint64_t x = 0; x < n; ++x) {
        if (x % 7 != 3) expected.push_back(x);
      }
      CHECK(seen == expected);
    }
  }
}

TEST_CASE("pipeline keeps source order at in-order stages after parallel stages of random work",
          "[pipeline][ordering]") {
  const auto seed = distkit_test::test_seed("pipeline ordering");
  constexpr std::size_t n = 4000;
  std::mt19937_64 rng(seed);
  std::vector<std::uint32_t> work(n);
  std::vector<bool> keep(n);
  for (std::size_t i = 0; i < n; ++i) {
    work[i] = static_cast<std::uint32_t>(rng() % 64);
    keep[i] = rng() % 4 != 0;
  }
  for (std::size_t threads : {2U, 4U, 8U}) {
    CAPTURE(threads);
    std::vector<std::uint64_t> middle;
    std::vector<std::uint64_t> seen;
    std::atomic<std::uint64_t> sink_checksum{0};
    auto p =
        distkit::make_pipeline({.max_in_flight = 48, .threads = threads, .max_batch = 4}, counting_source(n),
                               distkit::stage(distkit::parallel(),
                                              [&](std::uint64_t x) -> std::optional<std::uint64_t> {
                                                sink_checksum.fetch_add(spin(work[x]) & 1, std::memory_order_relaxed);
                                                if (!keep[x]) return std::nullopt;
                                                return x;
                                              }),
                               distkit::stage(distkit::serial_in_order,
                                              [&](std::uint64_t x) {
                                                middle.push_back(x);
                                                return x;
                                              }),
                               distkit::stage(distkit::parallel(4),
                                              [&](std::uint64_t x) {
                                                (void)spin(work[(x * 7) % n]);
                                                return x;
                                              }),
                               distkit::sink(distkit::serial_in_order, [&](std::uint64_t x) { seen.push_back(x); }));
    REQUIRE(p.run() == distkit::pipeline_status::completed);
    std::vector<std::uint64_t> expected;
    for (std::uint64_t x = 0; x < n; ++x) {
      if (keep[x]) expected.push_back(x);
    }
    CHECK(middle == expected);
    CHECK(seen == expected);
  }
}

TEST_CASE("pipeline with a blocked sink stops the source at the cap on items in flight", "[pipeline][backpressure]") {
  for (std::size_t cap : {1U, 8U, 33U}) {
    CAPTURE(cap);
    constexpr std::uint64_t n = 500;
    std::atomic<std::uint64_t> produced{0};
    std::promise<void> gate;
    std::shared_future<void> open = gate.get_future().share();
    std::atomic<bool> first{true};
    auto p =
        distkit::make_pipeline({.max_in_flight = cap, .threads = 4, .max_batch = 4},
                               distkit::source([&, i = std::uint64_t{0}]() mutable -> std::optional<std::uint64_t> {
                                 if (i == n) return std::nullopt;
                                 produced.fetch_add(1, std::memory_order_relaxed);
                                 return i++;
                               }),
                               distkit::stage(distkit::parallel(), [](std::uint64_t x) { return x + 1; }),
                               distkit::sink(distkit::serial_in_order, [&](std::uint64_t) {
                                 if (first.exchange(false))
                                   open.wait();  // the first item holds the sink until the test opens it
                               }));
    p.start();
    // Every token ends up in flight, and then the source is not called again.
    while (p.stats().in_flight < cap) std::this_thread::yield();
    auto blocked = p.stats();
    CHECK(blocked.in_flight == cap);
    CHECK(blocked.peak_in_flight == cap);
    CHECK(produced.load() == cap);
    CHECK(blocked.stages[0].items_out == cap);
    CHECK(blocked.stages[3 - 1].items_out <= cap);
    gate.set_value();
    REQUIRE(p.wait() == distkit::pipeline_status::completed);
    const auto st = p.stats();
    CHECK(st.peak_in_flight <= cap);
    CHECK(st.stages[0].items_out == n);
    CHECK(st.stages[2].items_in == n);
    CHECK(st.in_flight == 0);
    CHECK(st.source_blocked_events >= 1);
    CHECK(st.source_blocked.count() > 0);
    for (const auto& s : st.stages) CHECK(s.peak_buffered <= cap);
  }
}

TEST_CASE("pipeline rethrows the first exception of a stage and stops an endless source", "[pipeline][errors]") {
  for (std::size_t threads : {1U, 2U, 4U}) {
    CAPTURE(threads);
    std::atomic<std::uint64_t> sunk{0};
    std::uint64_t next = 0;
    auto p = distkit::make_pipeline(
        {.max_in_flight = 16, .threads = threads},
        distkit::source([&]() -> std::optional<std::uint64_t> { return next++; }),  // never ends by itself
        distkit::stage(distkit::parallel(),
                       [](std::uint64_t x) -> std::uint64_t {
                         if (x == 1000) throw std::runtime_error("bad item 1000");
                         return x;
                       }),
        distkit::sink(distkit::serial_in_order, [&](std::uint64_t) { sunk.fetch_add(1); }));
    REQUIRE_THROWS_WITH(p.run(), Catch::Matchers::Contains("bad item 1000"));
    const auto st = p.stats();
    CHECK(sunk.load() <= 1000);  // in order: nothing after the failed item reaches the sink
    CHECK(st.in_flight == 0);
    CHECK(st.stages[0].items_out == st.stages[2].items_in + st.discarded);
    CHECK(st.discarded >= 1);
    CHECK(st.stages[1].items_in >= 1);
  }
}

TEST_CASE("pipeline rethrows an exception of the source or the sink and can run again", "[pipeline][errors]") {
  bool source_throws = true;
  std::uint64_t i = 0;
  std::uint64_t sunk = 0;
  auto p =
      distkit::make_pipeline({.max_in_flight = 8, .threads = 2}, distkit::source([&]() -> std::optional<std::uint64_t> {
                               if (i == 300) {
                                 if (source_throws) throw std::out_of_range("source failed");
                                 return std::nullopt;
                               }
                               return i++;
                             }),
                             distkit::sink(distkit::serial_out_of_order, [&](std::uint64_t x) {
                               if (!source_throws && x == 100) throw std::logic_error("sink failed");
                               ++sunk;
                             }));
  REQUIRE_THROWS_AS(p.run(), std::out_of_range);
  CHECK(sunk <= 300);
  source_throws = false;
  i = 0;
  REQUIRE_THROWS_WITH(p.run(), "sink failed");
  i = 200;  // a clean third run: 200..299
  sunk = 0;
  REQUIRE(p.run() == distkit::pipeline_status::completed);
  CHECK(sunk == 100);
  CHECK(p.stats().discarded == 0);
}

TEST_CASE("pipeline cancelled through a stop token reports cancelled, not an error", "[pipeline][cancellation]") {
  SECTION("stop requested from inside a stage") {
    for (std::size_t threads : {1U, 3U}) {
      std::stop_source stop;
      std::uint64_t next = 0;
      std::uint64_t sunk = 0;
      auto p = distkit::make_pipeline({.max_in_flight = 32, .threads = threads},
                                      distkit::source([&]() -> std::optional<std::uint64_t> { return next++; }),
                                      distkit::stage(distkit::parallel(), [](std::uint64_t x) { return x * 2; }),
                                      distkit::sink(distkit::serial_in_order, [&](std::uint64_t) {
                                        if (++sunk == 500) stop.request_stop();
                                      }));
      REQUIRE(p.run(stop.get_token()) == distkit::pipeline_status::cancelled);
      CHECK(sunk >= 500);
      CHECK(sunk <= 500 + 32);
      CHECK(p.stats().in_flight == 0);
    }
  }
  SECTION("stop requested from another thread while running") {
    std::stop_source stop;
    std::atomic<std::uint64_t> sunk{0};
    std::uint64_t next = 0;
    auto p = distkit::make_pipeline({.max_in_flight = 16, .threads = 2},
                                    distkit::source([&]() -> std::optional<std::uint64_t> { return next++; }),
                                    distkit::sink(distkit::parallel(), [&](std::uint64_t) { sunk.fetch_add(1); }));
    p.start(stop.get_token());
    while (sunk.load() < 100) std::this_thread::yield();
    stop.request_stop();
    REQUIRE(p.wait() == distkit::pipeline_status::cancelled);
  }
  SECTION("a token already stopped runs nothing") {
    std::stop_source stop;
    stop.request_stop();
    std::uint64_t calls = 0;
    auto p = distkit::make_pipeline(distkit::source([&]() -> std::optional<int> {
                                      ++calls;
                                      return 1;
                                    }),
                                    distkit::sink(distkit::serial_in_order, [](int) {}));
    REQUIRE(p.run(stop.get_token()) == distkit::pipeline_status::cancelled);
    CHECK(calls <= 1);
  }
  SECTION("a stop after the stream ended still reports completed") {
    std::stop_source stop;
    auto p = distkit::make_pipeline(counting_source(10), distkit::sink(distkit::serial_in_order, [](std::uint64_t) {}));
    REQUIRE(p.run(stop.get_token()) == distkit::pipeline_status::completed);
    stop.request_stop();
  }
}

TEST_CASE("pipeline runs every stage to the end on an executor with one thread", "[pipeline][executor]") {
  one_thread_executor executor;
  constexpr std::uint64_t n = 5000;
  std::vector<std::thread::id> threads_seen;
  std::mutex m;
  auto note = [&] {
    std::lock_guard lock(m);
    if (threads_seen.empty() || threads_seen.back() != std::this_thread::get_id()) {
      threads_seen.push_back(std::this_thread::get_id());
    }
  };
  std::vector<std::uint64_t> out;
  std::uint64_t next = 0;
  auto p = distkit::make_pipeline({.max_in_flight = 64}, distkit::source([&]() -> std::optional<std::uint64_t> {
                                    if (next == n) return std::nullopt;
                                    return next++;
                                  }),
                                  distkit::stage(distkit::parallel(4),
                                                 [&](std::uint64_t x) -> std::optional<std::uint64_t> {
                                                   note();
                                                   if (x % 2) return std::nullopt;
                                                   return x;
                                                 }),
                                  distkit::stage(distkit::serial_out_of_order, [&](std::uint64_t x) { return x + 1; }),
                                  distkit::stage(distkit::parallel(),
                                                 [&](std::uint64_t x) {
                                                   note();
                                                   return x - 1;
                                                 }),
                                  distkit::sink(distkit::serial_in_order, [&](std::uint64_t x) {
                                    note();
                                    out.push_back(x);
                                  }));
  for (int round = 0; round < 3; ++round) {
    out.clear();
    next = 0;
    REQUIRE(p.run(executor) == distkit::pipeline_status::completed);
    REQUIRE(out.size() == n / 2);
    for (std::size_t i = 0; i < out.size(); ++i) REQUIRE(out[i] == 2 * i);
  }
  REQUIRE(threads_seen.size() == 1);
  CHECK(threads_seen.front() == executor.id());

  SECTION("and cancels on it") {
    std::stop_source stop;
    next = 0;
    auto endless = distkit::make_pipeline(distkit::source([&]() -> std::optional<std::uint64_t> { return next++; }),
                                          distkit::sink(distkit::serial_in_order, [&](std::uint64_t x) {
                                            if (x == 10000) stop.request_stop();
                                          }));
    REQUIRE(endless.run(executor, stop.get_token()) == distkit::pipeline_status::cancelled);
  }
}

TEST_CASE("pipeline runs on a distkit::worker_pool with fewer threads than stages", "[pipeline][executor]") {
  for (std::size_t threads : {1U, 2U}) {
    CAPTURE(threads);
    distkit::worker_pool<> pool(threads);
    constexpr std::uint64_t n = 20000;
    std::uint64_t next = 0;
    std::vector<std::uint64_t> out;
    auto p =
        distkit::make_pipeline({.max_in_flight = 32}, distkit::source([&]() -> std::optional<std::uint64_t> {
                                 if (next == n) return std::nullopt;
                                 return next++;
                               }),
                               distkit::stage(distkit::parallel(),
                                              [](std::uint64_t x) -> std::optional<std::uint64_t> {
                                                if (x % 3 == 0) return std::nullopt;
                                                return x;
                                              }),
                               distkit::stage(distkit::serial_in_order, [](std::uint64_t x) { return x * 2; }),
                               distkit::stage(distkit::parallel(2), [](std::uint64_t x) { return x / 2; }),
                               distkit::sink(distkit::serial_in_order, [&](std::uint64_t x) { out.push_back(x); }));
    REQUIRE(p.run(pool) == distkit::pipeline_status::completed);
    std::vector<std::uint64_t> expected;
    for (std::uint64_t x = 0; x < n; ++x) {
      if (x % 3 != 0) expected.push_back(x);
    }
    CHECK(out == expected);

    // The pool stays usable for other work while a pipeline runs on it, and after.
    std::stop_source stop;
    next = 0;
    std::uint64_t sunk = 0;
    auto endless = distkit::make_pipeline(distkit::source([&]() -> std::optional<std::uint64_t> { return next++; }),
                                          distkit::sink(distkit::serial_in_order, [&](std::uint64_t) {
                                            if (++sunk == 5000) stop.request_stop();
                                          }));
    endless.start(pool, stop.get_token());
    auto other = pool.submit([] { return 42; });
    CHECK(other.get() == 42);
    REQUIRE(endless.wait() == distkit::pipeline_status::cancelled);
  }
}

TEST_CASE("pipeline moves move-only items through every stage", "[pipeline][types]") {
  int next = 0;
  std::vector<int> out;
  auto p = distkit::make_pipeline(
      {.max_in_flight = 7, .threads = 3}, distkit::source([&]() -> std::optional<std::unique_ptr<int>> {
        if (next == 1000) return std::nullopt;
        return std::make_unique<int>(next++);
      }),
      distkit::stage(distkit::parallel(),
                     [](std::unique_ptr<int> v) -> std::optional<std::unique_ptr<int>> {
                       if (*v % 10 == 0) return std::nullopt;
                       *v *= 2;
                       return v;
                     }),
      distkit::sink(distkit::serial_in_order, [&](std::unique_ptr<int> v) { out.push_back(*v); }));
  REQUIRE(p.run() == distkit::pipeline_status::completed);
  REQUIRE(out.size() == 900);
  CHECK(std::is_sorted(out.begin(), out.end()));
  CHECK(out.front() == 2);
}

TEST_CASE("pipeline rejects a configuration that cannot run, naming the parameter", "[pipeline][config]") {
  auto sink = distkit::sink(distkit::serial_in_order, [](int) {});
  auto src = distkit::source([]() -> std::optional<int> { return std::nullopt; });
  REQUIRE_THROWS_AS(distkit::make_pipeline({.max_in_flight = 0}, src, sink), std::invalid_argument);
  REQUIRE_THROWS_WITH(distkit::make_pipeline({.max_in_flight = 0}, src, sink),
                      Catch::Matchers::Contains("max_in_flight"));
  REQUIRE_THROWS_WITH(distkit::make_pipeline({.max_batch = 0}, src, sink), Catch::Matchers::Contains("max_batch"));
  REQUIRE_THROWS_AS(distkit::parallel(0), std::invalid_argument);
  REQUIRE_THROWS_WITH(distkit::parallel(0), Catch::Matchers::Contains("max_concurrency"));
  auto p = distkit::make_pipeline(src, sink);
  REQUIRE_THROWS_AS(p.wait(), std::logic_error);
  CHECK(p.run() == distkit::pipeline_status::completed);
  static_assert(std::is_same_v<distkit::v0::pipeline_options, distkit::pipeline_options>);
}

TEST_CASE("pipeline types each stage from the one before it", "[pipeline][types]") {
  auto to_text = [](int x) -> std::optional<std::string> { return std::to_string(x); };
  using check = distkit::detail::stage_check<1, int, decltype(to_text), false>;
  static_assert(check::filters);
  static_assert(std::is_same_v<check::output, std::string>);
  auto consume = [](const std::string&) {};
  using sink_check = distkit::detail::stage_check<2, std::string, decltype(consume), true>;
  static_assert(sink_check::is_sink);
  auto produce = []() -> std::optional<double> { return 1.0; };
  using src = distkit::detail::source_check<decltype(produce)>;
  static_assert(std::is_same_v<src::output, double>);

  // A stage may take its item by lvalue reference (and change it in place) or by const reference.
  int next = 0;
  std::string joined;
  auto p = distkit::make_pipeline({.threads = 2}, distkit::source([&]() -> std::optional<std::string> {
                                    if (next == 5) return std::nullopt;
                                    return std::to_string(next++);
                                  }),
                                  distkit::stage(distkit::parallel(),
                                                 [](std::string& s) -> std::string& {
                                                   s += '!';
                                                   return s;
                                                 }),
                                  distkit::sink(distkit::serial_in_order, [&](const std::string& s) { joined += s; }));
  REQUIRE(p.run() == distkit::pipeline_status::completed);
  CHECK(joined == "0!1!2!3!4!");
}

TEST_CASE("pipeline keeps order and conserves items over random configurations", "[pipeline][.stress]") {
  const auto seed = distkit_test::test_seed("pipeline stress");
  std::mt19937_64 rng(seed);
  auto random_mode = [&]() -> distkit::stage_mode {
    switch (rng() % 3) {
      case 0:
        return distkit::serial_in_order;
      case 1:
        return distkit::serial_out_of_order;
      default:
        return distkit::parallel(1 + rng() % 6);
    }
  };
  for (int round = 0; round < 300; ++round) {
    const std::uint64_t n = rng() % 5000;
    const std::uint64_t drop_every = 2 + rng() % 9;
    const distkit::pipeline_options options{
        .max_in_flight = 1 + rng() % 80, .threads = 1 + rng() % 8, .max_batch = 1 + rng() % 64};
    const auto first = random_mode();
    const auto second = random_mode();
    CAPTURE(round, n, options.max_in_flight, options.threads, options.max_batch);
    std::vector<std::uint64_t> seen;
    auto p = distkit::make_pipeline(
        options, counting_source(n),
        distkit::stage(first,
                       [&](std::uint64_t x) -> std::optional<std::uint64_t> {
                         if (x % drop_every == 0) return std::nullopt;
                         (void)spin(static_cast<std::uint32_t>(x % 13));
                         return x;
                       }),
        distkit::stage(second, [](std::uint64_t x) { return x + spin(static_cast<std::uint32_t>(x % 5)) * 0; }),
        distkit::sink(distkit::serial_in_order, [&](std::uint64_t x) { seen.push_back(x); }));
    REQUIRE(p.run() == distkit::pipeline_status::completed);
    std::vector<std::uint64_t> expected;
    for (std::uint64_t x = 0; x < n; ++x) {
      if (x % drop_every != 0) expected.push_back(x);
    }
    REQUIRE(seen == expected);
    const auto st = p.stats();
    REQUIRE(st.stages[0].items_out == st.stages[3].items_in + st.stages[1].items_dropped);
    REQUIRE(st.peak_in_flight <= options.max_in_flight);
  }
}

// ---- regressions: sharing an executor, the first calls of a parallel stage run at once ----

TEMPLATE_TEST_CASE("pipeline shares a worker_pool: a task posted during an endless run runs before it ends",
                   "[pipeline][executor]", distkit::work_stealing_queue, distkit::global_queue) {
  for (std::size_t threads : {1U, 2U}) {
    CAPTURE(threads);
    distkit::worker_pool<TestType> pool(threads);
    std::stop_source stop;
    std::atomic<std::uint64_t> produced{0};
    std::promise<void> started;
    auto p = distkit::make_pipeline({.max_in_flight = 64}, distkit::source([&]() -> std::optional<std::uint64_t> {
                                      const std::uint64_t n = produced.fetch_add(1);
                                      if (n == 1000) started.set_value();
                                      return n;
                                    }),
                                    distkit::stage(distkit::parallel(), [](std::uint64_t x) { return x + 1; }),
                                    distkit::sink(distkit::serial_in_order, [](std::uint64_t) {}));
    p.start(pool, stop.get_token());
    started.get_future().wait();
    // From outside the pool, and from a task of the pool.
    auto outside = pool.submit([] { return 1; });
    auto inside = pool.submit([&pool] {
      auto child = std::make_shared<std::promise<int>>();
      auto f = child->get_future();
      pool.post([child] { child->set_value(2); });
      return f;
    });
    const bool outside_ran = outside.wait_for(std::chrono::seconds(20)) == std::future_status::ready;
    const bool inside_ran = inside.wait_for(std::chrono::seconds(20)) == std::future_status::ready &&
                            inside.get().wait_for(std::chrono::seconds(20)) == std::future_status::ready;
    stop.request_stop();  // ends the run either way, so a failure does not hang
    REQUIRE(p.wait() == distkit::pipeline_status::cancelled);
    CHECK(outside_ran);
    CHECK(inside_ran);
    pool.wait_idle();
  }
}

TEMPLATE_TEST_CASE("pipeline runs the first min(concurrency, 8) calls of a parallel stage at once",
                   "[pipeline][executor][wakeup]", distkit::work_stealing_queue, distkit::global_queue) {
  // oneTBB's filter-modes check: every call of the parallel stage waits until min(concurrency, 8)
  // calls are in it together; a pipeline that cannot spread the items over the executor's
  // threads (or an executor that loses a wake-up) never gets there. A bounded wait reports it.
  for (std::size_t threads : {2U, 4U, 8U}) {
    CAPTURE(threads);
    distkit::worker_pool<TestType> pool(threads);
    for (int round = 0; round < 10; ++round) {
      CAPTURE(round);
      const std::size_t need = std::min<std::size_t>(threads, 8);
      std::mutex m;
      std::condition_variable cv;
      std::size_t inside = 0;
      bool released = false;
      std::uint64_t next = 0;
      // One item per batch, as oneTBB hands a filter one item per task.
      auto p = distkit::make_pipeline({.max_in_flight = 64, .max_batch = 1},
                                      distkit::source([&]() -> std::optional<std::uint64_t> {
                                        if (next == need) return std::nullopt;
                                        return next++;
                                      }),
                                      distkit::stage(distkit::parallel(),
                                                     [&](std::uint64_t x) {
                                                       std::unique_lock lock(m);
                                                       if (++inside >= need) {
                                                         released = true;
                                                         cv.notify_all();
                                                       }
                                                       cv.wait(lock, [&] { return released; });
                                                       return x;
                                                     }),
                                      distkit::sink(distkit::serial_in_order, [](std::uint64_t) {}));
      p.start(pool);
      bool all_at_once = false;
      {
        std::unique_lock lock(m);
        all_at_once = cv.wait_for(lock, std::chrono::seconds(20), [&] { return released; });
        released = true;  // unblock the calls either way
        cv.notify_all();
      }
      REQUIRE(p.wait() == distkit::pipeline_status::completed);
      REQUIRE(all_at_once);
    }
  }
}
