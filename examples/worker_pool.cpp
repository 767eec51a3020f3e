// SPDX-License-Identifier: MIT
// Example: a parallel word count with futures, and a fork-join that would deadlock a naive pool.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <exception>
#include <future>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "distkit/worker_pool.hpp"

namespace {

// Generates `words` words drawn from a small vocabulary with a Zipf-like skew.
auto generate_text(std::size_t words, std::uint64_t seed) -> std::string {
  static constexpr std::string_view vocabulary[] = {"the",    "pool",  "task",  "worker", "queue", "steal",
                                                    "future", "drain", "group", "wait",   "join",  "cancel"};
  std::mt19937_64 rng(seed);
  std::string text;
  for (std::size_t i = 0; i < words; ++i) {
    const std::size_t a = rng() % std::size(vocabulary);
    const std::size_t b = rng() % std::size(vocabulary);
    text.append(vocabulary[std::min(a, b)]);  // the min skews counts toward the first words
    text.push_back(i % 16 == 15 ? '\n' : ' ');
  }
  return text;
}

auto count_words(std::string_view text) -> std::map<std::string, std::size_t, std::less<>> {
  std::map<std::string, std::size_t, std::less<>> counts;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\n')) ++i;
    const std::size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\n') ++i;
    if (i > start) ++counts[std::string(text.substr(start, i - start))];
  }
  return counts;
}

// Recursive fork-join: each call waits for a child task. On a pool whose waits block the worker,
// a pool of N threads deadlocks as soon as N tasks wait at once; here the waiting worker runs the
// child itself (task_group::wait helps), so even one thread finishes.
auto parallel_sum(distkit::worker_pool<>& pool, const std::vector<long>& v, std::size_t begin, std::size_t end)
    -> long {
  if (end - begin <= 1024) {
    long s = 0;
    for (std::size_t i = begin; i < end; ++i) s += v[i];
    return s;
  }
  const std::size_t mid = begin + (end - begin) / 2;
  long left = 0;
  distkit::task_group group{pool};
  group.run([&] { left = parallel_sum(pool, v, begin, mid); });
  const long right = parallel_sum(pool, v, mid, end);
  group.wait();
  return left + right;
}

}  // namespace

int main() try {
  distkit::worker_pool pool{distkit::worker_pool_options{.threads = 4, .name = "example"}};

  // 1. Word count: split the text at line ends, count each piece in a task, merge the futures.
  const std::string text = generate_text(400'000, 2024);
  std::vector<std::future<std::map<std::string, std::size_t, std::less<>>>> parts;
  const std::size_t piece = text.size() / 16;
  for (std::size_t begin = 0; begin < text.size();) {
    std::size_t end = std::min(text.size(), begin + piece);
    while (end < text.size() && text[end] != '\n') ++end;  // never split a word
    parts.push_back(
        pool.submit([&text, begin, end] { return count_words(std::string_view(text).substr(begin, end - begin)); }));
    begin = end;
  }
  std::map<std::string, std::size_t, std::less<>> total;
  for (auto& part : parts) {
    for (const auto& [word, n] : part.get()) total[word] += n;
  }
  const auto serial = count_words(text);
  std::size_t words = 0;
  for (const auto& [word, n] : total) words += n;
  std::printf("word count over %zu pieces: %zu words, %zu distinct, matches the serial count: %s\n", parts.size(),
              words, total.size(), total == serial ? "yes" : "NO");
  std::printf("  most common: \"the\" x %zu, \"pool\" x %zu, \"cancel\" x %zu\n", total["the"], total["pool"],
              total["cancel"]);

  // 2. Fork-join on a pool of ONE thread: every level waits on a child task.
  distkit::worker_pool single{distkit::worker_pool_options{.threads = 1, .name = "single"}};
  std::vector<long> values(1'000'000);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<long>(i % 1000);
  const long sum = single.submit([&] { return parallel_sum(single, values, 0, values.size()); }).get();
  std::printf("fork-join sum on a 1-thread pool: %ld (expected %ld)\n", sum, 999L * 1000 / 2 * 1000);

  // 3. Shutdown that loses nothing: drain runs every accepted task before joining.
  std::atomic<int> background{0};
  for (int i = 0; i < 1000; ++i) pool.post([&background] { background.fetch_add(1); });
  (void)pool.shutdown(distkit::shutdown_mode::drain);
  const auto stats = pool.stats();
  std::printf("after drain: %d of 1000 background tasks ran; submitted %llu, completed %llu, stolen %llu\n",
              background.load(), static_cast<unsigned long long>(stats.submitted),
              static_cast<unsigned long long>(stats.completed), static_cast<unsigned long long>(stats.stolen));
  const bool ok = total == serial && sum == 999L * 1000 / 2 * 1000 && background.load() == 1000;
  return ok ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "worker-pool example: %s\n", e.what());
  return 1;
}
