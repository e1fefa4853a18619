"""Small asyncio helpers."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable


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
