#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A small HTTP/1.1 backend for scripts/bench-lb-haproxy: answers every request after
`--delay-ms` (plus a little jitter), with its id as the body, on keep-alive connections."""
import argparse
import http.server
import random
import socket
import socketserver
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--delay-ms", type=float, default=10.0)
    opts = parser.parse_args()
    body = opts.id.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            # Headers and body go out in two writes: without this, Nagle holds the body until
            # the client's delayed ACK of the headers (40 ms on Linux).
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self):  # noqa: N802 (the http.server API)
            time.sleep((opts.delay_ms + random.uniform(0, 1)) / 1000.0)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 256

    Server(("127.0.0.1", opts.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
