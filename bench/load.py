"""Closed-loop HTTP load: N clients, each sending its next request as soon as its last is answered.

This is how Immich's job queues load a machine-learning server (each job worker waits for its
answer), so requests/s at concurrency N is what a library scan with N workers gets. Bodies are
built once; a client's own cost is a few milliseconds of CPU per request, on the same cores.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import httpx


@dataclass(frozen=True)
class Workload:
    """One kind of request: its multipart bodies (used in turn) and a check of each answer."""

    name: str
    bodies: list[tuple[bytes, str]]  # (body, content type)
    check: Callable[[dict], None] = lambda answer: None


@dataclass
class Tally:
    """What one stream of requests got."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def add(self, other: Tally) -> None:
        """Count ``other``'s requests and time in this one (a stream measured in slices)."""
        self.latencies += other.latencies
        self.errors += other.errors
        self.seconds += other.seconds

    def summary(self) -> dict:
        return {
            "requests": len(self.latencies),
            "errors": len(self.errors),
            "req_s": round(self.rate, 3),
            "p50_ms": round(1000 * statistics.median(self.latencies), 1) if self.latencies else None,
            "p95_ms": round(1000 * self.percentile(0.95), 1) if self.latencies else None,
        }


async def _client(client: httpx.AsyncClient, url: str, load: Workload, offset: int, tally: Tally,
                  stop: Callable[[int], bool]) -> None:
    sent = 0
    while not stop(sent):
        body, content_type = load.bodies[(offset + sent) % len(load.bodies)]
        started = time.perf_counter()
        try:
            response = await client.post(url, content=body, headers={"content-type": content_type})
            if response.status_code != 200:
                tally.errors.append(f"{response.status_code}: {response.text[:200]}")
            else:
                load.check(response.json())
                tally.latencies.append(time.perf_counter() - started)
        except Exception as exc:  # counted, not raised: a benchmark reports what broke
            tally.errors.append(f"{type(exc).__name__}: {exc}")
        sent += 1


async def _run(url: str, streams: list[tuple[Workload, int]], seconds: float | None, requests: int | None,
               warmup: int) -> list[Tally]:
    clients = sum(concurrency for _, concurrency in streams)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        predict = f"{url}/predict"
        # Warm-up: every stream's first requests load models and fill pools, not measured.
        for load, _ in streams:
            for n in range(warmup):
                await _client(client, predict, load, n, Tally(), lambda sent: sent >= 1)
        tallies = [Tally() for _ in streams]
        started = time.perf_counter()
        if seconds is not None:
            deadline = started + seconds
            stop = lambda sent: time.perf_counter() >= deadline  # noqa: E731
        else:
            stop = None
        tasks = []
        for (load, concurrency), tally in zip(streams, tallies):
            for index in range(concurrency):
                if stop is None:
                    # ``requests`` per stream, shared out among its clients
                    share = requests // concurrency + (index < requests % concurrency)
                    until = lambda sent, share=share: sent >= share  # noqa: E731
                else:
                    until = stop
                tasks.append(_client(client, predict, load, index * 7, tally, until))
        await asyncio.gather(*tasks)
        ended = time.perf_counter()
        for tally in tallies:
            tally.seconds = ended - started
    return tallies


def run(url: str, streams: list[tuple[Workload, int]], *, seconds: float | None = None,
        requests: int | None = None, warmup: int = 2) -> list[Tally]:
    """Run every (workload, concurrency) stream at once, for ``seconds`` or ``requests`` per
    stream; one tally per stream."""
    if (seconds is None) == (requests is None):
        raise ValueError("give seconds or requests")
    return asyncio.run(_run(url, streams, seconds, requests, warmup))
