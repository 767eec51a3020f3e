// SPDX-License-Identifier: MIT
// examples/queue_dlq.cpp: poison messages reach the dead-letter queue after exactly
// max_deliver attempts; the healthy ones are processed, and the dead letters are inspected.
#include <distkit/work_queue.hpp>
#include <exception>

#include <cstdio>
#include <string>

int main() try {
  distkit::work_queue<> q({.max_deliver = 3});
  q.add_group("billing");
  for (const char* body : {"charge 10", "charge ???", "charge 25", "charge -"}) (void)q.publish(body);

  auto parses = [](const std::string& s) { return s.find_first_of("0123456789") != std::string::npos; };
  for (;;) {
    auto batch = q.consume("billing", "worker", 16);
    if (batch.empty()) break;
    for (const auto& d : batch) {
      if (parses(d.payload)) {
        (void)q.ack(d);
      } else {
        std::printf("cannot parse '%s' (attempt %u), nack\n", d.payload.c_str(), d.attempt);
        (void)q.nack(d);
      }
    }
  }
  const auto dead = q.dead_letters("billing");
  for (const auto& m : dead) {
    std::printf("dead letter #%llu '%s' after %u deliveries\n", static_cast<unsigned long long>(m.seq),
                m.payload.c_str(), m.deliveries);
  }
  return dead.size() == 2 ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "queue-dlq example: %s\n", e.what());
  return 1;
}
