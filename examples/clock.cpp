// SPDX-License-Identifier: MIT
// examples/clock.cpp: the same timeout logic driven by the real clock and by manual_clock.
#include <distkit/clock.hpp>

#include <chrono>
#include <cstdio>

namespace {

// A deadline check written once against the time_source concept.
template <distkit::time_source Clock>
class deadline {
 public:
  deadline(Clock clock, typename Clock::duration budget) : clock_(clock), end_(clock.now() + budget) {}
  [[nodiscard]] auto expired() const noexcept -> bool { return clock_.now() >= end_; }

 private:
  Clock clock_;
  typename Clock::time_point end_;
};

}  // namespace

auto main() -> int {
  using namespace std::chrono_literals;

  const deadline real(distkit::steady_time{}, std::chrono::duration_cast<distkit::steady_time::duration>(1h));
  std::printf("steady_time: a 1 h deadline set just now has expired: %s\n", real.expired() ? "yes" : "no");

  distkit::manual_clock clock;  // what tests use: time moves only when told to
  const deadline simulated(clock, 30s);
  for (int step = 0; step < 4; ++step) {
    std::printf("manual_clock at %2llds: expired %s\n",
                static_cast<long long>(
                    std::chrono::duration_cast<std::chrono::seconds>(clock.now().time_since_epoch()).count()),
                simulated.expired() ? "yes" : "no");
    clock.advance(10s);
  }
  return 0;
}
