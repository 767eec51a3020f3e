// SPDX-License-Identifier: MIT
// Tests of the metrics policies of the circuit breaker and the rate limiter: the default policy
// takes no space, the registry policies count every call, refusal, transition and decision,
// and what they expose passes promtool.
#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "distkit/clock.hpp"
#include "distkit/metrics/circuit_breaker.hpp"
#include "distkit/metrics/pipeline.hpp"
#include "distkit/metrics/rate_limiter.hpp"
#include "distkit/metrics/worker_pool.hpp"

using namespace std::chrono_literals;
using distkit::breaker_state;

namespace {

using metered_breaker =
    distkit::circuit_breaker<distkit::count_window, distkit::manual_clock, distkit::breaker_registry_metrics>;
using metered_limiter = distkit::rate_limiter<distkit::gcra, distkit::manual_clock, distkit::local_store<distkit::gcra>,
                                              distkit::limiter_registry_metrics>;

auto sample(const std::string& text, const std::string& series) -> std::string {
  const std::string::size_type at = text.find(series + " ");
  if (at == std::string::npos) return "<absent>";
  const auto start = at + series.size() + 1;
  return text.substr(start, text.find('\n', start) - start);
}

}  // namespace

// The default policies are empty types stored [[no_unique_address]]: a limiter is its store.
static_assert(std::is_empty_v<distkit::breaker_no_metrics>);
static_assert(std::is_empty_v<distkit::limiter_no_metrics>);
static_assert(sizeof(distkit::rate_limiter<distkit::gcra>) == sizeof(distkit::local_store<distkit::gcra>));
static_assert(
    std::is_same_v<distkit::circuit_breaker<>,
                   distkit::circuit_breaker<distkit::count_window, distkit::steady_time, distkit::breaker_no_metrics>>);

TEST_CASE("metrics breaker policy counts calls by outcome, refusals and transitions", "[metrics][circuit_breaker]") {
  distkit::metrics_registry reg;
  distkit::manual_clock clock;
  metered_breaker breaker{{.slow_call_duration_threshold = 1s,
                           .minimum_number_of_calls = 10,
                           .sliding_window_size = 100,
                           .permitted_number_of_calls_in_half_open_state = 2,
                           .wait_duration_in_open_state = 10s,
                           .ignore_exception =
                               [](const std::exception_ptr& e) {
                                 try {
                                   std::rethrow_exception(e);
                                 } catch (const std::invalid_argument&) {
                                   return true;
                                 } catch (...) {
                                   return false;
                                 }
                               }},
                          clock,
                          {reg, "payments"}};
  const auto metric = [&](const std::string& series) { return sample(reg.to_prometheus(), series); };
  CHECK(metric("distkit_circuit_breaker_state{breaker=\"payments\",state=\"closed\"}") == "1");

  for (int i = 0; i < 3; ++i) breaker.try_acquire()->record_success(1ms);
  breaker.try_acquire()->record_success(2s);  // slow
  CHECK_THROWS_AS(breaker.call([]() -> int { throw std::invalid_argument("ignored"); }), std::invalid_argument);
  for (int i = 0; i < 6; ++i) breaker.try_acquire()->record_failure(1ms);  // 6 of 10 failed: opens
  REQUIRE(breaker.state() == breaker_state::open);
  CHECK_FALSE(breaker.try_acquire().has_value());
  CHECK_FALSE(breaker.try_acquire().has_value());

  const std::string c = "distkit_circuit_breaker_calls_total{breaker=\"payments\",outcome=";
  CHECK(metric(c + "\"success\"}") == "3");
  CHECK(metric(c + "\"slow_success\"}") == "1");
  CHECK(metric(c + "\"failure\"}") == "6");
  CHECK(metric(c + "\"slow_failure\"}") == "0");
  CHECK(metric(c + "\"ignored\"}") == "1");
  CHECK(metric(c + "\"not_permitted\"}") == "2");
  CHECK(metric("distkit_circuit_breaker_transitions_total{breaker=\"payments\",to=\"open\"}") == "1");
  CHECK(metric("distkit_circuit_breaker_state{breaker=\"payments\",state=\"closed\"}") == "0");
  CHECK(metric("distkit_circuit_breaker_state{breaker=\"payments\",state=\"open\"}") == "1");

  clock.advance(11s);
  for (int i = 0; i < 2; ++i) breaker.try_acquire()->record_success(1ms);  // probes pass: closed
  REQUIRE(breaker.state() == breaker_state::closed);
  CHECK(metric("distkit_circuit_breaker_transitions_total{breaker=\"payments\",to=\"half_open\"}") == "1");
  CHECK(metric("distkit_circuit_breaker_transitions_total{breaker=\"payments\",to=\"closed\"}") == "1");
  CHECK(metric("distkit_circuit_breaker_state{breaker=\"payments\",state=\"closed\"}") == "1");
  CHECK(metric("distkit_circuit_breaker_state{breaker=\"payments\",state=\"open\"}") == "0");
  CHECK(metric("distkit_circuit_breaker_state{breaker=\"payments\",state=\"half_open\"}") == "0");
  CHECK(metric(c + "\"success\"}") == "5");

  // Durations, by outcome: 3 x 1 ms + 2 s + 2 x 1 ms successes, 6 x 1 ms failures, and the
  // ignored call, which took no time on the manual clock.
  const std::string d = "distkit_circuit_breaker_call_duration_seconds";
  CHECK(metric(d + "_count{breaker=\"payments\",outcome=\"success\"}") == "6");
  CHECK(metric(d + "_sum{breaker=\"payments\",outcome=\"success\"}") == "2.005");
  CHECK(metric(d + "_count{breaker=\"payments\",outcome=\"failure\"}") == "6");
  CHECK(metric(d + "_sum{breaker=\"payments\",outcome=\"failure\"}") == "0.006");
  CHECK(metric(d + "_count{breaker=\"payments\",outcome=\"ignored\"}") == "1");
  CHECK(metric(d + "_sum{breaker=\"payments\",outcome=\"ignored\"}") == "0");
  // The 2 s success is the one above 1 s; five are at or below 5 ms.
  const std::string text = reg.to_prometheus();
  CHECK(text.find(d + "_bucket{breaker=\"payments\",outcome=\"success\",le=\"+Inf\"} 6") != std::string::npos);
  INFO(text);
  std::size_t at_or_below_5ms = 0;
  std::size_t at_or_below_1s = 0;
  for (std::size_t pos = text.find(d + "_bucket{breaker=\"payments\",outcome=\"success\",le=\"");
       pos != std::string::npos;
       pos = text.find(d + "_bucket{breaker=\"payments\",outcome=\"success\",le=\"", pos + 1)) {
    const std::size_t le_at = text.find("le=\"", pos) + 4;
    const std::string le = text.substr(le_at, text.find('"', le_at) - le_at);
    if (le == "+Inf") continue;
    const double bound = std::stod(le);
    const std::size_t value = std::stoul(text.substr(text.find("} ", pos) + 2));
    if (bound > 0.004 && bound < 0.006) at_or_below_5ms = value;
    if (bound > 0.99 && bound < 1.01) at_or_below_1s = value;
  }
  CHECK(at_or_below_5ms == 5);
  CHECK(at_or_below_1s == 5);
}

TEST_CASE("metrics breaker policy sees the initial state's transition", "[metrics][circuit_breaker]") {
  distkit::metrics_registry reg;
  metered_breaker breaker{{.initial_state = breaker_state::forced_open}, {}, {reg, "b"}};
  CHECK_FALSE(breaker.try_acquire().has_value());
  const std::string text = reg.to_prometheus();
  CHECK(sample(text, "distkit_circuit_breaker_state{breaker=\"b\",state=\"forced_open\"}") == "1");
  CHECK(sample(text, "distkit_circuit_breaker_state{breaker=\"b\",state=\"closed\"}") == "0");
  CHECK(sample(text, "distkit_circuit_breaker_calls_total{breaker=\"b\",outcome=\"not_permitted\"}") == "1");
}

TEST_CASE("metrics limiter policy counts decisions by outcome and reason", "[metrics][rate_limiter]") {
  distkit::metrics_registry reg;
  distkit::manual_clock clock;
  metered_limiter limiter{{.limit = 3, .window = 1s}, clock, {reg, "api"}};
  for (int i = 0; i < 5; ++i) (void)limiter.try_acquire("k");
  (void)limiter.try_acquire("k", 4);  // more than the limit
  std::vector<std::string> keys{"a", "b", "a", "a", "a"};
  std::vector<distkit::decision> out(keys.size());
  CHECK(limiter.try_acquire_many(keys, out) == 4);
  const std::string text = reg.to_prometheus();
  const std::string d = "distkit_rate_limiter_decisions_total{limiter=\"api\",";
  CHECK(sample(text, d + "decision=\"allowed\",reason=\"none\"}") == "7");
  CHECK(sample(text, d + "decision=\"denied\",reason=\"rate_limited\"}") == "3");
  CHECK(sample(text, d + "decision=\"denied\",reason=\"cost_exceeds_limit\"}") == "1");
  CHECK(sample(text, d + "decision=\"denied\",reason=\"store_unavailable\"}") == "0");
  CHECK(sample(text, d + "decision=\"allowed\",reason=\"store_unavailable\"}") == "0");
}

TEST_CASE("metrics of breakers, a limiter, a worker pool and a pipeline in one registry pass promtool check metrics",
          "[metrics][exposition][promtool]") {
  INFO("promtool comes with the Debian package `prometheus` (scripts/install-deps installs it)");
  REQUIRE(!std::string(DISTKIT_PROMTOOL).empty());
  distkit::metrics_registry reg;
  distkit::manual_clock clock;
  metered_breaker a{{}, clock, {reg, "payments"}};
  metered_breaker b{{}, clock, {reg, "ledger"}};
  metered_limiter limiter{{.limit = 3, .window = 1s}, clock, {reg, "api"}};
  a.try_acquire()->record_success(1ms);
  b.force_open();
  for (int i = 0; i < 5; ++i) (void)limiter.try_acquire(i);
  distkit::worker_pool<> pool{distkit::worker_pool_options{.threads = 1}};
  distkit::worker_pool_metrics pool_metrics{reg, pool, "handlers"};
  pool.post([] {});
  pool.wait_idle();
  int next = 0;
  auto ingest = distkit::make_pipeline(
      distkit::source([&]() -> std::optional<int> { return next < 10 ? std::optional(next++) : std::nullopt; }),
      distkit::sink(distkit::serial_in_order, [](int /*x*/) {}));
  distkit::pipeline_metrics ingest_metrics{reg, ingest, "ingest"};
  (void)ingest.run();
  const std::string path = std::string(DISTKIT_TEST_OUTPUT_DIR) + "/metrics_policies.prom";
  {
    std::ofstream out(path, std::ios::binary);
    out << reg.to_prometheus();
  }
  const std::string command = std::string(DISTKIT_PROMTOOL) + " check metrics < '" + path + "' 2>&1";
  std::FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string report;
  std::array<char, 512> buf{};
  while (std::fgets(buf.data(), static_cast<int>(buf.size()), pipe) != nullptr) report += buf.data();
  const int status = ::pclose(pipe);
  INFO("promtool on " << path << " said:\n" << report);
  CHECK(status == 0);
}
