// SPDX-License-Identifier: MIT
// examples/paxos_kv/metrics_http.hpp: the smallest HTTP/1.1 endpoint a Prometheus server can
// scrape: `GET /metrics` answers the registry's exposition (OpenMetrics when the request accepts
// `application/openmetrics-text`, as Prometheus's scraper does; otherwise the 0.0.4 text format),
// anything else 404, one request per connection. It runs on the server's io_context, so the
// registry's callbacks read the replica on the thread that owns it.
#pragma once

#include <asio.hpp>

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace paxos_kv {

class metrics_http {
 public:
  /// Listens on `at`; `body(openmetrics)` is called once per scrape, on the io_context's thread.
  metrics_http(asio::io_context& io, const asio::ip::tcp::endpoint& at, std::function<std::string(bool)> body)
      : acceptor_(io), body_(std::move(body)) {
    acceptor_.open(at.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(at);
    acceptor_.listen();
    accept_next();
  }

 private:
  struct connection {
    explicit connection(asio::ip::tcp::socket s) : socket(std::move(s)), request(max_request_bytes) {}
    asio::ip::tcp::socket socket;
    asio::streambuf request;
    std::string response;
  };
  // A request line and headers bigger than this are refused (a scraper sends a few hundred bytes).
  static constexpr std::size_t max_request_bytes = 8192;

  void accept_next() {
    acceptor_.async_accept([this](const asio::error_code& ec, asio::ip::tcp::socket s) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) serve(std::make_shared<connection>(std::move(s)));
      accept_next();
    });
  }

  void serve(const std::shared_ptr<connection>& c) {
    asio::async_read_until(c->socket, c->request, "\r\n\r\n", [this, c](const asio::error_code& ec, std::size_t) {
      if (ec) return;  // closed, or over max_request_bytes: drop the connection
      const std::string head(asio::buffers_begin(c->request.data()), asio::buffers_end(c->request.data()));
      const std::string_view line = std::string_view(head).substr(0, head.find("\r\n"));
      const bool metrics = line.starts_with("GET /metrics ") || line.starts_with("GET /metrics?");
      std::string lower = head;
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
      const bool openmetrics = lower.find("application/openmetrics-text") != std::string::npos;
      const std::string body = metrics ? body_(openmetrics) : std::string("not found\n");
      const char* type = !metrics      ? "text/plain; charset=utf-8"
                         : openmetrics ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                       : "text/plain; version=0.0.4; charset=utf-8";
      c->response = std::string(metrics ? "HTTP/1.1 200 OK\r\n" : "HTTP/1.1 404 Not Found\r\n") +
                    "Content-Type: " + type + "\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nConnection: close\r\n\r\n" + body;
      asio::async_write(c->socket, asio::buffer(c->response), [c](const asio::error_code&, std::size_t) {
        asio::error_code ignored;
        c->socket.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
      });
    });
  }

  asio::ip::tcp::acceptor acceptor_;
  std::function<std::string(bool)> body_;
};

}  // namespace paxos_kv
