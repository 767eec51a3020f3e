// SPDX-License-Identifier: MIT
// examples/queue.cpp: a bounded MPMC queue between threads: total FIFO order, blocking calls,
// close() that keeps what was accepted, and the drop_oldest overflow policy.
#include <distkit/queue.hpp>
#include <exception>

#include <cstdio>
#include <thread>
#include <vector>

int main() try {
  // Two producers, two consumers, a queue of 64: every item arrives exactly once.
  distkit::mpmc_queue<int> q(64);
  std::vector<long> sums(2, 0);
  {
    std::vector<std::jthread> threads;
    threads.reserve(2);
    for (int c = 0; c < 2; ++c) {
      threads.emplace_back([&, c] {
        while (auto v = q.pop()) sums[static_cast<std::size_t>(c)] += *v;  // nullopt: closed and drained
      });
    }
    std::vector<std::jthread> producers;
    producers.reserve(2);
    for (int p = 0; p < 2; ++p) {
      producers.emplace_back([&, p] {
        for (int i = 1; i <= 50000; ++i) (void)q.push(p == 0 ? i : -i);
      });
    }
    producers.clear();  // joins the producers
    q.close();          // wakes the consumers once the queue is drained
  }
  std::printf("mpmc_queue: 100000 items through 64 slots, sum %ld (expected 0)\n", sums[0] + sums[1]);

  // A full queue under drop_oldest keeps the newest items.
  distkit::mpmc_queue<int, distkit::drop_oldest_overflow> recent(4);
  for (int i = 1; i <= 10; ++i) (void)recent.push(i);
  std::printf("drop_oldest: kept");
  while (auto v = recent.try_pop()) std::printf(" %d", *v);
  std::printf(" (dropped %llu)\n", static_cast<unsigned long long>(recent.dropped()));
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "queue example: %s\n", e.what());
  return 1;
}
