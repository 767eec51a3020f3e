// SPDX-License-Identifier: MIT
// Tests of distkit/metrics.hpp: counters, gauges, log-linear histograms (quantile error against
// exact quantiles of seeded random data), names and labels, and the exposition formats (checked
// by promtool, the Prometheus project's own linter).
//
// Compiled twice: normally, and with DISTKIT_METRICS_MUTATION_WRONG_BUCKET, where only the
// mutation case is built: it checks that the accuracy harness reports the wrong bucket index.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "distkit/metrics.hpp"
#include "support/seed.hpp"

namespace {

// Records `values` into a histogram and returns one line per quantile whose answer is further
// than the stated relative error from the exact quantile (the value of rank ceil(q*n) in sorted
// order). Empty when the histogram keeps its promise.
auto quantile_violations(const std::vector<std::uint64_t>& values) -> std::vector<std::string> {
  distkit::histogram h{{.max_value = std::numeric_limits<std::uint64_t>::max()}};
  for (const std::uint64_t v : values) h.observe(v);
  std::vector<std::uint64_t> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  const distkit::histogram_snapshot s = h.snapshot();
  std::vector<std::string> violations;
  if (s.count != values.size()) violations.push_back("count " + std::to_string(s.count));
  for (const double q : {0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0}) {
    const auto n = static_cast<double>(sorted.size());
    const auto rank = std::clamp<std::uint64_t>(static_cast<std::uint64_t>(std::ceil(q * n)), 1, sorted.size());
    const std::uint64_t exact = sorted[rank - 1];
    const std::uint64_t got = s.quantile(q);
    const double error = std::abs(static_cast<double>(got) - static_cast<double>(exact));
    if (error > distkit::log_linear_layout::relative_error * static_cast<double>(exact)) {
      violations.push_back("q=" + std::to_string(q) + " exact " + std::to_string(exact) + " got " +
                           std::to_string(got));
    }
  }
  return violations;
}

// Log-uniform values over [1, 2^max_bits): every magnitude is exercised.
auto log_uniform(std::mt19937_64& rng, std::size_t n, int max_bits) -> std::vector<std::uint64_t> {
  std::uniform_real_distribution<double> exponent(0.0, static_cast<double>(max_bits));
  std::vector<std::uint64_t> out(n);
  for (auto& v : out) v = static_cast<std::uint64_t>(std::exp2(exponent(rng)));
  return out;
}

#if !defined(DISTKIT_METRICS_MUTATION_WRONG_BUCKET)
// Writes `text` to a file in the build tree and runs `promtool check metrics` on it: its exit
// status and what it printed.
auto promtool_check(const std::string& text, const std::string& file) -> std::pair<int, std::string> {
  const std::string path = std::string(DISTKIT_TEST_OUTPUT_DIR) + "/" + file;
  {
    std::ofstream out(path, std::ios::binary);
    out << text;
  }
  const std::string command = std::string(DISTKIT_PROMTOOL) + " check metrics < '" + path + "' 2>&1";
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  std::string report;
  std::array<char, 512> buf{};
  while (std::fgets(buf.data(), static_cast<int>(buf.size()), pipe) != nullptr) report += buf.data();
  return {::pclose(pipe), report + "(on " + path + ")"};
}
#endif

}  // namespace

#if defined(DISTKIT_METRICS_MUTATION_WRONG_BUCKET)

TEST_CASE("metrics quantile harness reports a histogram whose bucket index is off by one", "[metrics][mutation]") {
  const std::uint64_t seed = distkit_test::test_seed("metrics mutation");
  std::mt19937_64 rng(seed);
  const auto violations = quantile_violations(log_uniform(rng, 20'000, 40));
  INFO("violations reported: " << violations.size());
  CHECK(!violations.empty());
}

#else

TEST_CASE("metrics counter sums the increments of every thread slot", "[metrics][counter]") {
  distkit::counter c;
  CHECK(c.value() == 0);
  c.inc();
  c.inc(41);
  CHECK(c.value() == 42);
}

TEST_CASE("metrics gauge adds, subtracts and sets", "[metrics][gauge]") {
  distkit::gauge g;
  g.inc();
  g.add(2.5);
  g.dec();
  CHECK(g.value() == 2.5);
  g.set(10);
  CHECK(g.value() == 10);
  g.sub(3);
  CHECK(g.value() == 7);
}

TEST_CASE("metrics log-linear layout: every value is in its bucket and within 1/128 of its midpoint",
          "[metrics][histogram]") {
  using layout = distkit::log_linear_layout;
  STATIC_REQUIRE(layout::relative_error <= 0.01);
  const std::uint64_t seed = distkit_test::test_seed("metrics layout");
  std::mt19937_64 rng(seed);
  std::vector<std::uint64_t> probes;
  for (std::uint64_t v = 0; v < 5000; ++v) probes.push_back(v);
  for (int bit = 7; bit < 64; ++bit) {
    const std::uint64_t p = std::uint64_t{1} << bit;
    probes.insert(probes.end(), {p - 1, p, p + 1});
  }
  probes.push_back(std::numeric_limits<std::uint64_t>::max());
  for (int i = 0; i < 100'000; ++i) probes.push_back(rng() >> (rng() % 64));
  for (const std::uint64_t v : probes) {
    const std::size_t b = layout::bucket_of(v);
    INFO("v=" << v << " bucket " << b);
    REQUIRE(layout::bucket_lower(b) <= v);
    REQUIRE(v <= layout::bucket_upper(b));
    const double rep = static_cast<double>(layout::bucket_value(b));
    REQUIRE(std::abs(rep - static_cast<double>(v)) <= layout::relative_error * static_cast<double>(v));
  }
  // Buckets tile the integers: each starts right after the previous one ends.
  for (std::size_t b = 1; b < layout::bucket_of(std::numeric_limits<std::uint64_t>::max()); ++b) {
    REQUIRE(layout::bucket_lower(b) == layout::bucket_upper(b - 1) + 1);
  }
  CHECK(layout::bucket_of(std::numeric_limits<std::uint64_t>::max()) == 3775);
}

TEST_CASE("metrics histogram quantiles are within 1/128 of the exact quantiles of seeded random data",
          "[metrics][histogram]") {
  const std::uint64_t seed = distkit_test::test_seed("metrics quantiles");
  std::mt19937_64 rng(seed);
  SECTION("log-uniform over 40 bits") { CHECK(quantile_violations(log_uniform(rng, 100'000, 40)).empty()); }
  SECTION("log-uniform over 64 bits") { CHECK(quantile_violations(log_uniform(rng, 100'000, 63)).empty()); }
  SECTION("lognormal latencies around 1 ms in nanoseconds") {
    std::lognormal_distribution<double> d(std::log(1e6), 1.0);
    std::vector<std::uint64_t> v(100'000);
    for (auto& x : v) x = static_cast<std::uint64_t>(d(rng));
    CHECK(quantile_violations(v).empty());
  }
  SECTION("small integers are exact") {
    std::uniform_int_distribution<std::uint64_t> d(0, 127);
    std::vector<std::uint64_t> v(10'000);
    for (auto& x : v) x = d(rng);
    CHECK(quantile_violations(v).empty());
  }
}

TEST_CASE("metrics histogram snapshots merge into the histogram of the union", "[metrics][histogram]") {
  const std::uint64_t seed = distkit_test::test_seed("metrics merge");
  std::mt19937_64 rng(seed);
  const auto a = log_uniform(rng, 30'000, 30);
  const auto b = log_uniform(rng, 50'000, 45);
  distkit::histogram ha{{.max_value = std::uint64_t{1} << 50}};
  distkit::histogram hb{{.max_value = std::uint64_t{1} << 50}};
  distkit::histogram hu{{.max_value = std::uint64_t{1} << 50}};
  for (auto v : a) ha.observe(v), hu.observe(v);
  for (auto v : b) hb.observe(v), hu.observe(v);
  distkit::histogram_snapshot merged = ha.snapshot();
  merged.merge(hb.snapshot());
  const auto u = hu.snapshot();
  CHECK(merged.buckets == u.buckets);
  CHECK(merged.count == u.count);
  CHECK(merged.sum == u.sum);
  ha.merge(hb.snapshot());
  CHECK(ha.snapshot().buckets == u.buckets);
  CHECK(ha.snapshot().sum == u.sum);
}

TEST_CASE("metrics histogram counts values above max_value as max_value and keeps the exact sum",
          "[metrics][histogram]") {
  distkit::histogram h{{.max_value = 1000}};
  h.observe(5000);
  h.observe(std::chrono::microseconds(1));  // 1000 ns
  const auto s = h.snapshot();
  CHECK(s.count == 2);
  CHECK(s.sum == 6000);
  CHECK(s.quantile(1.0) == distkit::log_linear_layout::bucket_value(distkit::log_linear_layout::bucket_of(1000)));
  CHECK_THROWS_WITH(s.quantile(1.5), Catch::Contains("q must be in [0, 1]"));
}

TEST_CASE("metrics histogram exposes exact cumulative counts at its le bounds", "[metrics][histogram][exposition]") {
  const std::uint64_t seed = distkit_test::test_seed("metrics le counts");
  std::mt19937_64 rng(seed);
  distkit::metrics_registry reg;
  auto& h = reg.make_histogram("distkit_test_latency_seconds", "Latency.", {.units_per_exposed = 1e9});
  const auto values = log_uniform(rng, 20'000, 35);
  for (auto v : values) h.observe(v);
  const std::string text = reg.to_prometheus();
  for (const std::uint64_t bound : h.bounds()) {
    const auto expected = static_cast<std::uint64_t>(
        std::count_if(values.begin(), values.end(), [&](auto v) { return std::min(v, h.max_value()) <= bound; }));
    std::string le;
    distkit::detail::append_double(le, static_cast<double>(bound) / 1e9);
    const std::string line = "distkit_test_latency_seconds_bucket{le=\"" + le + "\"} " + std::to_string(expected);
    INFO("bound " << bound);
    CHECK(text.find(line + "\n") != std::string::npos);
  }
  CHECK(text.find("distkit_test_latency_seconds_bucket{le=\"+Inf\"} 20000\n") != std::string::npos);
  CHECK(text.find("distkit_test_latency_seconds_count 20000\n") != std::string::npos);
  // The default bounds move to the nearest bucket top, by at most 1/128: 5 ms is written as
  // 4.980735 ms (the top of the bucket [4.915200, 4.980735] ms).
  CHECK(text.find("le=\"0.004980735\"") != std::string::npos);
  for (const std::uint64_t bound : h.bounds()) {
    const double wanted = [&] {
      double best = 1e300;
      for (const double b : distkit::histogram_options{}.buckets) {
        if (std::abs(b * 1e9 - static_cast<double>(bound)) < std::abs(best - static_cast<double>(bound)))
          best = b * 1e9;
      }
      return best;
    }();
    CHECK(std::abs(static_cast<double>(bound) - wanted) <= distkit::log_linear_layout::relative_error * wanted);
  }
}

TEST_CASE("metrics registry refuses bad names and labels, naming the parameter", "[metrics][validation]") {
  distkit::metrics_registry reg;
  CHECK_THROWS_WITH(reg.counter_family("distkit_requests", "h"),
                    Catch::Contains("name of a counter must end in _total"));
  CHECK_THROWS_WITH(reg.counter_family("1distkit_total", "h"), Catch::Contains("name must match"));
  CHECK_THROWS_WITH(reg.counter_family("distkit:rule_total", "h"), Catch::Contains("name must match"));
  CHECK_THROWS_WITH(reg.gauge_family("distkit_x_total", "h"), Catch::Contains("name of a gauge or histogram"));
  CHECK_THROWS_WITH(reg.histogram_family("distkit_x_sum", "h"), Catch::Contains("name of a gauge or histogram"));
  CHECK_THROWS_WITH(reg.gauge_family("distkit_x", ""), Catch::Contains("help must not be empty"));
  CHECK_THROWS_WITH(reg.gauge_family("distkit_x", "h", {"a-b"}), Catch::Contains("label_names must match"));
  CHECK_THROWS_WITH(reg.gauge_family("distkit_x", "h", {"__a"}), Catch::Contains("label_names must match"));
  CHECK_THROWS_WITH(reg.gauge_family("distkit_x", "h", {"le"}), Catch::Contains("label_names must not be le"));
  CHECK_THROWS_WITH(reg.gauge_family("distkit_x", "h", {"a", "a"}), Catch::Contains("label_names must be distinct"));
  CHECK_THROWS_WITH(reg.histogram_family("distkit_h", "h", {}, {.units_per_exposed = 0}),
                    Catch::Contains("units_per_exposed"));
  CHECK_THROWS_WITH(reg.histogram_family("distkit_h", "h", {}, {.buckets = {1, 1}}), Catch::Contains("buckets"));
  auto& fam = reg.counter_family("distkit_calls_total", "Calls.", {"outcome"});
  CHECK(&reg.counter_family("distkit_calls_total", "Calls.", {"outcome"}) == &fam);
  CHECK_THROWS_WITH(reg.counter_family("distkit_calls_total", "Other.", {"outcome"}),
                    Catch::Contains("name is already registered"));
  CHECK_THROWS_WITH(reg.gauge_family("distkit_calls_total", "Calls.", {"outcome"}), Catch::Contains("name"));
  CHECK_THROWS_WITH(fam.with({}), Catch::Contains("label_values must have one value per label name"));
  CHECK_THROWS_WITH(fam.with({"\xff"}), Catch::Contains("label_values must be valid UTF-8"));
  CHECK(&fam.with({"ok"}) == &fam.with({"ok"}));
}

TEST_CASE("metrics callback families read their values at scrape time until the handle goes", "[metrics][callback]") {
  distkit::metrics_registry reg;
  std::uint64_t served = 7;
  double depth = 1.5;
  auto& served_family = reg.counter_callback_family("distkit_test_served_total", "Served.", {"shard"});
  auto& depth_family = reg.gauge_callback_family("distkit_test_depth", "Depth.", {"shard"});
  auto a = served_family.add({"a"}, [&] { return served; });
  {
    auto d = depth_family.add({"a"}, [&] { return depth; });
    served = 9;
    const std::string text = reg.to_prometheus();
    CHECK(text.find("distkit_test_served_total{shard=\"a\"} 9\n") != std::string::npos);
    CHECK(text.find("distkit_test_depth{shard=\"a\"} 1.5\n") != std::string::npos);
    CHECK(reg.to_openmetrics().find("# TYPE distkit_test_served counter\n") != std::string::npos);
    CHECK_THROWS_WITH(depth_family.add({"a"}, [] { return 0.0; }), Catch::Contains("label_values are already"));
    CHECK_THROWS_WITH(depth_family.add({"b"}, {}), Catch::Contains("read must not be empty"));
    CHECK_THROWS_WITH(depth_family.add({}, [] { return 0.0; }), Catch::Contains("label_values must have one"));
  }
  CHECK(reg.to_prometheus().find("distkit_test_depth{") == std::string::npos);
  auto moved = std::move(a);
  moved.reset();
  CHECK(reg.to_prometheus().find("distkit_test_served_total{") == std::string::npos);
  CHECK_THROWS_WITH(reg.counter_callback_family("distkit_test_served", "h"), Catch::Contains("must end in _total"));
  CHECK_THROWS_WITH(reg.counter_family("distkit_test_served_total", "Served.", {"shard"}), Catch::Contains("name"));
}

TEST_CASE("metrics registry writes the Prometheus text format 0.0.4 and OpenMetrics", "[metrics][exposition]") {
  distkit::metrics_registry reg;
  auto& calls = reg.counter_family("distkit_demo_calls_total", "Calls by outcome.", {"outcome"});
  calls.with({"success"}).inc(3);
  calls.with({"fail\"ure\\\n"}).inc();
  reg.make_gauge("distkit_demo_depth", "Queue depth,\nnow.").set(2.5);
  auto& h = reg.make_histogram("distkit_demo_size_bytes", "Sizes.", {.buckets = {100, 1000}});
  h.observe(50);
  h.observe(500);
  h.observe(5000);
  const std::string prom = reg.to_prometheus();
  CHECK(prom ==
        "# HELP distkit_demo_calls_total Calls by outcome.\n"
        "# TYPE distkit_demo_calls_total counter\n"
        "distkit_demo_calls_total{outcome=\"fail\\\"ure\\\\\\n\"} 1\n"
        "distkit_demo_calls_total{outcome=\"success\"} 3\n"
        "# HELP distkit_demo_depth Queue depth,\\nnow.\n"
        "# TYPE distkit_demo_depth gauge\n"
        "distkit_demo_depth 2.5\n"
        "# HELP distkit_demo_size_bytes Sizes.\n"
        "# TYPE distkit_demo_size_bytes histogram\n"
        "distkit_demo_size_bytes_bucket{le=\"100\"} 1\n"
        "distkit_demo_size_bytes_bucket{le=\"999\"} 2\n"
        "distkit_demo_size_bytes_bucket{le=\"+Inf\"} 3\n"
        "distkit_demo_size_bytes_sum 5550\n"
        "distkit_demo_size_bytes_count 3\n");
  const std::string om = reg.to_openmetrics();
  CHECK(om.find("# TYPE distkit_demo_calls counter\n") != std::string::npos);
  CHECK(om.find("# HELP distkit_demo_calls Calls by outcome.\n") != std::string::npos);
  CHECK(om.find("distkit_demo_calls_total{outcome=\"success\"} 3\n") != std::string::npos);
  CHECK(om.find("# TYPE distkit_demo_size_bytes histogram\n") != std::string::npos);
  CHECK(om.size() > 6);
  CHECK(om.substr(om.size() - 6) == "# EOF\n");
  CHECK(std::count(om.begin(), om.end(), '#') == std::count(prom.begin(), prom.end(), '#') + 1);
}

TEST_CASE("metrics exposition passes promtool check metrics", "[metrics][exposition][promtool]") {
  const std::string promtool = DISTKIT_PROMTOOL;
  INFO("promtool comes with the Debian package `prometheus` (scripts/install-deps installs it)");
  REQUIRE(!promtool.empty());
  distkit::metrics_registry reg;
  auto& calls = reg.counter_family("distkit_circuit_breaker_calls_total", "Calls by outcome.", {"breaker", "outcome"});
  calls.with({"payments", "success"}).inc(10);
  calls.with({"payments", "failure"}).inc(2);
  calls.with({"ledger \"eu\"\\1", "success"}).inc(1);
  reg.gauge_family("distkit_worker_pool_queue_depth", "Tasks waiting.", {"pool"}).with({"io"}).set(4);
  reg.counter_family("distkit_unused_total", "A family with no child yet.", {"x"});
  auto& lat = reg.histogram_family("distkit_paxos_fsync_duration_seconds", "fsync latency.", {"replica"},
                                   {.units_per_exposed = 1e9});
  for (std::uint64_t v = 1; v < 2'000'000'000; v = v * 3 + 7) lat.with({"1"}).observe(v);
  reg.make_histogram("distkit_pipeline_batch_size", "Items per batch.", {.buckets = {1, 2, 4, 8, 16}}).observe(3);

  const auto [status, report] = promtool_check(reg.to_prometheus(), "metrics_exposition.prom");
  INFO("promtool said:\n" << report);
  CHECK(status == 0);
  CHECK(report.find("problem") == std::string::npos);
}

TEST_CASE("metrics promtool check sees a broken exposition (the check is not vacuous)",
          "[metrics][exposition][promtool]") {
  INFO("promtool comes with the Debian package `prometheus` (scripts/install-deps installs it)");
  REQUIRE(!std::string(DISTKIT_PROMTOOL).empty());
  // What a writer that forgot the counter suffix, or the +Inf bucket, would produce.
  CHECK(promtool_check("# HELP x_calls Calls.\n# TYPE x_calls counter\nx_calls 1\n", "metrics_bad_1.prom").first != 0);
  CHECK(promtool_check("# HELP x_s S.\n# TYPE x_s histogram\nx_s_bucket{le=\"1\"} 1\nx_s_sum 1\nx_s_count 1\n",
                       "metrics_bad_2.prom")
            .first != 0);
}

TEST_CASE("metrics exemplars: OpenMetrics shows the latest one per bucket and per counter, 0.0.4 none",
          "[metrics][exposition][exemplar]") {
  distkit::metrics_registry reg;
  auto& h = reg.make_histogram("distkit_demo_latency_seconds", "Latency.",
                               {.units_per_exposed = 1e3, .buckets = {0.01, 0.1}});  // milliseconds recorded
  h.observe(5);                                                         // 0.005 s: first bucket, no exemplar
  h.observe(7, {{"trace_id", "aa01"}});                                 // first bucket
  h.observe(8, {{"trace_id", "aa02"}}, 1700000000.5);                   // first bucket again: replaces aa01
  h.observe(60, {{"trace_id", "bb01"}, {"span", "x\"y"}});             // second bucket
  h.observe(5000, {{"trace_id", "cc01"}});                              // +Inf
  auto& c = reg.make_counter("distkit_demo_requests_total", "Requests.");
  c.inc(2);
  c.inc(3, {{"trace_id", "dd01"}});
  const std::string om = reg.to_openmetrics();
  INFO(om);
  CHECK(om.find("distkit_demo_latency_seconds_bucket{le=\"0.01\"} 3 # {trace_id=\"aa02\"} 0.008 1700000000.5\n") !=
        std::string::npos);
  CHECK(om.find("distkit_demo_latency_seconds_bucket{le=\"0.1\"} 4 # {trace_id=\"bb01\",span=\"x\\\"y\"} 0.06\n") !=
        std::string::npos);
  CHECK(om.find("distkit_demo_latency_seconds_bucket{le=\"+Inf\"} 5 # {trace_id=\"cc01\"} 5\n") != std::string::npos);
  CHECK(om.find("distkit_demo_requests_total 5 # {trace_id=\"dd01\"} 3\n") != std::string::npos);
  CHECK(om.find("aa01") == std::string::npos);
  const std::string prom = reg.to_prometheus();
  CHECK(prom.find(" # {") == std::string::npos);  // the 0.0.4 text format has no exemplars
  CHECK(h.snapshot().count == 5);
  CHECK(c.value() == 5);
  REQUIRE(h.exemplar(0).has_value());
  CHECK(h.exemplar(0)->timestamp == 1700000000.5);
  CHECK_FALSE(h.exemplar(7).has_value());
}

TEST_CASE("metrics exemplars: a bad label set is refused by name and records nothing", "[metrics][exemplar]") {
  distkit::metrics_registry reg;
  auto& h = reg.make_histogram("distkit_demo_latency_seconds", "Latency.", {.buckets = {1, 10}});
  auto& c = reg.make_counter("distkit_demo_requests_total", "Requests.");
  const std::string long_value(121, 'x');  // "trace_id" (8) + 121 = 129 code points
  CHECK_THROWS_WITH(h.observe(1, {{"trace_id", long_value}}), Catch::Contains("labels") && Catch::Contains("128"));
  CHECK_THROWS_WITH(h.observe(1, {{"9trace", "a"}}), Catch::Contains("labels"));
  CHECK_THROWS_WITH(c.inc(1, {{"trace-id", "a"}}), Catch::Contains("labels"));
  CHECK_THROWS_WITH(c.inc(1, {{"trace_id", "\xff"}}), Catch::Contains("UTF-8"));
  // 128 code points exactly (multi-byte characters count once) is accepted.
  std::string at_limit;
  for (int i = 0; i < 120; ++i) at_limit += "\xc3\xa9";  // U+00E9, two bytes each
  CHECK_NOTHROW(c.inc(1, {{"trace_id", at_limit}}));
  CHECK(h.snapshot().count == 0);
  CHECK(c.value() == 1);
}

#endif
