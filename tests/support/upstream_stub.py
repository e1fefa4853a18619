"""A stand-in for a stock Immich ML server: a real HTTP server on 127.0.0.1.

It records every request it receives (path, headers, raw body) and answers with what the
test asked for: an Immich-shaped JSON body by default, or any status, body and delay.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from tests.support.ports import free_port

# Bytes exactly as orjson writes them (no spaces), as the stock server answers a CLIP request.
IMMICH_CLIP_ANSWER = b'{"clip":"[0.0123,-0.04,0.5]","imageHeight":1080,"imageWidth":1440}'


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int = 200
    body: bytes = IMMICH_CLIP_ANSWER
    content_type: str = "application/json"
    delay: float = 0.0


@dataclass
class UpstreamStub:
    port: int = field(default_factory=free_port)
    received: list[Recorded] = field(default_factory=list)
    responder: Callable[[Recorded], Reply] = field(default=lambda _: Reply())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> UpstreamStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else delayed ACKs add ~40 ms to every answer

            def do_GET(self) -> None:
                self._answer(b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                self._answer(self.rfile.read(length))

            def _answer(self, body: bytes) -> None:
                record = Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                stub.received.append(record)
                reply = stub.responder(record)
                time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", reply.content_type)
                    self.send_header("content-length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the proxy gave up waiting, as a test may intend

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self, responder: Callable[[Recorded], Reply] | None = None) -> None:
        self.received.clear()
        self.responder = responder or (lambda _: Reply())
