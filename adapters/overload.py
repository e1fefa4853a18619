"""A ceiling on the requests an entry worker holds at once; past it, a fast 503.

Every request in flight holds its body (up to ``MAX_REQUEST_BYTES``) and, once admitted
(``adapters.admission``), a decoded image and its tensors. Without a ceiling a burst queues
without end: memory grows with the queue, and requests at its back wait until their client's
timeout, having cost everything and delivered nothing. Past the ceiling a request is answered
503 with ``Retry-After`` before its body is read: Immich then tries its next machine-learning
URL, and a client that retries finds the service free again right after the burst.

Only POSTs count: ``/ping``, ``/``, ``/metrics`` and the probes stay cheap and always answer.
"""

from __future__ import annotations

import json
import logging
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from adapters.errors import RETRY_AFTER

log = logging.getLogger(__name__)


class InFlightLimit:
    """ASGI middleware: at most ``limit`` POST requests in flight in this worker."""

    def __init__(self, app: ASGIApp, limit: int, log_every: float = 10.0) -> None:
        self.app, self.limit, self.log_every = app, limit, log_every
        self.in_flight = 0
        self._refused = 0  # since the last log line
        self._logged_at = float("-inf")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await self._refuse(send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _refuse(self, send: Send) -> None:
        self._refused += 1
        now = time.monotonic()
        if now - self._logged_at >= self.log_every:  # a burst is one line, not thousands
            log.warning("busy: %d request(s) refused with 503 in the last %s; %d in flight is the ceiling "
                        "(IMMICH_CN_ML_MAX_REQUESTS_IN_FLIGHT)", self._refused,
                        "moment" if self._logged_at == float("-inf") else f"{now - self._logged_at:.0f} s", self.limit)
            self._refused, self._logged_at = 0, now
        body = json.dumps({"detail": f"busy: {self.limit} requests are in flight here; try again shortly"}).encode()
        await send({"type": "http.response.start", "status": 503, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(RETRY_AFTER).encode()),
        ]})
        await send({"type": "http.response.body", "body": body})
