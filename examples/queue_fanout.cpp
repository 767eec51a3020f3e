// SPDX-License-Identifier: MIT
// examples/queue_fanout.cpp: publish/subscribe fan-out. Each consumer group receives every
// message; the two consumers of the "email" group split that group's share between them.
#include <distkit/work_queue.hpp>
#include <exception>

#include <cstdio>
#include <string>

int main() try {
  distkit::work_queue<> q;
  q.add_group("email");
  q.add_group("audit");
  for (int i = 1; i <= 6; ++i) (void)q.publish("order-" + std::to_string(i));

  std::size_t audit = 0;
  for (const auto& d : q.consume("audit", "auditor", 100)) {
    (void)q.ack(d);
    ++audit;
  }
  std::size_t email = 0;
  for (const char* consumer : {"mailer-1", "mailer-2"}) {
    for (const auto& d : q.consume("email", consumer, 3)) {
      std::printf("%s sends mail for %s\n", consumer, d.payload.c_str());
      (void)q.ack(d);
      ++email;
    }
  }
  std::printf("audit group saw %zu messages, email group %zu (every group gets all 6)\n", audit, email);
  return audit == 6 && email == 6 ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "queue-fanout example: %s\n", e.what());
  return 1;
}
