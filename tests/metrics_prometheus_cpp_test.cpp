// SPDX-License-Identifier: MIT
// Tests of distkit/metrics/prometheus_cpp.hpp: a distkit registry served through prometheus-cpp
// shows the same series with the same values as distkit's own exposition, and prometheus-cpp's
// text of it passes promtool.
#include <catch2/catch.hpp>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "distkit/metrics/prometheus_cpp.hpp"

namespace {

// series -> value, with every le="..." bound rewritten from its parsed double, so that two
// writers that print the same number differently compare equal.
auto parse_exposition(const std::string& text) -> std::map<std::string, double> {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    std::string series = line.substr(0, space);
    const double value = std::strtod(line.c_str() + space + 1, nullptr);
    if (const auto le = series.find("le=\""); le != std::string::npos) {
      const auto end = series.find('"', le + 4);
      const std::string bound = series.substr(le + 4, end - le - 4);
      const double b = bound == "+Inf" ? 1e308 : std::strtod(bound.c_str(), nullptr);
      std::array<char, 64> buf{};
      std::snprintf(buf.data(), buf.size(), "%.17g", b);
      series = series.substr(0, le + 4) + buf.data() + series.substr(end);
    }
    out[series] = value;
  }
  return out;
}

}  // namespace

TEST_CASE("metrics through prometheus-cpp show distkit's series and values", "[metrics][prometheus_cpp]") {
  distkit::metrics_registry reg;
  auto& calls = reg.counter_family("distkit_demo_calls_total", "Calls.", {"outcome"});
  calls.with({"success"}).inc(12);
  calls.with({"fail\"ure"}).inc(2);
  reg.make_gauge("distkit_demo_depth", "Depth.").set(-3.25);
  auto& h = reg.histogram_family("distkit_demo_latency_seconds", "Latency.", {"route"}, {.units_per_exposed = 1e9});
  for (std::uint64_t v = 1000; v < 20'000'000'000ULL; v = v * 5 / 3) h.with({"/a"}).observe(v);
  std::uint64_t backlog = 17;
  auto handle = reg.counter_callback_family("distkit_demo_backlog_total", "Backlog.").add({}, [&] { return backlog; });

  auto collectable = std::make_shared<distkit::prometheus_cpp_collectable>(reg);
  const std::string theirs = prometheus::TextSerializer().Serialize(collectable->Collect());
  const std::string ours = reg.to_prometheus();
  INFO("prometheus-cpp wrote:\n" << theirs << "\ndistkit wrote:\n" << ours);
  const auto a = parse_exposition(theirs);
  const auto b = parse_exposition(ours);
  CHECK(a == b);
  CHECK(a.size() == 18);  // 1 + 2 + 1 counter and gauge series, 12 buckets + sum + count

  // Beside a prometheus-cpp registry of the user's own, as an Exposer would serve them.
  auto user = std::make_shared<prometheus::Registry>();
  prometheus::BuildCounter().Name("app_requests_total").Help("Requests.").Register(*user).Add({}).Increment(5);
  std::vector<prometheus::MetricFamily> all = user->Collect();
  for (auto& f : collectable->Collect()) all.push_back(std::move(f));
  const std::string page = prometheus::TextSerializer().Serialize(all);
  const std::string path = std::string(DISTKIT_TEST_OUTPUT_DIR) + "/metrics_prometheus_cpp.prom";
  {
    std::ofstream out(path, std::ios::binary);
    out << page;
  }
  INFO("promtool comes with the Debian package `prometheus` (scripts/install-deps installs it)");
  REQUIRE(!std::string(DISTKIT_PROMTOOL).empty());
  const std::string command = std::string(DISTKIT_PROMTOOL) + " check metrics < '" + path + "' 2>&1";
  std::FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string report;
  std::array<char, 512> buf{};
  while (std::fgets(buf.data(), static_cast<int>(buf.size()), pipe) != nullptr) report += buf.data();
  const int status = ::pclose(pipe);
  INFO("promtool on " << path << " said:\n" << report);
  CHECK(status == 0);
  CHECK(page.find("app_requests_total 5") != std::string::npos);
}
