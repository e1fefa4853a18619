"""Small asyncio helpers."""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import Executor
from typing import Any, Awaitable, Callable, Coroutine, TypeVar

T = TypeVar("T")

# The event loop that handed the current thread its work (see ``in_thread``).
_LOOP: contextvars.ContextVar[asyncio.AbstractEventLoop] = contextvars.ContextVar("immich_cn_ml_loop")


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


async def in_thread(executor: Executor, function: Callable[..., T], *args: Any) -> T:
    """Run ``function(*args)`` on one of ``executor``'s threads, from which ``wait_for`` may
    run coroutines on this loop.

    For library code that calls back into ours synchronously in the middle of its work
    (insightface calls a session's ``run`` inside its detection): the callback waits for a
    runner call made on the loop, while the loop itself never blocks.
    """
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    context.run(_LOOP.set, loop)
    return await loop.run_in_executor(executor, context.run, function, *args)


def wait_for(coroutine: Coroutine[Any, Any, T]) -> T:
    """From a thread started by ``in_thread``: run ``coroutine`` on its loop, wait for the result."""
    try:
        loop = _LOOP.get()
    except LookupError:
        coroutine.close()
        raise RuntimeError("wait_for runs only on a thread started by in_thread") from None
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result()
