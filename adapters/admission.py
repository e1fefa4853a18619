"""How many image requests an entry worker works on at once, and giving memory back after.

Each image request being worked on holds its decoded image and the copies and tensors made from
it (15-25 MB for a preview); one waiting for its turn holds only its upload (a few hundred KB).
So at most ``limit`` image requests are worked on at once; the rest wait, in order of arrival.
Runner batches form from the requests being worked on, so the limit is also the largest batch
an API can see: on CPU, where batching gains nothing, a few per core keep the runner busy; on a
GPU the limit is raised, once the runners say they run there, to the largest image batch
(``Settings.active_requests_on``: 32 by default, about 0.5-0.8 GB of images being worked on),
and follows them should they move (``follow_device``).
Text requests (search queries) hold no image and never wait here.

The worker hands the memory they freed back to the system (``runners.memory``) every second in
which requests finished. What it cannot hand back (Python's and the allocator's fragments, the
libraries the first requests loaded: 88 MiB after an hour's scan) goes when the worker starts
afresh: ``start_afresh`` is called once no image request has finished for
``start_afresh_after`` seconds (MODEL_TTL, as the runner does once its models are unloaded).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import AsyncIterator, Awaitable, Callable

from runners import memory

log = logging.getLogger(__name__)


class Admission:
    def __init__(self, limit: int, start_afresh_after: float = 0.0,
                 start_afresh: Callable[[], None] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.start_afresh_after, self.start_afresh, self.clock = start_afresh_after, start_afresh, clock
        self._slots = asyncio.Semaphore(limit)
        self._owed = 0  # slots to keep, once the requests holding them finish, after a lower limit
        self.active = 0
        self.finished = 0

    async def set_limit(self, limit: int) -> None:
        """Work on up to ``limit`` image requests at once from now on. A lower limit takes the
        free slots at once and the others as the requests holding them finish (none is
        stopped, and none waiting goes in meanwhile)."""
        limit = max(1, limit)
        if limit > self.limit:
            more = limit - self.limit
            repaid = min(more, self._owed)
            self._owed -= repaid
            for _ in range(more - repaid):
                self._slots.release()  # one more request may hold a slot
        elif limit < self.limit:
            fewer = self.limit - limit
            while fewer and not self._slots.locked():
                await self._slots.acquire()  # a free slot: returns at once
                fewer -= 1
            self._owed += fewer
        self.limit = limit

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self._slots.acquire()
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            self.finished += 1
            if self._owed:  # a lower limit takes this slot
                self._owed -= 1
            else:
                self._slots.release()

    async def give_back_memory(self, every: float = 1.0) -> None:
        """Run for the worker's life: trim the heap each ``every`` seconds in which requests
        finished; once idle for ``start_afresh_after`` seconds after work, ``start_afresh``."""
        trimmed_after = 0
        last_work = self.clock()
        while True:
            await asyncio.sleep(every)
            if self.active or self.finished != trimmed_after:
                last_work = self.clock()
            if self.finished != trimmed_after:
                trimmed_after = self.finished
                await asyncio.to_thread(memory.trim)
            elif self.idle_for_good(last_work):
                self.start_afresh()
                return

    async def fit_to_device(self, about: Callable[[], Awaitable[dict]], limit_on: Callable[[str], int],
                            every: float = 2.0, longest: float = 60.0) -> str:
        """Ask the runners (``about()``: ``RunnerControl.about``) until one says it runs on
        "cuda" or every one has answered, then raise the limit to ``limit_on(device)``; the
        device. Runners start with this worker, or run elsewhere and may come up later (asked
        again after ``every`` seconds, twice as long each time up to ``longest``); until then
        the CPU's limit holds."""
        while True:
            try:
                found = await about()
                if found["device"] == "cuda" or all(runner["answers"] for runner in found.get("runners", [])):
                    break
            except Exception as exc:  # none up yet; asked again
                log.debug("the runners' device is not known yet: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(every)
            every = min(longest, every * 2)
        device = found["device"]
        if limit_on(device) > self.limit:
            await self._fit(device, limit_on(device))
        return device

    async def follow_device(self, about: Callable[[], Awaitable[dict]], limit_on: Callable[[str], int],
                            every: float = 2.0, longest: float = 60.0) -> None:
        """``fit_to_device``, then ask again every ``longest`` seconds for the worker's life: a
        runner elsewhere replaced by one on another device (its GPU variant rolled out, or back)
        takes the limit with it. Only a conclusive answer moves it (a GPU runner that is silent
        for a while is no move to the CPU)."""
        device = await self.fit_to_device(about, limit_on, every, longest)
        while True:
            await asyncio.sleep(longest)
            try:
                found = await about()
            except Exception:  # noqa: BLE001 (none answers now: nothing learnt)
                continue
            conclusive = found["device"] == "cuda" or all(runner["answers"] for runner in found.get("runners", []))
            if conclusive and found["device"] != device:
                device = found["device"]
                await self._fit(device, limit_on(device))

    async def _fit(self, device: str, limit: int) -> None:
        if limit != self.limit:
            log.info("runners on %s: working on up to %d image requests at once (was %d)%s", device, limit,
                     self.limit, ", so batches can fill" if limit > self.limit else "")
            await self.set_limit(limit)

    def idle_for_good(self, last_work: float) -> bool:
        """Whether the worker has worked, and has been idle since ``last_work`` long enough to
        start afresh."""
        return (self.start_afresh is not None and self.start_afresh_after > 0 and self.finished > 0
                and not self.active and self.clock() - last_work >= self.start_afresh_after)
