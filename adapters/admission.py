"""How many image requests an entry worker works on at once, and giving memory back after.

Each image request being worked on holds its decoded image and the copies and tensors made from
it (15-25 MB for a preview); one waiting for its turn holds only its upload (a few hundred KB).
So at most ``limit`` image requests are worked on at once; the rest wait, in order of arrival.
Runner batches form from the requests being worked on, so the limit is also the largest batch
an API can see: on CPU, where batching gains nothing, a few per core keep the runner busy.
Text requests (search queries) hold no image and never wait here.

The worker hands the memory they freed back to the system (``runners.memory``) as soon as no
image request is being worked on, and every few seconds while requests keep coming.
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

    async def give_back_memory(self, interval: float = 1.0, busy_every: int = 5) -> None:
        """Run for the worker's life: trim the heap when idle after work, or every
        ``busy_every`` intervals while busy."""
        trimmed_after, waited = 0, 0
        while True:
            await asyncio.sleep(interval)
            waited += 1
            if self.finished != trimmed_after and (self.active == 0 or waited >= busy_every):
                trimmed_after, waited = self.finished, 0
                await asyncio.to_thread(memory.trim)
