"""Soak: many clients, mixed tasks, for minutes; every answer checked, memory watched.

    .venv/bin/python -m bench.soak --minutes 10 [--concurrency 32] [--home DIR]

Serves the models in ``--home`` (by default the benchmark's realistic-cost ones, ``bench.models``;
the tests pass a home of tiny models), first answers every request of the mix alone, one at a
time, then runs ``--concurrency`` closed-loop clients for ``--minutes``, each sending requests of
every kind: Immich's CLIP image and text, faces and OCR, and MT Photos' ``/clip/img``,
``/clip/txt``, ``/ocr`` and ``/represent``. Each answer must equal the one the same input got
alone (numbers within float tolerance: concurrent requests share forward passes); a different
one is cross-talk.

Memory: the process tree's resident memory at rest, right after the warm-up (the first
``--warmup`` seconds of load, which load models and fill pools) and right after the run, each
read once the clients have paused for a few seconds, must not grow by more than 10 %. At rest,
what the passes and requests in flight held is given back (runners/memory.py), so what stays is
what a leak would grow; under load the tree swings by a tenth or more with the batches that
happen to form (seen: 708-931 MiB within a minute on the tests' tiny models), which made a
comparison of samples under load fail now and then with no leak at all. The samples taken
every second under load are reported too (the peak, the first and last quarter's means).
Prints one JSON summary; exits 1 on any error, any cross-talk or memory growth past 10 %.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx

from bench import models, rss, workloads
from tests.support import multipart
from tests.support.bento_server import BentoServer

MIB = 2**20
MT_KEY = "mt_photos_ai_extra"  # the default the soak's server runs with
#: Answers within this of each other are the same (requests batched together give float
#: results a few ulps apart; MT's 2-decimal strings may round the other way).
TOLERANCE = 0.011
#: Allowed growth of the memory at rest after the run over the memory at rest after the warm-up.
GROWTH_LIMIT = 0.10
#: Seconds the clients pause before memory at rest is read: the runner and the entry service
#: give freed memory back within a second of their last work.
SETTLE_SECONDS = 3.0


@dataclass(frozen=True)
class Request:
    kind: str
    path: str
    body: bytes
    headers: dict[str, str]


def mix() -> list[Request]:
    """Every request of the soak: distinct inputs of every kind, Immich's and MT Photos'."""
    out: list[Request] = []
    for kind in (workloads.clip_image(), workloads.clip_text(), workloads.faces(), workloads.ocr()):
        out += [Request(kind.name, "/predict", body, {"content-type": content_type})
                for body, content_type in kind.bodies]
    key = {"api-key": MT_KEY}
    images = {"/clip/img": [workloads.scene(seed) for seed in range(10, 13)],
              "/ocr": [workloads.scene(seed) for seed in range(20, 22)],
              "/represent": [workloads.face_preview(seed) for seed in range(30, 34)]}
    for path, datas in images.items():
        for data in datas:
            body, content_type = multipart.build({"file": multipart.FilePart("photo.jpg", data, "image/jpeg")})
            out.append(Request(f"mt {path}", path, body, {**key, "content-type": content_type}))
    for query in workloads.QUERIES[:3]:
        out.append(Request("mt /clip/txt", "/clip/txt", json.dumps({"text": query}).encode(),
                           {**key, "content-type": "application/json"}))
    return out


def same(got: Any, want: Any) -> bool:
    """Whether two answers are the same, numbers within ``TOLERANCE`` (strings holding numbers
    or JSON arrays of numbers, as Immich's embeddings and MT's scores are, compared as numbers)."""
    if isinstance(got, str) and isinstance(want, str):
        if got == want:
            return True
        try:
            return same(json.loads(got), json.loads(want))
        except ValueError:
            return False
    if isinstance(got, bool) or isinstance(want, bool):
        return type(got) is type(want) and got == want
    if isinstance(got, (int, float)) and isinstance(want, (int, float)):
        return abs(got - want) <= TOLERANCE * max(1.0, abs(want))
    if isinstance(got, list) and isinstance(want, list):
        return len(got) == len(want) and all(same(a, b) for a, b in zip(got, want))
    if isinstance(got, dict) and isinstance(want, dict):
        return got.keys() == want.keys() and all(same(got[k], want[k]) for k in want)
    return got == want


@dataclass
class Totals:
    requests: dict[str, int] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    crosstalk: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        def p(kind: str, q: float) -> float:
            ordered = sorted(self.latencies[kind])
            return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

        return {kind: {"requests": count, "p50_ms": p(kind, 0.5), "p95_ms": p(kind, 0.95)}
                for kind, count in sorted(self.requests.items()) if self.latencies.get(kind)}


async def _send(client: httpx.AsyncClient, request: Request) -> httpx.Response:
    return await client.post(request.path, content=request.body, headers=request.headers)


async def _soak(url: str, requests: list[Request], warmup: float, seconds: float, concurrency: int,
                at_rest: Callable[[], int]) -> tuple[Totals, list[int]]:
    """Warm-up, then the run; (what the clients got, memory at rest after each of the two)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        alone = []
        for request in requests:  # one at a time: the truth each concurrent answer must equal
            response = await _send(client, request)
            if response.status_code != 200:
                raise SystemExit(f"{request.kind} alone answered {response.status_code}: {response.text[:300]}")
            alone.append(response.json())
        totals = Totals()
        rested = []
        for phase, phase_seconds in enumerate((warmup, seconds - warmup)):
            await _clients(client, requests, alone, totals, phase_seconds, concurrency, first_seed=phase * concurrency)
            await asyncio.sleep(SETTLE_SECONDS)
            rested.append(at_rest())
        return totals, rested


async def _clients(client: httpx.AsyncClient, requests: list[Request], alone: list[Any], totals: Totals,
                   seconds: float, concurrency: int, first_seed: int) -> None:
    """``concurrency`` closed-loop clients for ``seconds``, every answer checked into ``totals``."""
    deadline = time.monotonic() + seconds

    async def worker(seed: int) -> None:
        order = random.Random(seed)
        while time.monotonic() < deadline:
            index = order.randrange(len(requests))
            request = requests[index]
            started = time.monotonic()
            try:
                response = await _send(client, request)
            except Exception as exc:  # counted: a soak reports what broke
                totals.errors.append(f"{request.kind}: {type(exc).__name__}: {exc}")
                continue
            totals.requests[request.kind] = totals.requests.get(request.kind, 0) + 1
            if response.status_code != 200:
                totals.errors.append(f"{request.kind}: {response.status_code} {response.text[:200]}")
            elif not same(response.json(), alone[index]):
                totals.crosstalk.append(f"{request.kind} #{index}: {response.text[:200]}")
            else:
                totals.latencies.setdefault(request.kind, []).append(time.monotonic() - started)

    await asyncio.gather(*(worker(first_seed + n) for n in range(concurrency)))


def soak(home: Path, minutes: float, concurrency: int, warmup: float) -> dict[str, Any]:
    if not 0 <= warmup < 60 * minutes:
        raise ValueError(f"the warm-up ({warmup:g} s) must be shorter than the run ({60 * minutes:g} s)")
    requests = mix()
    server = BentoServer(".", home, {}, exact=False).start()
    try:
        samples: list[tuple[float, int]] = []
        with _Sampler(server.pid, samples):
            started = time.monotonic()
            totals, (rest_before, rest_after) = asyncio.run(
                _soak(server.url, requests, warmup, 60 * minutes, concurrency, lambda: rss.total(server.pid)))
        healthy = httpx.get(f"{server.url}/ping", timeout=5).text == "pong"
    finally:
        server.stop()
    growth = rest_after / rest_before - 1
    # Under load, after the warm-up (the clock starts with the alone answers): reported, not judged.
    loaded = [value for at, value in samples if at - started > warmup + SETTLE_SECONDS]
    quarter = max(1, len(loaded) // 4)
    result = {
        "minutes": minutes, "concurrency": concurrency, "warmup_s": warmup,
        "requests": sum(totals.requests.values()), "errors": len(totals.errors), "crosstalk": len(totals.crosstalk),
        "rss_mib": {"at_rest_after_warmup": round(rest_before / MIB), "at_rest_after_run": round(rest_after / MIB),
                    "growth": round(growth, 4),
                    "peak": round(max((v for _, v in samples), default=0) / MIB),
                    "under_load_first_quarter_mean": round(_mean(loaded[:quarter]) / MIB),
                    "under_load_last_quarter_mean": round(_mean(loaded[-quarter:]) / MIB)},
        "ping_after": healthy, "by_kind": totals.summary(),
        "first_errors": totals.errors[:5], "first_crosstalk": totals.crosstalk[:5],
    }
    failures = [reason for reason, failed in (
        ("no requests", not result["requests"]), ("errors", bool(totals.errors)),
        ("cross-talk", bool(totals.crosstalk)), ("/ping failed after", not healthy),
        (f"memory at rest grew over {GROWTH_LIMIT:.0%}", not growth <= GROWTH_LIMIT),
    ) if failed]
    result["passed"], result["failures"] = not failures, failures
    return result


def _mean(values: list[int]) -> float:
    return sum(values) / len(values) if values else float("nan")


class _Sampler(rss.PeakSampler):
    """Every second, (time, whole-tree RSS) into ``samples``."""

    def __init__(self, pid: int, samples: list[tuple[float, int]]) -> None:
        super().__init__(pid, interval=1.0)
        self.samples = samples

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), rss.total(self.pid)))
            self._stop.wait(self.interval)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds of the run before memory is judged")
    parser.add_argument("--home", type=Path, default=None,
                        help="a BENTOML_HOME with the models (default: the benchmark's, built once)")
    args = parser.parse_args()
    home = args.home
    if home is None:
        home = Path(tempfile.gettempdir()) / "immich-cn-ml-bench"
        models.prepare(home)
    result = soak(home, args.minutes, args.concurrency, args.warmup)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    sys.exit(0 if result["passed"] else 1)


if __name__ == "__main__":
    main()
