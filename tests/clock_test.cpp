// SPDX-License-Identifier: MIT
#include <catch2/catch.hpp>

#include <chrono>
#include <thread>
#include <vector>

#include "distkit/clock.hpp"

using namespace std::chrono_literals;

TEST_CASE("manual_clock moves only when advanced and copies share one time", "[clock][manual]") {
  distkit::manual_clock clock;
  CHECK(clock.now().time_since_epoch() == 0ns);
  const distkit::manual_clock copy = clock;  // what a primitive under test would hold
  clock.advance(5s);
  CHECK(copy.now().time_since_epoch() == 5s);
  clock.advance(-3s);  // never backwards
  CHECK(clock.now().time_since_epoch() == 5s);
  clock.set(distkit::manual_clock::time_point(2s));  // earlier: ignored
  CHECK(clock.now().time_since_epoch() == 5s);
  clock.set(distkit::manual_clock::time_point(7s));
  CHECK(copy.now().time_since_epoch() == 7s);
  CHECK(distkit::manual_clock(distkit::manual_clock::time_point(1h)).now().time_since_epoch() == 1h);
}

TEST_CASE("manual_clock loses no advance made from many threads", "[clock][manual][concurrent]") {
  distkit::manual_clock clock;
  for (unsigned threads : {1U, 2U, 4U, 8U}) {
    const auto start = clock.now();
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t) {
      pool.emplace_back([clock]() mutable {
        for (int i = 0; i < 10'000; ++i) clock.advance(1ns);
      });
    }
    for (auto& th : pool) th.join();
    CHECK(clock.now() - start == std::chrono::nanoseconds(10'000 * threads));
  }
}

TEST_CASE("steady_time reads a clock that never goes backwards", "[clock][steady]") {
  const distkit::steady_time clock;
  auto previous = clock.now();
  for (int i = 0; i < 1000; ++i) {
    const auto t = clock.now();
    REQUIRE(t >= previous);
    previous = t;
  }
  STATIC_REQUIRE(distkit::time_source<distkit::steady_time>);
  STATIC_REQUIRE(distkit::time_source<distkit::manual_clock>);
}
