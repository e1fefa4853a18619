"""One forward pass at a time, shared fairly between model families.

A runner process serves CLIP, faces and OCR together (``runners.services``). Each forward pass
uses every core, so two at once only slow each other: passes take turns. When several wait,
the family that has had the least runner time lately goes first (its use decays with a
half-life of ``half_life`` seconds), so a library scan's CLIP, face and OCR jobs each get their
share of the machine whatever their pass sizes. A face request needs two passes, an image's
CLIP one long one: counting time rather than passes keeps one from crowding out another.
Among waiters of one family, the first come goes first.

Whoever frees the turn (or finds it free) chooses the next waiter once and grants it; waiters
only check whether they hold the grant. Were each waiter to rank the others itself, at its own
moment, two could rank them differently (decayed uses are floats: after hours idle they
underflow to 0 at different moments) and each wait for the other, for good.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
import time
from typing import Callable, Iterator


class FairTurns:
    def __init__(self, half_life: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.half_life, self.clock = half_life, clock
        self._cond = threading.Condition()
        self._busy = False
        self._used: dict[str, tuple[float, float]] = {}  # family -> (seconds used, as of when)
        self._waiting: list[tuple[int, str]] = []  # (ticket, family), in arrival order
        self._granted: int | None = None  # the ticket whose turn it is, until it takes it
        self._tickets = itertools.count()

    def used(self, family: str, now: float) -> float:
        """The family's decayed runner seconds at ``now``."""
        seconds, since = self._used.get(family, (0.0, now))
        return seconds * math.exp2(-(now - since) / self.half_life)

    @contextlib.contextmanager
    def turn(self, family: str) -> Iterator[None]:
        """Wait for this family's turn, and hold it for the duration of the block."""
        with self._cond:
            ticket = next(self._tickets)
            self._waiting.append((ticket, family))
            if not self._busy and self._granted is None:
                self._grant()
            while self._granted != ticket:
                self._cond.wait()
            self._waiting.remove((ticket, family))
            self._granted = None
            self._busy = True
        started = self.clock()
        try:
            yield
        finally:
            with self._cond:
                now = self.clock()
                self._used[family] = (self.used(family, now) + (now - started), now)
                self._busy = False
                if self._waiting:
                    self._grant()

    def _grant(self) -> None:
        """Give the turn to the waiter with the least decayed use, the first come among equals."""
        now = self.clock()
        self._granted = min(self._waiting, key=lambda waiter: (self.used(waiter[1], now), waiter[0]))[0]
        self._cond.notify_all()
