// SPDX-License-Identifier: MIT
// examples/pipeline.cpp: read log lines -> parse in parallel -> drop malformed -> aggregate in order.
//
// A generator stands in for a log file: it produces access-log lines, a few of them malformed.
// The parse stage runs in parallel and drops what it cannot parse; the aggregate stage sees the
// good records in their original order (it checks that) and keeps per-status counts and latency.
#include <distkit/pipeline.hpp>
#include <exception>

#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace {

struct record {
  std::uint64_t line = 0;  // position in the log, to show the order is kept
  std::string_view method;
  int status = 0;
  std::uint32_t latency_us = 0;
};

// "<line> <method> <path> <status> <latency>us"; anything else is malformed.
auto parse(const std::string& text) -> std::optional<record> {
  record r;
  std::string_view rest = text;
  auto field = [&rest]() -> std::string_view {
    const auto space = rest.find(' ');
    const auto f = rest.substr(0, space);
    rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
    return f;
  };
  auto number = [](std::string_view s, auto& out) {
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && end == s.data() + s.size();
  };
  if (!number(field(), r.line)) return std::nullopt;
  const auto method = field();
  static constexpr std::array<std::string_view, 3> methods{"GET", "PUT", "POST"};
  bool known = false;
  for (auto m : methods) {
    if (m == method) {
      r.method = m;  // points at static storage, not at the line
      known = true;
    }
  }
  if (!known) return std::nullopt;
  if (field().empty()) return std::nullopt;  // path
  if (!number(field(), r.status) || r.status < 100 || r.status > 599) return std::nullopt;
  auto latency = field();
  if (latency.size() < 3 || !latency.ends_with("us")) return std::nullopt;
  if (!number(latency.substr(0, latency.size() - 2), r.latency_us)) return std::nullopt;
  return r;
}

}  // namespace

int main(int argc, char** argv) try {
  const std::uint64_t lines = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 2'000'000;

  // The "file": deterministic lines, about 1 in 50 malformed in one of several ways.
  std::uint64_t produced = 0;
  std::uint64_t rng = 0x9e3779b97f4a7c15ULL;
  auto read_line = [&]() -> std::optional<std::string> {
    if (produced == lines) return std::nullopt;
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    static constexpr std::array<const char*, 3> methods{"GET", "PUT", "POST"};
    static constexpr std::array<int, 5> statuses{200, 200, 201, 404, 503};
    std::string line = std::to_string(produced++) + ' ' + methods[rng % 3] + " /api/items/" +
                       std::to_string(rng % 1000) + ' ' + std::to_string(statuses[(rng >> 8) % 5]) + ' ' +
                       std::to_string((rng >> 16) % 5000) + "us";
    switch ((rng >> 32) % 50) {
      case 0:
        line.resize(line.size() / 2);
        break;  // truncated
      case 1:
        line.replace(line.find(' '), 1, "\t");
        break;  // bad separator
      default:
        break;
    }
    return line;
  };

  std::array<std::uint64_t, 6> by_class{};  // 1xx .. 5xx
  std::uint64_t good = 0;
  std::uint64_t latency_sum = 0;
  std::uint64_t last_line = 0;
  bool in_order = true;

  auto p = distkit::make_pipeline(
      {.max_in_flight = 512}, distkit::source(read_line),
      distkit::stage(distkit::parallel(),
                     [](const std::string& line) { return parse(line); }),  // empty optional: dropped
      distkit::sink(distkit::serial_in_order, [&](record r) {
        if (good != 0 && r.line <= last_line) in_order = false;
        last_line = r.line;
        ++good;
        ++by_class[static_cast<std::size_t>(r.status / 100)];
        latency_sum += r.latency_us;
      }));

  const auto t0 = std::chrono::steady_clock::now();
  const auto status = p.run();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto st = p.stats();

  std::printf("read %llu lines, parsed %llu, dropped %llu malformed, %s\n",
              static_cast<unsigned long long>(st.stages[0].items_out), static_cast<unsigned long long>(good),
              static_cast<unsigned long long>(st.stages[1].items_dropped),
              status == distkit::pipeline_status::completed ? "completed" : "cancelled");
  std::printf("status 2xx %llu, 4xx %llu, 5xx %llu; mean latency %.1f us; aggregated in log order: %s\n",
              static_cast<unsigned long long>(by_class[2]), static_cast<unsigned long long>(by_class[4]),
              static_cast<unsigned long long>(by_class[5]),
              good ? static_cast<double>(latency_sum) / static_cast<double>(good) : 0.0, in_order ? "yes" : "NO");
  std::printf("%.2f s, %.2f M lines/s; peak %zu lines in flight (cap 512), source waited %.1f ms for tokens\n", seconds,
              static_cast<double>(lines) / seconds / 1e6, st.peak_in_flight,
              std::chrono::duration<double, std::milli>(st.source_blocked).count());
  const bool ok =
      in_order && good + st.stages[1].items_dropped == lines && status == distkit::pipeline_status::completed;
  return ok ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "pipeline example: %s\n", e.what());
  return 1;
}
