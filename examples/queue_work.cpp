// SPDX-License-Identifier: MIT
// examples/queue_work.cpp: a work queue whose consumer crashes mid-message. The message stays
// leased to the dead consumer until the lease runs out, then another consumer gets it (attempt 2),
// completes it and acks; the dead consumer's late ack is refused.
#include <distkit/work_queue.hpp>
#include <exception>

#include <chrono>
#include <cstdio>
#include <thread>

int main() try {
  using namespace std::chrono_literals;
  distkit::work_queue<> q({.lease = 200ms, .max_deliver = 5});
  q.add_group("resize");
  for (int i = 1; i <= 3; ++i) (void)q.publish("image-" + std::to_string(i) + ".png");

  // Worker A takes the first message and dies before acking it.
  auto taken = q.consume("resize", "worker-a", 1);
  std::printf("worker-a took %s (attempt %u) and crashed\n", taken[0].payload.c_str(), taken[0].attempt);

  // Worker B processes whatever it is given until everything is done.
  while (q.pending("resize") != 0) {
    auto batch = q.consume("resize", "worker-b", 8);
    if (batch.empty()) {
      std::this_thread::sleep_for(20ms);  // nothing visible yet: worker-a's lease still runs
      continue;
    }
    for (const auto& d : batch) {
      std::printf("worker-b completed %s (attempt %u)\n", d.payload.c_str(), d.attempt);
      (void)q.ack(d);
    }
  }
  // Worker A comes back and tries to ack its stale delivery: the token is fenced off.
  const auto late = q.ack(taken[0]);
  std::printf("worker-a's late ack: %s\n", late == distkit::settle_result::stale ? "refused (stale)" : "ACCEPTED?!");
  return late == distkit::settle_result::stale ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "queue-work example: %s\n", e.what());
  return 1;
}
