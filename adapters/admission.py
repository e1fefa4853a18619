"""How many image requests an entry worker works on at once, and giving memory back after.

Each image request being worked on holds its decoded image and the copies and tensors made from
it (15-25 MB for a preview); one waiting for its turn holds only its upload (a few hundred KB).
So at most ``limit`` image requests are worked on at once; the rest wait, in order of arrival.
Runner batches form from the requests being worked on, so the limit is also the largest batch
an API can see: on CPU, where batching gains nothing, a few per core keep the runner busy.
Text requests (search queries) hold no image and never wait here.

The worker hands the memory they freed back to the system (``runners.memory``) every second in
which requests finished.
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

    async def give_back_memory(self, every: float = 1.0) -> None:
        """Run for the worker's life: trim the heap each ``every`` seconds in which requests
        finished."""
        trimmed_after = 0
        while True:
            await asyncio.sleep(every)
            if self.finished != trimmed_after:
                trimmed_after = self.finished
                await asyncio.to_thread(memory.trim)
