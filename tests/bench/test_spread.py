"""bench.spread's balancer places each connection on a backend, as kube-proxy does, and keeps it
there: every request on one connection reaches the same backend."""

from __future__ import annotations

import http.server
import threading

import httpx

from bench.spread import Balancer


class _Named(http.server.ThreadingHTTPServer):
    def __init__(self, name: str) -> None:
        name_bytes = name.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                self.send_response(200)
                self.send_header("content-length", str(len(name_bytes)))
                self.end_headers()
                self.wfile.write(name_bytes)

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def test_connections_are_placed_on_the_backends_and_stay():
    backends = [_Named("a"), _Named("b")]
    balancer = Balancer().start()
    try:
        for backend in backends:
            balancer.add(backend.server_address[1])
        seen = set()
        for _ in range(20):  # a new connection each time
            with httpx.Client(base_url=f"http://127.0.0.1:{balancer.port}") as client:
                answers = {client.get("/").text for _ in range(3)}
            assert len(answers) == 1  # one connection, one backend
            seen |= answers
        assert seen == {"a", "b"}
        assert sum(balancer.placed.values()) == 20
    finally:
        for backend in backends:
            backend.shutdown()
