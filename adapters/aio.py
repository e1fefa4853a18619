"""Small asyncio helpers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Coroutine, TypeVar

T = TypeVar("T")


async def concurrently(*awaitables: Awaitable[Any]) -> list[Any]:
    """Await all; on the first failure cancel the rest and raise it.

    ``asyncio.gather`` alone would leave the others running after the request has already
    been answered with an error, wasting a model's or the upstream's time.
    """
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise


@dataclass
class _Bridge:
    """What a thread started by ``in_thread`` needs to run coroutines on its caller's loop."""

    loop: asyncio.AbstractEventLoop
    pending: set[concurrent.futures.Future[Any]] = field(default_factory=set)
    cancelled: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cancel(self) -> None:
        with self.lock:
            self.cancelled = True
            for future in self.pending:
                future.cancel()


_BRIDGE: contextvars.ContextVar[_Bridge] = contextvars.ContextVar("immich_cn_ml_bridge")


async def in_thread(executor: Executor, function: Callable[..., T], *args: Any) -> T:
    """Run ``function(*args)`` on one of ``executor``'s threads, from which ``wait_for`` may
    run coroutines on this loop.

    For library code that calls back into ours synchronously in the middle of its work
    (insightface calls a session's ``run`` inside its detection): the callback waits for a
    runner call made on the loop, while the loop itself never blocks. Cancelling the caller
    cancels the coroutines the thread waits for, so an abandoned request frees its thread and
    its runner call at once.
    """
    bridge = _Bridge(asyncio.get_running_loop())
    context = contextvars.copy_context()
    context.run(_BRIDGE.set, bridge)
    work = bridge.loop.run_in_executor(executor, context.run, function, *args)
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        bridge.cancel()
        await _until_done(work)
        raise


async def to_thread(function: Callable[..., T], *args: Any) -> T:
    """``asyncio.to_thread``, except that a cancelled caller goes on only once the thread's work
    has ended.

    A thread cannot be stopped: a cancelled request's decode or pre-processing runs on, holding
    its image. Were the request to let go of its admission slot (``adapters.admission``) at
    once, a client that gives up and retries could have more images in memory than the limit
    allows.
    """
    work = asyncio.ensure_future(asyncio.to_thread(function, *args))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        await _until_done(work)
        raise


async def _until_done(work: asyncio.Future[Any]) -> None:
    """Wait for ``work`` to end, however often the waiting task is cancelled meanwhile; its
    outcome is dropped (the caller was cancelled)."""
    while not work.done():
        try:
            await asyncio.wait([work])
        except asyncio.CancelledError:
            continue
    if not work.cancelled():
        work.exception()  # retrieved, so that asyncio does not log it as never retrieved


def wait_for(coroutine: Coroutine[Any, Any, T]) -> T:
    """From a thread started by ``in_thread``: run ``coroutine`` on its loop, wait for the result.

    Raises ``concurrent.futures.CancelledError`` when the caller of ``in_thread`` was cancelled.
    """
    bridge = _BRIDGE.get(None)
    if bridge is None or _on_a_loop():
        coroutine.close()
        raise RuntimeError("wait_for runs only on a thread started by in_thread (it would block an event loop)")
    with bridge.lock:
        if bridge.cancelled:
            coroutine.close()
            raise concurrent.futures.CancelledError()
        future = asyncio.run_coroutine_threadsafe(coroutine, bridge.loop)
        bridge.pending.add(future)
    try:
        return future.result()
    finally:
        with bridge.lock:
            bridge.pending.discard(future)


def _on_a_loop() -> bool:
    # The loop-side task inherits the thread's context; waiting there would deadlock the loop.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
