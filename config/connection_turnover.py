"""A runner served alone closes each caller's connection after a number of calls, so that calls
spread over the replicas behind one address.

A Kubernetes Service (kube-proxy) or any TCP balancer picks a replica when a connection opens,
not per request. The entry service's client keeps its connections to a runner open for as long
as calls keep coming (BentoML's aiohttp pool), so during a library scan each of its few
connections stays on the replica it first reached: a replica that an autoscaler adds gets no
call, and two connections may well sit on the same replica while another idles. Answering
every ``requests``-th call of a connection with ``Connection: close`` makes the caller open a
new one for its next call, which the balancer places afresh. HTTP/1.1 carries one call at a time
on a connection, so the close comes between calls: nothing in flight is lost, and a handshake
per ``requests`` calls is all it costs.

Only connections that have a client address count (TCP): a runner started by the entry's own
`bentoml serve` is reached over a Unix socket, one replica, and is left alone.
"""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Seconds after which a connection not seen is taken as closed (uvicorn closes an idle one after
#: 5 s), and forgotten.
FORGET_AFTER = 60.0
#: Connections remembered before the forgotten ones are looked for.
REMEMBERED = 1024


class ConnectionTurnover:
    """ASGI middleware: every ``requests``-th call on a connection is answered with
    ``Connection: close`` (0: never)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], requests: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app, self.requests, self.clock = app, requests, clock
        self._calls: dict[tuple[Any, ...], tuple[int, float]] = {}  # client address -> (calls, last seen)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] != "http" or self.requests <= 0 or not client:
            await self.app(scope, receive, send)
            return
        if not self._last_call(tuple(client)):
            await self.app(scope, receive, send)
            return

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing)

    def _last_call(self, client: tuple[Any, ...]) -> bool:
        """Count a call of ``client``'s connection; whether it is that connection's last."""
        now = self.clock()
        calls = self._calls.pop(client, (0, now))[0] + 1
        if calls >= self.requests:
            return True
        self._calls[client] = (calls, now)
        if len(self._calls) > REMEMBERED:
            self._calls = {key: seen for key, seen in self._calls.items() if now - seen[1] < FORGET_AFTER}
        return False
