// SPDX-License-Identifier: MIT
// benchmarks/work_queue_redis_bench.cpp: a loopback throughput driver for at-least-once work
// queues. `producers` threads publish `messages` payloads of `size` bytes while `consumers`
// threads consume and ack each one individually; the figure is messages completed (acked) per
// second, from the first publish to the last ack. Every thread has its own connection.
//
//   --system distkit   work_queue<redis_streams_store> on a redis-server at --port (Redis time);
//                      consumers take up to --batch messages per consume
//   --system rabbitmq  a durable queue on RabbitMQ at --port, via librabbitmq's C API: persistent
//                      messages (delivery mode 2, no publisher confirms), manual acks,
//                      basic.qos prefetch = --batch; --queue-type classic or quorum
//   --batched 1        distkit: publish(span) and ack(span) of --batch messages, one round trip
//                      each; RabbitMQ: one basic.ack with `multiple` per --batch deliveries
//   --batched 0        distkit: one publish and one ack call per message; RabbitMQ: one
//                      basic.ack per message (publishes are pipelined either way)
//   --confirm 1        RabbitMQ: publisher confirms, the producer waiting for them every --batch
//                      publishes (batched) or every publish (one by one)
//
// Run by scripts/bench-work-queue, which starts both servers; it prints one line:
//   <label> messages=<n> seconds=<s> msgs_per_s=<r> redelivered=<d>
#include <amqp.h>
#include <amqp_tcp_socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "distkit/redis/work_queue_store.hpp"

namespace {

struct config {
  std::string system = "distkit";
  std::string host = "127.0.0.1";
  int port = 6379;
  std::size_t messages = 20000;
  std::size_t producers = 4;
  std::size_t consumers = 16;
  std::size_t size = 1024;
  std::size_t batch = 16;
  std::string queue_type = "classic";
  bool confirm = false;  ///< RabbitMQ: publisher confirms, waited for per --batch publishes (per publish unbatched)
  bool batched = true;   ///< distkit: publish(span) and ack(span); RabbitMQ: basic.ack with `multiple` per batch
  std::string name = "bench";
};

struct counters {
  std::vector<std::atomic<std::uint8_t>> acked;
  std::atomic<std::size_t> done{0};
  std::atomic<std::size_t> redelivered{0};
  explicit counters(std::size_t n) : acked(n) {}
  void complete(std::size_t index) {
    if (acked[index].fetch_add(1) == 0) done.fetch_add(1);
  }
};

auto payload_of(std::size_t index, std::size_t size) -> std::string {
  std::string p = std::to_string(index) + ":";
  p.resize(std::max(size, p.size()), 'x');
  return p;
}

auto index_of(const char* data, std::size_t len) -> std::size_t {
  std::size_t i = 0;
  for (std::size_t k = 0; k < len && data[k] != ':'; ++k) i = i * 10 + static_cast<std::size_t>(data[k] - '0');
  return i;
}

// ---- distkit on Redis ----------------------------------------------------------------------

auto run_distkit(const config& c, counters& n) -> void {
  distkit::redis_queue_options o;
  o.host = c.host;
  o.port = c.port;
  o.queue = c.name;
  o.command_timeout = std::chrono::milliseconds(10000);
  using queue = distkit::work_queue<distkit::redis_streams_store>;
  const distkit::work_queue_options wo{.lease = std::chrono::seconds(60), .max_deliver = 10};
  {
    queue q(wo, {}, std::in_place, o);
    q.add_group("workers");
  }
  std::vector<std::jthread> threads;
  for (std::size_t t = 0; t < c.consumers; ++t) {
    threads.emplace_back([&, t] {
      queue q(wo, {}, std::in_place, o);
      const std::string me = "c" + std::to_string(t);
      while (n.done.load() < c.messages) {
        auto batch = q.consume("workers", me, c.batch);
        if (batch.empty()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));  // idle: poll again shortly
          continue;
        }
        // Batched: the batch is acked in one round trip (`ack(span)`), each delivery still fenced
        // on its own. Otherwise one ack per delivery.
        std::vector<distkit::settle_result> results;
        if (c.batched) {
          results = q.ack(std::span<const distkit::delivery>(batch));
        } else {
          for (const auto& d : batch) results.push_back(q.ack(d));
        }
        for (std::size_t i = 0; i < batch.size(); ++i) {
          if (batch[i].attempt > 1) n.redelivered.fetch_add(1);
          if (results[i] == distkit::settle_result::ok) {
            n.complete(index_of(batch[i].payload.data(), batch[i].payload.size()));
          }
        }
      }
    });
  }
  for (std::size_t t = 0; t < c.producers; ++t) {
    threads.emplace_back([&, t] {
      queue q(wo, {}, std::in_place, o);
      // Batches of `batch` messages, one round trip each (`publish(span)`).
      std::vector<std::string> batch;
      for (std::size_t i = t; i < c.messages; i += c.producers) {
        batch.push_back(payload_of(i, c.size));
        if (!c.batched || batch.size() == c.batch || i + c.producers >= c.messages) {
          (void)q.publish(std::span<std::string>(batch));
          batch.clear();
        }
      }
    });
  }
}

// ---- RabbitMQ via librabbitmq ---------------------------------------------------------------

void check(amqp_rpc_reply_t r, const char* what) {
  if (r.reply_type != AMQP_RESPONSE_NORMAL) throw std::runtime_error(std::string("amqp: ") + what + " failed");
}

struct amqp_conn {
  amqp_connection_state_t state = amqp_new_connection();
  amqp_conn(const config& c) {
    amqp_socket_t* socket = amqp_tcp_socket_new(state);
    if (socket == nullptr || amqp_socket_open(socket, c.host.c_str(), c.port) != AMQP_STATUS_OK) {
      throw std::runtime_error("amqp: cannot connect");
    }
    check(amqp_login(state, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest"), "login");
    amqp_channel_open(state, 1);
    check(amqp_get_rpc_reply(state), "channel.open");
  }
  amqp_conn(const amqp_conn&) = delete;
  auto operator=(const amqp_conn&) -> amqp_conn& = delete;
  ~amqp_conn() {
    amqp_channel_close(state, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(state, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(state);
  }
};

auto run_rabbitmq(const config& c, counters& n) -> void {
  const amqp_bytes_t queue = amqp_cstring_bytes(c.name.c_str());
  {
    amqp_conn conn(c);
    amqp_table_entry_t type{};
    type.key = amqp_cstring_bytes("x-queue-type");
    type.value.kind = AMQP_FIELD_KIND_UTF8;
    type.value.value.bytes = amqp_cstring_bytes(c.queue_type.c_str());
    const amqp_table_t args{1, &type};
    amqp_queue_declare(conn.state, 1, queue, 0, /*durable*/ 1, 0, 0, args);
    check(amqp_get_rpc_reply(conn.state), "queue.declare");
  }
  std::vector<std::jthread> threads;
  for (std::size_t t = 0; t < c.consumers; ++t) {
    threads.emplace_back([&] {
      amqp_conn conn(c);
      amqp_basic_qos(conn.state, 1, 0, static_cast<std::uint16_t>(c.batch), 0);
      check(amqp_get_rpc_reply(conn.state), "basic.qos");
      amqp_basic_consume(conn.state, 1, queue, amqp_empty_bytes, 0, /*no_ack*/ 0, 0, amqp_empty_table);
      check(amqp_get_rpc_reply(conn.state), "basic.consume");
      // Batched: one basic.ack with `multiple` for every `batch` deliveries (or when idle).
      std::vector<std::size_t> unacked;
      std::uint64_t last_tag = 0;
      auto ack_pending = [&] {
        if (unacked.empty()) return;
        if (amqp_basic_ack(conn.state, 1, last_tag, 1) != AMQP_STATUS_OK) throw std::runtime_error("amqp: ack failed");
        for (const auto index : unacked) n.complete(index);
        unacked.clear();
      };
      while (n.done.load() < c.messages) {
        amqp_maybe_release_buffers(conn.state);
        amqp_envelope_t env;
        timeval timeout{0, unacked.empty() ? 100000 : 1000};
        const amqp_rpc_reply_t r = amqp_consume_message(conn.state, &env, &timeout, 0);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
          if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT) {
            ack_pending();
            continue;
          }
          throw std::runtime_error("amqp: consume failed");
        }
        if (env.redelivered != 0) n.redelivered.fetch_add(1);
        const std::size_t index = index_of(static_cast<const char*>(env.message.body.bytes), env.message.body.len);
        if (c.batched) {
          unacked.push_back(index);
          last_tag = env.delivery_tag;
          if (unacked.size() == c.batch) ack_pending();
        } else {
          if (amqp_basic_ack(conn.state, 1, env.delivery_tag, 0) != AMQP_STATUS_OK) {
            throw std::runtime_error("amqp: ack failed");
          }
          n.complete(index);
        }
        amqp_destroy_envelope(&env);
      }
    });
  }
  for (std::size_t t = 0; t < c.producers; ++t) {
    threads.emplace_back([&, t] {
      amqp_conn conn(c);
      amqp_basic_properties_t props{};
      props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
      props.delivery_mode = 2;  // persistent
      // With confirms, the producer waits until the broker has taken every publish of the window
      // (a batch, or one publish unbatched): the counterpart of distkit's answered publish.
      std::uint64_t published = 0;
      std::uint64_t confirmed = 0;
      if (c.confirm) {
        amqp_confirm_select(conn.state, 1);
        check(amqp_get_rpc_reply(conn.state), "confirm.select");
      }
      auto wait_confirms = [&] {
        while (confirmed < published) {
          amqp_frame_t f;
          const timeval tv{30, 0};
          if (amqp_simple_wait_frame_noblock(conn.state, &f, &tv) != AMQP_STATUS_OK) {
            throw std::runtime_error("amqp: no confirm");
          }
          if (f.frame_type != AMQP_FRAME_METHOD) continue;
          if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) throw std::runtime_error("amqp: publish nacked");
          if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            const auto* a = static_cast<const amqp_basic_ack_t*>(f.payload.method.decoded);
            confirmed = std::max<std::uint64_t>(confirmed, a->delivery_tag);  // confirms come in order
          }
        }
      };
      const std::size_t window = c.batched ? c.batch : 1;
      for (std::size_t i = t; i < c.messages; i += c.producers) {
        const std::string p = payload_of(i, c.size);
        amqp_bytes_t body{p.size(), const_cast<char*>(p.data())};
        if (amqp_basic_publish(conn.state, 1, amqp_cstring_bytes(""), queue, 0, 0, &props, body) != AMQP_STATUS_OK) {
          throw std::runtime_error("amqp: publish failed");
        }
        ++published;
        if (c.confirm && (published % window == 0 || i + c.producers >= c.messages)) wait_confirms();
      }
    });
  }
}

}  // namespace

auto main(int argc, char** argv) -> int {
  config c;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const std::string v = argv[i + 1];
    if (k == "--system")
      c.system = v;
    else if (k == "--host")
      c.host = v;
    else if (k == "--port")
      c.port = std::stoi(v);
    else if (k == "--messages")
      c.messages = std::stoul(v);
    else if (k == "--producers")
      c.producers = std::stoul(v);
    else if (k == "--consumers")
      c.consumers = std::stoul(v);
    else if (k == "--size")
      c.size = std::stoul(v);
    else if (k == "--batch")
      c.batch = std::stoul(v);
    else if (k == "--queue-type")
      c.queue_type = v;
    else if (k == "--batched")
      c.batched = v == "1";
    else if (k == "--confirm")
      c.confirm = v == "1";
    else if (k == "--name")
      c.name = v;
    else {
      std::cerr << "unknown option " << k << "\n";
      return 2;
    }
  }
  counters n(c.messages);
  const auto t0 = std::chrono::steady_clock::now();
  // A run that stops making progress for 30 s fails instead of hanging.
  std::jthread watchdog([&](std::stop_token stop) {
    std::size_t last = 0;
    auto since = std::chrono::steady_clock::now();
    while (!stop.stop_requested()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const std::size_t now_done = n.done.load();
      if (now_done != last) {
        last = now_done;
        since = std::chrono::steady_clock::now();
      } else if (std::chrono::steady_clock::now() - since > std::chrono::seconds(30)) {
        std::fprintf(stderr, "%s: no progress for 30 s at %zu of %zu messages\n", c.system.c_str(), now_done,
                     c.messages);
        std::_Exit(1);
      }
    }
  });
  try {
    if (c.system == "distkit") {
      run_distkit(c, n);
    } else if (c.system == "rabbitmq") {
      run_rabbitmq(c, n);
    } else {
      std::cerr << "--system distkit|rabbitmq\n";
      return 2;
    }
  } catch (const std::exception& e) {
    std::cerr << c.system << ": " << e.what() << "\n";
    return 1;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  watchdog.request_stop();
  std::size_t missing = 0;
  for (auto& a : n.acked) missing += a.load() == 0 ? 1 : 0;
  const std::string label = (c.system == "distkit" ? "distkit" : "rabbitmq-" + c.queue_type) +
                            (c.batched ? "-batched" : "-one-by-one") +
                            (c.system == "rabbitmq" && c.confirm ? "-confirmed" : "");
  std::printf("%s messages=%zu seconds=%.3f msgs_per_s=%.0f redelivered=%zu missing=%zu\n", label.c_str(), c.messages,
              seconds, static_cast<double>(c.messages) / seconds, n.redelivered.load(), missing);
  return missing == 0 ? 0 : 1;
}
