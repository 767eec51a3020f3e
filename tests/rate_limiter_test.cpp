// SPDX-License-Identifier: MIT
// tests/rate_limiter_test.cpp: the rate limiter's algorithms against brute-force models, its
// idle-key eviction and its HTTP header formatting (single-threaded; see the concurrent file).
#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "distkit/rate_limiter.hpp"
#include "support/seed.hpp"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DISTKIT_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define DISTKIT_TEST_SANITIZED 1
#endif
#endif
#ifndef DISTKIT_TEST_SANITIZED
#define DISTKIT_TEST_SANITIZED 0
#endif

using namespace std::chrono_literals;
using distkit::decision;
using distkit::fixed_window;
using distkit::gcra;
using distkit::limit_params;
using distkit::manual_clock;
using distkit::rate_limit;
using distkit::refusal;
using distkit::sliding_window_counter;
using distkit::sliding_window_log;

namespace {

template <class A>
using test_limiter = distkit::rate_limiter<A, manual_clock>;

auto at(std::int64_t ns) -> manual_clock::time_point { return manual_clock::time_point(std::chrono::nanoseconds(ns)); }

// A deep copy of one key's state, to probe "what would happen at time t" without disturbing it.
template <class A>
auto clone(const typename A::state& s) -> typename A::state {
  if constexpr (std::is_same_v<A, sliding_window_log>) {
    sliding_window_log::state c;
    c.cap = s.cap;
    c.size = s.size;
    c.head = 0;
    if (s.cap > 0) {
      c.ring = std::make_unique<std::int64_t[]>(s.cap);
      for (std::uint32_t i = 0; i < s.size; ++i) c.ring[i] = s.at(i);
    }
    return c;
  } else {
    return s;
  }
}

// The exact sliding log, by brute force: every admitted unit's timestamp, scanned each time.
struct log_model {
  limit_params p;
  std::vector<std::int64_t> admitted;

  auto acquire(std::int64_t now, std::uint64_t cost) -> decision {
    std::vector<std::int64_t> live;
    for (const std::int64_t t : admitted) {
      if (t > now - p.window) live.push_back(t);
    }
    decision d;
    d.limit = p.limit;
    if (live.size() + cost <= p.limit) {
      for (std::uint64_t i = 0; i < cost; ++i) {
        admitted.push_back(now);
        live.push_back(now);
      }
      d.allowed = true;
    } else {
      d.reason = refusal::rate_limited;
      d.retry_after = std::chrono::nanoseconds(live[live.size() + cost - p.limit - 1] + p.window - now);
    }
    d.remaining = p.limit - live.size();
    d.reset_after = live.empty() ? 0ns : std::chrono::nanoseconds(live.back() + p.window - now);
    return d;
  }
};

// A token bucket in nanosecond credits: capacity tau, refilled one credit per ns, a unit costs
// `interval` credits. GCRA must give exactly its answers.
struct token_bucket_model {
  limit_params p;
  std::int64_t credits = 0;
  std::int64_t last = 0;
  bool started = false;

  auto acquire(std::int64_t now, std::uint64_t cost) -> decision {
    if (!started) {
      credits = p.tau;
      started = true;
    } else {
      credits = std::min(p.tau, credits + (now - last));
    }
    last = now;
    const std::int64_t need = static_cast<std::int64_t>(cost) * p.interval;
    decision d;
    d.limit = p.limit;
    if (credits >= need) {
      credits -= need;
      d.allowed = true;
    } else {
      d.reason = refusal::rate_limited;
      d.retry_after = std::chrono::nanoseconds(need - credits);
    }
    d.remaining = static_cast<std::uint64_t>(credits / p.interval);
    d.reset_after = std::chrono::nanoseconds(p.tau - credits);
    return d;
  }
};

void require_same(const decision& got, const decision& want) {
  REQUIRE(got.allowed == want.allowed);
  REQUIRE(got.reason == want.reason);
  REQUIRE(got.remaining == want.remaining);
  REQUIRE(got.retry_after == want.retry_after);
  REQUIRE(got.reset_after == want.reset_after);
  REQUIRE(got.limit == want.limit);
}

}  // namespace

TEST_CASE("rate_limiter namespace v0 is inline", "[rate_limiter][api]") {
  STATIC_REQUIRE(std::is_same_v<distkit::v0::rate_limiter<distkit::v0::gcra>, distkit::rate_limiter<gcra>>);
  STATIC_REQUIRE(distkit::window_algorithm<sliding_window_log>);
  STATIC_REQUIRE(distkit::window_algorithm<sliding_window_counter>);
  STATIC_REQUIRE(distkit::window_algorithm<gcra>);
  STATIC_REQUIRE(distkit::window_algorithm<fixed_window>);
  STATIC_REQUIRE(distkit::limiter_store<distkit::local_store<sliding_window_log>>);
  STATIC_REQUIRE(!distkit::window_algorithm<int>);
}

TEST_CASE("rate_limiter keeps per-key state of counter and gcra under 64 bytes", "[rate_limiter][memory]") {
  STATIC_REQUIRE(distkit::local_store<sliding_window_counter>::bytes_per_key <= 64);
  STATIC_REQUIRE(distkit::local_store<gcra>::bytes_per_key <= 64);
  std::cout << "[memory] bytes per key slot: sliding_window_counter "
            << distkit::local_store<sliding_window_counter>::bytes_per_key << ", gcra "
            << distkit::local_store<gcra>::bytes_per_key << ", fixed_window "
            << distkit::local_store<fixed_window>::bytes_per_key << ", sliding_window_log "
            << distkit::local_store<sliding_window_log>::bytes_per_key << " (+8 per timestamp held)\n";
}

TEST_CASE("rate_limiter rejects invalid configuration naming the parameter", "[rate_limiter][config]") {
  using Catch::Matchers::Contains;
  using L = distkit::rate_limiter<gcra>;
  REQUIRE_THROWS_AS(L(rate_limit{0, 1s}), std::invalid_argument);
  REQUIRE_THROWS_WITH(L(rate_limit{0, 1s}), Contains("limit"));
  REQUIRE_THROWS_WITH(L(rate_limit{std::uint64_t{1} << 31, 1s}), Contains("limit"));
  REQUIRE_THROWS_AS(L(rate_limit{10, 0s}), std::invalid_argument);
  REQUIRE_THROWS_WITH(L(rate_limit{10, 0s}), Contains("window"));
  REQUIRE_THROWS_WITH(L(rate_limit{100, 50ns}), Contains("window"));
  REQUIRE_THROWS_WITH(L(rate_limit{10, std::chrono::hours(24 * 365)}), Contains("window"));
  REQUIRE_THROWS_AS(distkit::local_store<gcra>(rate_limit{10, 1s}, {.shards = 3}), std::invalid_argument);
  REQUIRE_THROWS_WITH(distkit::local_store<gcra>(rate_limit{10, 1s}, {.shards = 0}), Contains("shards"));
  REQUIRE_NOTHROW(L(rate_limit{1, 1ns}));
}

TEMPLATE_TEST_CASE("rate_limiter allows a burst up to the limit, then refuses with a retry time", "[rate_limiter]",
                   sliding_window_log, sliding_window_counter, gcra, fixed_window) {
  manual_clock clock;
  clock.advance(10s);  // start on a window boundary of every algorithm
  test_limiter<TestType> limiter{rate_limit{5, 1s}, clock};
  for (std::uint64_t i = 0; i < 5; ++i) {
    const decision d = limiter.try_acquire(std::string_view("alice"));
    REQUIRE(d.allowed);
    REQUIRE(d.reason == refusal::none);
    REQUIRE(d.remaining == 4 - i);
    REQUIRE(d.limit == 5);
    REQUIRE(d.retry_after == 0ns);
    REQUIRE(d.reset_after > 0ns);
  }
  const decision refused = limiter.try_acquire(std::string_view("alice"));
  REQUIRE_FALSE(refused.allowed);
  REQUIRE_FALSE(static_cast<bool>(refused));
  REQUIRE(refused.reason == refusal::rate_limited);
  REQUIRE(refused.remaining == 0);
  REQUIRE(refused.retry_after > 0ns);
  REQUIRE(refused.retry_after <= 2s);
  // Another key has its own limit.
  REQUIRE(limiter.try_acquire(std::string_view("bob")).allowed);
  // After the retry time, the request passes.
  clock.advance(refused.retry_after);
  REQUIRE(limiter.try_acquire(std::string_view("alice")).allowed);
}

TEMPLATE_TEST_CASE("rate_limiter refuses a cost larger than the limit and changes nothing", "[rate_limiter]",
                   sliding_window_log, sliding_window_counter, gcra, fixed_window) {
  manual_clock clock;
  test_limiter<TestType> limiter{rate_limit{10, 1s}, clock};
  const decision d = limiter.try_acquire(std::uint64_t{7}, 11);
  REQUIRE_FALSE(d.allowed);
  REQUIRE(d.reason == refusal::cost_exceeds_limit);
  REQUIRE(d.retry_after == std::chrono::nanoseconds::max());
  REQUIRE(d.limit == 10);
  const decision full = limiter.try_acquire(std::uint64_t{7}, 10);
  REQUIRE(full.allowed);
  REQUIRE(full.remaining == 0);
}

TEMPLATE_TEST_CASE("rate_limiter try_acquire_many decides exactly as the same calls made one by one",
                   "[rate_limiter][batch][property]", sliding_window_log, sliding_window_counter, gcra, fixed_window) {
  const auto seed = distkit_test::test_seed("rate_limiter try_acquire_many decides exactly as one by one");
  std::mt19937_64 rng(seed);
  manual_clock batch_clock;
  manual_clock single_clock;
  test_limiter<TestType> batched{rate_limit{7, 1s}, batch_clock};
  test_limiter<TestType> single{rate_limit{7, 1s}, single_clock};
  std::size_t allowed_total = 0;
  for (int round = 0; round < 400; ++round) {
    // Up to 100 keys from a small set, so a batch repeats keys and sees its own earlier requests,
    // and crosses the batch path's internal groups at every length.
    const std::size_t length = rng() % 101;
    std::vector<std::uint64_t> keys(length);
    for (auto& k : keys) k = rng() % 40;
    const std::uint64_t cost = rng() % 10 == 0 ? 8 : 1 + rng() % 3;  // sometimes above the limit
    std::vector<decision> out(length);
    const std::size_t allowed = batched.try_acquire_many(keys, out, cost);
    std::size_t expected_allowed = 0;
    for (std::size_t i = 0; i < length; ++i) {
      const decision d = single.try_acquire(keys[i], cost);
      INFO("round " << round << ", item " << i << ", key " << keys[i] << ", cost " << cost);
      REQUIRE(out[i].allowed == d.allowed);
      REQUIRE(out[i].remaining == d.remaining);
      REQUIRE(out[i].retry_after == d.retry_after);
      REQUIRE(out[i].reset_after == d.reset_after);
      REQUIRE(out[i].limit == d.limit);
      REQUIRE(out[i].reason == d.reason);
      expected_allowed += d.allowed ? 1U : 0U;
    }
    REQUIRE(allowed == expected_allowed);
    allowed_total += allowed;
    const auto step = std::chrono::milliseconds(rng() % 300);
    batch_clock.advance(step);
    single_clock.advance(step);
  }
  REQUIRE(batched.stats().keys == single.stats().keys);
  CHECK(allowed_total > 1000);  // the traffic was not all refused
}

TEST_CASE("rate_limiter try_acquire_many takes strings, spans and caller time, and checks its output size",
          "[rate_limiter][batch][api]") {
  manual_clock clock;
  test_limiter<gcra> limiter{rate_limit{2, 1s}, clock};
  const std::vector<std::string> keys{"a", "b", "a", "a"};
  std::vector<decision> out(keys.size());
  REQUIRE(limiter.try_acquire_many(keys, out) == 3);
  CHECK((out[0].allowed && out[1].allowed && out[2].allowed && !out[3].allowed));
  const std::array<std::string_view, 2> views{"b", "c"};
  std::array<decision, 2> two{};
  REQUIRE(limiter.try_acquire_many(std::span<const std::string_view>(views), two, 1, clock.now()) == 2);
  std::vector<decision> short_out(3);
  REQUIRE_THROWS_AS(limiter.try_acquire_many(keys, short_out), std::invalid_argument);
  REQUIRE_THROWS_WITH(limiter.try_acquire_many(keys, short_out), Catch::Matchers::Contains("out"));
  std::vector<decision> none;
  REQUIRE(limiter.try_acquire_many(std::vector<std::string>{}, none) == 0);
  // A cost above the limit is refused for every key and changes nothing.
  REQUIRE(limiter.try_acquire_many(keys, out, 3) == 0);
  for (const decision& d : out) REQUIRE(d.reason == refusal::cost_exceeds_limit);
  REQUIRE(limiter.try_acquire(std::string_view("c")).allowed);
}

TEMPLATE_TEST_CASE("rate_limiter treats string, string_view and integer keys by their bytes", "[rate_limiter][api]",
                   sliding_window_log, gcra) {
  manual_clock clock;
  test_limiter<TestType> limiter{rate_limit{1, 1s}, clock};
  REQUIRE(limiter.try_acquire(std::string("k")).allowed);
  REQUIRE_FALSE(limiter.try_acquire(std::string_view("k")).allowed);  // same bytes, same key
  REQUIRE(limiter.try_acquire(std::uint32_t{1}).allowed);
  REQUIRE(limiter.try_acquire(std::uint64_t{1}).allowed);  // different bytes
  REQUIRE(limiter.stats().keys == 3);
}

TEST_CASE("rate_limiter gives every key of up to 8 bytes its own fingerprint (length included)",
          "[rate_limiter][api]") {
  // Short keys are mapped one-to-one (no hash collision is possible): every byte string of
  // length 0-2, and random strings of length 3-8 that differ in one byte or only in length.
  const auto seed = distkit_test::test_seed("rate_limiter short-key fingerprints");
  std::mt19937_64 rng(seed);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> seen;
  const auto add = [&](std::string_view bytes) {
    const auto fp = distkit::detail::make_fingerprint(bytes.data(), bytes.size());
    REQUIRE((fp.lo & 1U) == 1U);  // never the empty-slot marker
    seen.emplace_back(fp.lo, fp.hi);
  };
  add({});
  for (int a = 0; a < 256; ++a) {
    const char one[1] = {static_cast<char>(a)};
    add({one, 1});
    for (int b = 0; b < 256; ++b) {
      const char two[2] = {static_cast<char>(a), static_cast<char>(b)};
      add({two, 2});
    }
  }
  for (int i = 0; i < 20000; ++i) {
    std::array<char, 8> bytes{};
    for (char& c : bytes) c = static_cast<char>(rng() % 4);  // few values: many near-equal keys
    const std::size_t size = 3 + rng() % 6;
    add({bytes.data(), size});
    std::array<char, 8> other = bytes;
    other[rng() % size] ^= static_cast<char>(1 + rng() % 255);
    add({other.data(), size});
    if (size < 8 && bytes[size - 1] == 0) add({bytes.data(), size + 1});  // the same value, one byte longer
  }
  std::sort(seen.begin(), seen.end());
  const auto distinct = static_cast<std::size_t>(std::unique(seen.begin(), seen.end()) - seen.begin());
  // Equal fingerprints may only come from equal byte strings drawn twice: count those directly.
  std::vector<std::string> strings;
  std::mt19937_64 replay(seed);
  strings.emplace_back();
  for (int a = 0; a < 256; ++a) {
    strings.emplace_back(1, static_cast<char>(a));
    for (int b = 0; b < 256; ++b) strings.push_back(std::string{static_cast<char>(a), static_cast<char>(b)});
  }
  for (int i = 0; i < 20000; ++i) {
    std::array<char, 8> bytes{};
    for (char& c : bytes) c = static_cast<char>(replay() % 4);
    const std::size_t size = 3 + replay() % 6;
    strings.emplace_back(bytes.data(), size);
    std::array<char, 8> other = bytes;
    other[replay() % size] ^= static_cast<char>(1 + replay() % 255);
    strings.emplace_back(other.data(), size);
    if (size < 8 && bytes[size - 1] == 0) strings.emplace_back(bytes.data(), size + 1);
  }
  std::sort(strings.begin(), strings.end());
  const auto distinct_strings = static_cast<std::size_t>(std::unique(strings.begin(), strings.end()) - strings.begin());
  REQUIRE(strings.size() == seen.size());
  REQUIRE(distinct == distinct_strings);
}

TEST_CASE("rate_limiter table arena hands out disjoint blocks and gives empty chunks back", "[rate_limiter][memory]") {
  auto& arena = distkit::detail::table_arena::instance();
  const std::size_t before = arena.chunks();
  const auto seed = distkit_test::test_seed("rate_limiter table arena");
  std::mt19937_64 rng(seed);
  // Block sizes as tables use them: 2^k slots of 24 or 32 bytes, from 64 KiB to just under 2 MiB.
  const std::array<std::size_t, 4> sizes{std::size_t{64} << 10, 24 * (std::size_t{1} << 13), std::size_t{1} << 20,
                                         24 * (std::size_t{1} << 16)};
  struct block {
    unsigned char* p;
    std::size_t size;
    unsigned char tag;
  };
  std::vector<block> live;
  for (int i = 0; i < 200; ++i) {
    const std::size_t size = sizes[rng() % sizes.size()];
    auto* p = static_cast<unsigned char*>(arena.allocate(size));
    REQUIRE(reinterpret_cast<std::uintptr_t>(p) % 64 == 0);
    const auto tag = static_cast<unsigned char>(i);
    std::fill(p, p + size, tag);
    live.push_back({p, size, tag});
    if (rng() % 3 == 0) {  // free a random live block, after checking nothing overwrote it
      const std::size_t k = rng() % live.size();
      REQUIRE(std::all_of(live[k].p, live[k].p + live[k].size, [&](unsigned char c) { return c == live[k].tag; }));
      arena.deallocate(live[k].p, live[k].size);
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
    }
  }
  REQUIRE(arena.chunks() > before);
  for (const block& b : live) {
    REQUIRE(std::all_of(b.p, b.p + b.size, [&](unsigned char c) { return c == b.tag; }));
    arena.deallocate(b.p, b.size);
  }
  REQUIRE(arena.chunks() == before);
}

TEST_CASE("rate_limiter gives its arena chunks back when the limiter goes", "[rate_limiter][memory]") {
  auto& arena = distkit::detail::table_arena::instance();
  const std::size_t before = arena.chunks();
  {
    manual_clock clock;
    test_limiter<gcra> limiter{rate_limit{10, 1s}, clock};
    std::size_t allowed = 0;
    for (std::uint64_t k = 0; k < 1'000'000; ++k) allowed += limiter.try_acquire(k).allowed ? 1 : 0;
    REQUIRE(allowed == 1'000'000);  // 256 tables of 8192 slots (192 KiB): all from the arena
    REQUIRE(arena.chunks() > before);
  }
  REQUIRE(arena.chunks() == before);
}

TEMPLATE_TEST_CASE("rate_limiter answers retry_after, reset_after and remaining exactly", "[rate_limiter][property]",
                   sliding_window_log, sliding_window_counter, gcra, fixed_window) {
  const auto seed = distkit_test::test_seed("rate_limiter exact answers " + std::string(TestType::name));
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 40; ++round) {
    const std::uint64_t limit = 1 + rng() % 12;
    const std::int64_t window = static_cast<std::int64_t>(limit) * (1 + static_cast<std::int64_t>(rng() % 1000));
    const limit_params p = limit_params::from(rate_limit{limit, std::chrono::nanoseconds(window)});
    typename TestType::state s;
    std::int64_t now = static_cast<std::int64_t>(rng() % 10'000);
    for (int step = 0; step < 200; ++step) {
      now += static_cast<std::int64_t>(rng() %
                                       static_cast<std::uint64_t>(2 * window / static_cast<std::int64_t>(limit) + 1));
      const std::uint64_t cost = rng() % 4 == 0 ? rng() % (limit + 1) : 1;
      const decision d = TestType::acquire(s, p, now, cost);
      if (!d.allowed) {
        REQUIRE(d.retry_after > 0ns);
        auto early = clone<TestType>(s);
        REQUIRE_FALSE(TestType::acquire(early, p, now + d.retry_after.count() - 1, cost).allowed);
        auto on_time = clone<TestType>(s);
        REQUIRE(TestType::acquire(on_time, p, now + d.retry_after.count(), cost).allowed);
      }
      // `remaining` unit requests pass right now, and not one more.
      auto probe = clone<TestType>(s);
      for (std::uint64_t i = 0; i < d.remaining; ++i) REQUIRE(TestType::acquire(probe, p, now, 1).allowed);
      REQUIRE_FALSE(TestType::acquire(probe, p, now, 1).allowed);
      // After reset_after the key is as good as new.
      if (d.reset_after > 0ns) {
        REQUIRE_FALSE(TestType::idle(s, p, now + d.reset_after.count() - 1));
        REQUIRE(TestType::idle(s, p, now + d.reset_after.count()));
      }
    }
  }
}

TEST_CASE("rate_limiter sliding_window_log never admits more than the limit in any window (brute-force model)",
          "[rate_limiter][sliding_window_log][property]") {
  const auto seed = distkit_test::test_seed("rate_limiter sliding_window_log vs brute force");
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 30; ++round) {
    const std::uint64_t limit = 1 + rng() % 20;
    const auto window = std::chrono::nanoseconds(static_cast<std::int64_t>(limit) * (1 + rng() % 1'000'000));
    manual_clock clock;
    test_limiter<sliding_window_log> limiter{rate_limit{limit, window}, clock};
    constexpr int keys = 4;
    std::vector<log_model> models(keys, log_model{limit_params::from(rate_limit{limit, window}), {}});
    const auto mean_gap = static_cast<std::uint64_t>(window.count()) / limit;
    for (int step = 0; step < 1500; ++step) {
      clock.advance(std::chrono::nanoseconds(rng() % (2 * mean_gap + 1)));
      const auto key = static_cast<std::uint32_t>(rng() % keys);
      const std::uint64_t cost = rng() % 5 == 0 ? rng() % (limit + 1) : 1;
      const decision got = limiter.try_acquire(key, cost);
      const decision want = models[key].acquire(clock.now().time_since_epoch().count(), cost);
      require_same(got, want);
    }
    for (const log_model& m : models) {
      // Every window (t - w, t] ending at an admission holds at most `limit` admitted units.
      std::size_t first = 0;
      for (std::size_t i = 0; i < m.admitted.size(); ++i) {
        while (m.admitted[first] <= m.admitted[i] - window.count()) ++first;
        REQUIRE(i - first + 1 <= limit);
      }
    }
  }
}

TEST_CASE("rate_limiter gcra matches a token-bucket model exactly", "[rate_limiter][gcra][property]") {
  const auto seed = distkit_test::test_seed("rate_limiter gcra vs token bucket");
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 30; ++round) {
    const std::uint64_t limit = 1 + rng() % 50;
    const auto window =
        std::chrono::nanoseconds(static_cast<std::int64_t>(limit) + static_cast<std::int64_t>(rng() % 10'000'000));
    manual_clock clock;
    clock.advance(std::chrono::nanoseconds(rng() % 1'000'000));
    test_limiter<gcra> limiter{rate_limit{limit, window}, clock};
    token_bucket_model model{limit_params::from(rate_limit{limit, window})};
    const auto mean_gap = static_cast<std::uint64_t>(window.count()) / limit;
    for (int step = 0; step < 3000; ++step) {
      clock.advance(std::chrono::nanoseconds(rng() % (2 * mean_gap + 1)));
      const std::uint64_t cost = rng() % 6 == 0 ? rng() % (limit + 1) : 1;
      const decision got = limiter.try_acquire(std::string_view("bucket"), cost);
      const decision want = model.acquire(clock.now().time_since_epoch().count(), cost);
      require_same(got, want);
    }
  }
}

TEST_CASE("rate_limiter sliding_window_counter stays within its analytical error bound vs the exact log",
          "[rate_limiter][sliding_window_counter][property]") {
  // The counter's estimate E = previous * (w - e) / w + current, for the traffic it admitted,
  // differs from the exact count L of that traffic in (t - w, t] by at most
  // -previous * e / w <= E - L <= previous * (w - e) / w. So it admits a request only when
  // L + cost <= limit + previous * e / w, and refuses only when L + cost > limit - previous * (w - e) / w.
  const auto seed = distkit_test::test_seed("rate_limiter sliding_window_counter error bound");
  std::mt19937_64 rng(seed);
  double error_sum = 0;
  double samples = 0;
  for (int round = 0; round < 20; ++round) {
    const std::uint64_t limit = 10 + rng() % 200;
    const std::int64_t w = static_cast<std::int64_t>(limit) * (1000 + static_cast<std::int64_t>(rng() % 100'000));
    manual_clock clock;
    test_limiter<sliding_window_counter> limiter{rate_limit{limit, std::chrono::nanoseconds(w)}, clock};
    std::vector<std::int64_t> admitted;
    std::size_t first = 0;  // admitted[first..] are at or after the previous window's start
    // Offered load between 0.5x and 3x the limit.
    const double load = 0.5 + static_cast<double>(rng() % 250) / 100.0;
    std::exponential_distribution<double> gap(load * static_cast<double>(limit) / static_cast<double>(w));
    std::int64_t now = 0;
    for (int step = 0; step < 4000; ++step) {
      now += static_cast<std::int64_t>(gap(rng));
      clock.set(at(now));
      const std::uint64_t cost = 1 + rng() % 3;
      const std::int64_t ws = now / w * w;
      const std::int64_t e = now - ws;
      std::int64_t previous = 0;
      std::int64_t current = 0;
      std::int64_t exact = 0;
      while (first < admitted.size() && admitted[first] < ws - w) ++first;
      for (std::size_t i = first; i < admitted.size(); ++i) {
        const std::int64_t t = admitted[i];
        if (t >= ws - w && t < ws) ++previous;
        if (t >= ws) ++current;
        if (t > now - w) ++exact;
      }
      // Everything scaled by w, in integers: E * w and L * w.
      const std::int64_t estimate_w = previous * (w - e) + current * w;
      const std::int64_t exact_w = exact * w;
      const auto lim_w = static_cast<std::int64_t>(limit) * w;
      const auto cost_w = static_cast<std::int64_t>(cost) * w;
      REQUIRE(estimate_w - exact_w >= -previous * e);
      REQUIRE(estimate_w - exact_w <= previous * (w - e));
      const decision d = limiter.try_acquire(std::string_view("k"), cost);
      // The decision is the estimate's: allowed iff E + cost <= limit.
      REQUIRE(d.allowed == (estimate_w + cost_w <= lim_w));
      if (d.allowed) {
        REQUIRE(exact_w + cost_w <= lim_w + previous * e);
        for (std::uint64_t i = 0; i < cost; ++i) admitted.push_back(now);
      } else {
        REQUIRE(exact_w + cost_w > lim_w - previous * (w - e));
      }
      const double lim = static_cast<double>(limit);
      const double estimate = static_cast<double>(estimate_w) / static_cast<double>(w);
      error_sum += std::abs(estimate - static_cast<double>(exact)) / lim;
      samples += 1;
    }
  }
  std::cout << "[counter] mean |estimate - exact| = " << 100.0 * error_sum / samples << "% of the limit over "
            << samples << " decisions\n";
}

TEMPLATE_TEST_CASE("rate_limiter boundary burst: fixed_window admits twice the limit, sliding ones do not",
                   "[rate_limiter][boundary]", sliding_window_log, sliding_window_counter, gcra, fixed_window) {
  constexpr std::uint64_t limit = 100;
  manual_clock clock;
  test_limiter<TestType> limiter{rate_limit{limit, 1s}, clock};
  // A burst at the very end of one window, then another at the start of the next: 2 ms apart.
  clock.set(at(999'000'000));
  std::uint64_t admitted = 0;
  for (std::uint64_t i = 0; i < 2 * limit; ++i) admitted += limiter.try_acquire(std::string_view("k")).allowed ? 1 : 0;
  clock.set(at(1'001'000'000));
  for (std::uint64_t i = 0; i < 2 * limit; ++i) admitted += limiter.try_acquire(std::string_view("k")).allowed ? 1 : 0;
  if constexpr (std::is_same_v<TestType, fixed_window>) {
    REQUIRE(admitted == 2 * limit);  // the documented weakness
  } else if constexpr (std::is_same_v<TestType, sliding_window_counter>) {
    REQUIRE(admitted == limit);  // the previous window weighs 99.9%: nothing more passes
  } else if constexpr (std::is_same_v<TestType, gcra>) {
    REQUIRE(admitted == limit);  // 2 ms refill at 100/s: not one whole token
  } else {
    REQUIRE(admitted == limit);
  }
}

TEMPLATE_TEST_CASE("rate_limiter evicts idle keys so memory follows active keys", "[rate_limiter][eviction]",
                   sliding_window_log, sliding_window_counter, gcra, fixed_window) {
  constexpr std::uint64_t keys = DISTKIT_TEST_SANITIZED ? 50'000 : 300'000;
  manual_clock clock;
  test_limiter<TestType> limiter{rate_limit{10, 1s}, clock};
  const auto empty = limiter.stats();
  for (std::uint64_t k = 0; k < keys; ++k) REQUIRE(limiter.try_acquire(k, 10).allowed);  // a full window each
  const auto full = limiter.stats();
  REQUIRE(full.keys == keys);
  REQUIRE(full.bytes > keys * distkit::local_store<TestType>::bytes_per_key);
  // Still active: nothing is evicted.
  clock.advance(500ms);
  REQUIRE(limiter.evict_idle() == 0);
  REQUIRE(limiter.stats().keys == keys);
  // Every key is idle after two windows: all go, and the tables shrink back.
  clock.advance(2s);
  REQUIRE(limiter.evict_idle() == keys);
  const auto after = limiter.stats();
  REQUIRE(after.keys == 0);
  REQUIRE(after.capacity == empty.capacity);
  REQUIRE(after.bytes == empty.bytes);
  // An evicted key starts afresh.
  REQUIRE(limiter.try_acquire(std::uint64_t{5}, 10).allowed);
}

TEMPLATE_TEST_CASE("rate_limiter keeps memory bounded under churn of distinct keys without explicit eviction",
                   "[rate_limiter][eviction]", sliding_window_log, sliding_window_counter, gcra, fixed_window) {
  constexpr std::uint64_t per_window = DISTKIT_TEST_SANITIZED ? 5'000 : 20'000;
  constexpr int windows = 40;
  manual_clock clock;
  test_limiter<TestType> limiter{rate_limit{10, 1s}, clock};
  std::uint64_t next_key = 0;
  std::size_t max_keys = 0;
  std::size_t max_capacity = 0;
  for (int win = 0; win < windows; ++win) {
    for (std::uint64_t i = 0; i < per_window; ++i) {
      clock.advance(std::chrono::nanoseconds(1s) / per_window);
      REQUIRE(limiter.try_acquire(next_key++).allowed);
    }
    const auto st = limiter.stats();
    max_keys = std::max(max_keys, st.keys);
    if (win >= windows / 2) max_capacity = std::max(max_capacity, st.capacity);
  }
  std::cout << "[churn] " << TestType::name << ": " << next_key << " distinct keys, at most " << max_keys
            << " held (active: <= " << 2 * per_window << "), capacity " << max_capacity << " slots\n";
  // At most two windows of keys are active; idle ones are swept before a table grows, so the
  // tables hold a small multiple of the active keys, never the 40 windows' worth.
  REQUIRE(max_keys <= 4 * 2 * per_window);
  REQUIRE(max_capacity <= 16 * 2 * per_window);
}

TEST_CASE("rate_limiter forgets 10M distinct keys once they go idle", "[rate_limiter][eviction]") {
  // 10M GCRA keys take 384 MiB of slots and a few seconds at -O2; sanitizer builds run 1M.
  // (The other algorithms run the same check with fewer keys above.)
  using TestType = gcra;
  constexpr std::uint64_t keys = DISTKIT_TEST_SANITIZED ? 1'000'000 : 10'000'000;
  manual_clock clock;
  test_limiter<TestType> limiter{rate_limit{100, 1min}, clock};
  const auto empty = limiter.stats();
  std::uint64_t allowed = 0;
  for (std::uint64_t k = 0; k < keys; ++k) allowed += limiter.try_acquire(k, 1, clock.now()).allowed ? 1 : 0;
  REQUIRE(allowed == keys);
  const auto full = limiter.stats();
  REQUIRE(full.keys == keys);
  std::cout << "[10M] " << TestType::name << ": " << keys << " keys held in " << full.bytes / (1024 * 1024) << " MiB ("
            << distkit::local_store<TestType>::bytes_per_key << " bytes per slot, " << full.capacity << " slots)\n";
  clock.advance(3min);
  REQUIRE(limiter.evict_idle() == keys);
  const auto after = limiter.stats();
  REQUIRE(after.keys == 0);
  REQUIRE(after.bytes == empty.bytes);
}

TEST_CASE("rate_limiter format_headers follows the IETF RateLimit fields and Retry-After", "[rate_limiter][http]") {
  manual_clock clock;
  const rate_limit policy{2, 60s};
  test_limiter<fixed_window> limiter{policy, clock};
  const decision first = limiter.try_acquire(std::string_view("ip:10.0.0.1"));
  auto h = distkit::format_headers(first, policy, "per-ip");
  REQUIRE(h.status == 200);
  REQUIRE(h.retry_after.empty());
  REQUIRE(h.policy == "\"per-ip\";q=2;w=60");
  REQUIRE(h.ratelimit == "\"per-ip\";r=1;t=60");
  (void)limiter.try_acquire(std::string_view("ip:10.0.0.1"));
  clock.advance(std::chrono::milliseconds(12'500));
  const decision refused = limiter.try_acquire(std::string_view("ip:10.0.0.1"));
  h = distkit::format_headers(refused, policy, "per-ip");
  REQUIRE(h.status == 429);
  REQUIRE(h.retry_after == "48");  // 47.5 s rounded up
  REQUIRE(h.ratelimit == "\"per-ip\";r=0;t=48");
  const decision huge = limiter.try_acquire(std::string_view("other"), 3);
  h = distkit::format_headers(huge, policy);
  REQUIRE(h.status == 429);
  REQUIRE(h.retry_after.empty());
  REQUIRE(h.policy == "\"default\";q=2;w=60");
  REQUIRE(distkit::format_headers(first, policy, "a\"b").policy == "\"a\\\"b\";q=2;w=60");
  decision down;
  down.reason = refusal::store_unavailable;
  down.retry_after = 1s;
  REQUIRE(distkit::format_headers(down, policy).status == 503);
  REQUIRE(distkit::format_headers(down, policy).retry_after == "1");
}

// ---- regressions: an earlier now, cost above the limit, extreme times, the documented bounds ----

TEST_CASE("rate_limiter gcra counts a now older than its state as the earliest time the state allows",
          "[rate_limiter][gcra]") {
  manual_clock clock;
  test_limiter<gcra> limiter{rate_limit{10, 10s}, clock};
  const auto later = at(100'000'000'000);  // 100 s
  REQUIRE(limiter.try_acquire(std::string_view("k"), 10, later).allowed);
  // 20 s earlier than the key's state: more than one emission interval (1 s) back.
  for (std::int64_t back : {1'000'000'001LL, 5'000'000'000LL, 20'000'000'000LL, 99'000'000'000LL}) {
    CAPTURE(back);
    const decision d = limiter.try_acquire(std::string_view("k"), 1, later - std::chrono::nanoseconds(back));
    CHECK_FALSE(d.allowed);
    CHECK(d.remaining <= 10);
    CHECK(d.remaining == 0);
    CHECK(d.retry_after > 0ns);
    CHECK(d.retry_after <= 10s);
    CHECK(d.reset_after <= 10s);
  }
  // The same through a batch.
  std::vector<std::string> keys{"k", "k"};
  std::vector<decision> out(2);
  CHECK(limiter.try_acquire_many(keys, out, 1, at(1)) == 0);
  for (const decision& d : out) CHECK(d.remaining <= 10);
  // And a fresh key told an old time after a newer one: the state never answers more than the limit.
  REQUIRE(limiter.try_acquire(std::string_view("j"), 3, at(50'000'000'000)).allowed);
  const decision old = limiter.try_acquire(std::string_view("j"), 1, at(0));
  CHECK(old.remaining <= 10);
}

TEMPLATE_TEST_CASE("rate_limiter answers the key's real remaining and reset when the cost exceeds the limit",
                   "[rate_limiter]", sliding_window_log, sliding_window_counter, gcra, fixed_window) {
  manual_clock clock;
  test_limiter<TestType> limiter{rate_limit{10, 10s}, clock};
  const decision fresh = limiter.try_acquire(std::string_view("k"), 11);
  CHECK_FALSE(fresh.allowed);
  CHECK(fresh.reason == refusal::cost_exceeds_limit);
  CHECK(fresh.remaining == 10);
  CHECK(fresh.reset_after == 0ns);
  CHECK(fresh.retry_after == std::chrono::nanoseconds::max());
  REQUIRE(limiter.try_acquire(std::string_view("k"), 4).allowed);
  const decision used = limiter.try_acquire(std::string_view("k"), 11);
  CHECK(used.reason == refusal::cost_exceeds_limit);
  CHECK(used.remaining == 6);
  CHECK(used.reset_after > 0ns);
  // The refusal changed nothing: 6 units still pass.
  std::uint64_t passed = 0;
  while (limiter.try_acquire(std::string_view("k")).allowed) ++passed;
  CHECK(passed == 6);
  const auto headers = distkit::format_headers(used, limiter.policy());
  CHECK(headers.ratelimit.find(";r=6;t=") != std::string::npos);
  CHECK(headers.ratelimit.find(";t=0") == std::string::npos);
  std::vector<std::string> keys{"k", "other"};
  std::vector<decision> out(2);
  CHECK(limiter.try_acquire_many(keys, out, 11) == 0);
  CHECK(out[0].remaining == 0);
  CHECK(out[1].remaining == 10);
}

namespace {
// A time source in whole seconds, whose extreme time points do not fit in int64 nanoseconds.
struct seconds_time {
  using duration = std::chrono::seconds;
  using time_point = std::chrono::time_point<seconds_time, duration>;
  [[nodiscard]] auto now() const noexcept -> time_point { return time_point(duration(0)); }
};
}  // namespace

TEMPLATE_TEST_CASE("rate_limiter stays defined at the extreme time points of any clock", "[rate_limiter][time]",
                   sliding_window_log, sliding_window_counter, gcra, fixed_window) {
  using ns_point = manual_clock::time_point;
  manual_clock clock;
  test_limiter<TestType> limiter{rate_limit{5, 1s}, clock};
  for (const ns_point t :
       {ns_point::min(), ns_point::min() + 1ns, ns_point{}, ns_point::max() - 1ns, ns_point::max()}) {
    const decision first = limiter.try_acquire(std::string_view("k"), 5, t);
    CHECK(first.remaining <= 5);
    const decision second = limiter.try_acquire(std::string_view("k"), 1, t);
    CHECK(second.remaining <= 5);
    CHECK(second.retry_after >= 0ns);
    CHECK(second.reset_after >= 0ns);
    (void)limiter.try_acquire(std::string_view("k"), 6, t);
  }
  // Time going forward to the end of the clock, with many keys (sweeps compute idle times).
  for (int i = 0; i < 200; ++i) (void)limiter.try_acquire(i, 1, ns_point::max());
  (void)limiter.evict_idle();
  distkit::rate_limiter<TestType, seconds_time> coarse{rate_limit{5, 1s}};
  using s_point = seconds_time::time_point;
  for (const s_point t : {s_point::min(), s_point{}, s_point::max()}) {
    const decision d = coarse.try_acquire(std::string_view("k"), 1, t);
    CHECK(d.remaining <= 5);
  }
  // The largest time still answers like a normal one: a burst of the limit, then a refusal.
  test_limiter<TestType> late{rate_limit{5, 1s}, clock};
  CHECK(late.try_acquire(std::string_view("x"), 5, ns_point::max()).allowed);
  CHECK_FALSE(late.try_acquire(std::string_view("x"), 1, ns_point::max()).allowed);
}

TEST_CASE(
    "rate_limiter gcra admits limit + ceil(window / interval) - 1 in one window (2 * limit when limit^2 ns <= window)",
    "[rate_limiter][gcra][property]") {
  // Brute force: admit greedily (every nanosecond a request is allowed, take it) and count the
  // most units inside any window (t - window, t]. A token bucket's worst case is a full burst
  // followed by one unit per interval.
  const auto most_in_a_window = [](std::uint64_t limit, std::int64_t window) {
    const limit_params p = limit_params::from(rate_limit{limit, std::chrono::nanoseconds(window)});
    gcra::state s;
    std::vector<std::int64_t> admitted;
    for (std::int64_t t = 0; t < 3 * window; ++t) {
      while (gcra::acquire(s, p, t, 1).allowed) admitted.push_back(t);
    }
    std::size_t most = 0;
    std::size_t first = 0;
    for (std::size_t i = 0; i < admitted.size(); ++i) {
      while (admitted[first] <= admitted[i] - window) ++first;
      most = std::max(most, i - first + 1);
    }
    return static_cast<std::uint64_t>(most);
  };
  for (std::uint64_t limit = 1; limit <= 9; ++limit) {
    for (std::int64_t window = static_cast<std::int64_t>(limit); window <= 120; ++window) {
      CAPTURE(limit, window);
      const std::uint64_t most = most_in_a_window(limit, window);
      // A burst of `limit`, then one unit per interval: the README's bound, exactly.
      const auto l = static_cast<std::int64_t>(limit);
      const std::int64_t interval = window / l;
      const std::int64_t r = window % l;
      const auto bound = static_cast<std::uint64_t>(l + (window + interval - 1) / interval - 1);
      CHECK(most == bound);
      if (r == 0) {
        CHECK(most == 2 * limit - 1);
      } else if (r <= interval) {
        CHECK(most == 2 * limit);  // not 2 * limit - 1, as the README said before
      } else {
        CHECK(most > 2 * limit);  // tiny windows: less than limit^2 ns
      }
    }
  }
}

TEST_CASE("rate_limiter sliding_window_counter can exceed the limit by previous * elapsed / window, not more",
          "[rate_limiter][sliding_window_counter]") {
  // 10 units at the very end of window 0; at 80% of window 1 the carried weight is 10 * 0.2 = 2,
  // so 8 more pass: 18 units in the sliding window (80, 180], 8 = previous * elapsed / window
  // over the limit (more than the previous * (window - elapsed) / window = 2 an estimate that
  // erred only upwards would allow).
  manual_clock clock;
  test_limiter<sliding_window_counter> limiter{rate_limit{10, 100ns}, clock};
  REQUIRE(limiter.try_acquire(std::string_view("k"), 10, at(99)).allowed);
  std::uint64_t passed = 0;
  while (limiter.try_acquire(std::string_view("k"), 1, at(180)).allowed) ++passed;
  CHECK(passed == 8);
  CHECK(10 + passed == 10 + 10 * 80 / 100);
  CHECK(10 + passed > 10 + 10 * 20 / 100);
}
