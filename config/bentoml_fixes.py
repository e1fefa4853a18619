"""Three corrections to BentoML 1.4's serving, applied in every process of the Bento
(``config.process``).

- **The request timeout's timer.** BentoML's ``TimeoutMiddleware`` (``traffic.timeout``) starts
  a timer for every request with ``loop.call_later`` and never cancels it. The timer holds the
  request's future and its context (with its OpenTelemetry span) until it fires, ``timeout``
  seconds later: 600 s here, so a service answering 10 requests a second holds 6,000 of them.
  Measured in the entry worker: 2,095 more spans, futures and timers alive after 2,061
  requests, and its memory at rest grew by 50 MiB in 8 minutes of a scan. ``RequestDeadline``
  keeps the same contract (a request that has sent nothing within the timeout is cancelled
  and answered 504) with a deadline that ends with the request.
- **Dead workers in a container.** BentoML turns circus' respawn off when
  ``BENTOML_CONTAINERIZED`` is set (its Dockerfile sets it), expecting the orchestrator to
  restart the container. But the container does not exit: with the runner killed (by the OOM
  killer, say), `bentoml serve` and the entry worker stay up, ``/ping`` answers 200, so neither
  Docker nor a liveness probe steps in, and every model request answers 503 from then on (seen
  in this project's image). Outside a container BentoML starts the worker again within
  seconds, and the entry's retry covers the gap; ``restart_dead_workers_in_containers`` makes
  a container do the same.
- **One Bento, either layout.** A Bento lists the services of the layout it was built in
  (``IMMICH_CN_ML_RUNNERS``), and BentoML, loading it, looks every service of the entry's
  graph up in that list and fails (``StopIteration``) on one it does not find: an image built
  combined could not run the split layout. Nothing is read from that list for this project's
  services (it maps Hugging Face model revisions, which they have none of), so
  ``serve_either_layout`` lets a service the Bento does not list through.

Each replaces a name BentoML looks up after it has imported the service module;
tests/config/test_bentoml_fixes.py fails if an upgrade moves them.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from bentoml._internal.server.http import traffic as _traffic

#: BentoML's own request timeout middleware, as it was when this module was first imported
#: (before ``use_request_deadline`` replaced it): its test shows what it leaves behind.
BENTOMLS_TIMEOUT = _traffic.TimeoutMiddleware

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class RequestDeadline:
    """ASGI middleware: a request whose answer has not begun within ``timeout`` seconds is
    cancelled and answered 504. Nothing of a request outlives it."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], timeout: float) -> None:
        self.app, self.timeout = app, timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        answering: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def send_marking(message: Message) -> None:
            if not answering.done():
                answering.set_result(None)
            await send(message)

        handler = asyncio.ensure_future(self.app(scope, receive, send_marking))
        try:
            # A future, not a task, to wait on beside the handler; asyncio.wait cancels its own
            # timer when it returns.
            await asyncio.wait({handler, answering}, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            handler.cancel()
            raise
        if not handler.done() and not answering.done():
            handler.cancel()
            await _timed_out(self.timeout, send)
            await asyncio.wait({handler}, timeout=1.0)  # let it unwind (and drop its own timers)
            return
        await handler


async def _timed_out(timeout: float, send: Send) -> None:
    from starlette.responses import JSONResponse

    response = JSONResponse({"error": f"the request took longer than {timeout:g} s (REQUEST_TIMEOUT)"},
                            status_code=504)
    await response({"type": "http"}, _nothing, send)


async def _nothing() -> Message:  # pragma: no cover - a JSONResponse does not read the request
    return {"type": "http.disconnect"}


def use_request_deadline() -> None:
    """Have BentoML build its apps with ``RequestDeadline`` for its ``TimeoutMiddleware``."""
    from bentoml._internal.server.http import traffic

    traffic.TimeoutMiddleware = RequestDeadline


def restart_dead_workers_in_containers() -> None:
    """Have BentoML start a dead worker again inside a container, as it does outside. Call in
    the process that runs `bentoml serve`, before it makes its watchers.
    ``bentoml.serving.running_inside_container`` decides circus' ``respawn`` and nothing else."""
    import bentoml.serving

    bentoml.serving.running_inside_container = lambda: False


def serve_either_layout() -> None:
    """Have BentoML load a Bento built in one layout for an entry service of the other."""
    from _bentoml_sdk.service.factory import Service

    original = Service.on_load_bento
    if getattr(original, "either_layout", False):
        return

    def on_load_bento(self: Any, bento: Any) -> None:
        listed = {info.name for info in bento.info.services}
        if all(name in listed for name in self.all_services()):
            original(self, bento)
            return
        for service in self.all_services().values():  # the rest of what BentoML does: no HF models here
            service.bento = bento

    on_load_bento.either_layout = True  # type: ignore[attr-defined]
    Service.on_load_bento = on_load_bento
