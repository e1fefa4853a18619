"""How many image requests an entry worker works on at once, and giving memory back after.

Each image request being worked on holds its decoded image and the copies and tensors made from
it (15-25 MB for a preview); one waiting for its turn holds only its upload (a few hundred KB).
So at most ``limit`` image requests are worked on at once; the rest wait, in order of arrival.
Runner batches form from the requests being worked on, so the limit is also the largest batch
an API can see: on CPU, where batching gains nothing, a few per core keep the runner busy.
Text requests (search queries) hold no image and never wait here.

Whenever no image request is being worked on, the worker hands the memory they freed back to
the system (``runners.memory``), at most once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

from runners import memory


class Admission:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)
        self.active = 0
        self.finished = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._slots:
            self.active += 1
            try:
                yield
            finally:
                self.active -= 1
                self.finished += 1

    async def give_back_memory(self, interval: float = 1.0) -> None:
        """Run for the worker's life: trim the heap when idle after work."""
        trimmed_at = 0
        while True:
            await asyncio.sleep(interval)
            if self.active == 0 and self.finished != trimmed_at:
                trimmed_at = self.finished
                await asyncio.to_thread(memory.trim)
