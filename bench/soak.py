"""Soak: many clients, mixed tasks, for minutes; every answer checked, memory watched.

    .venv/bin/python -m bench.soak --minutes 10 [--concurrency 32] [--home DIR]

Serves the models in ``--home`` (by default the benchmark's realistic-cost ones, ``bench.models``;
the tests pass a home of tiny models), first answers every request of the mix alone, one at a
time, then runs ``--concurrency`` closed-loop clients for ``--minutes``, each sending requests of
every kind: Immich's CLIP image and text, faces and OCR, and MT Photos' ``/clip/img``,
``/clip/txt``, ``/ocr`` and ``/represent``. Each answer must equal the one the same input got
alone (numbers within float tolerance: concurrent requests share forward passes); a different
one is cross-talk. The process tree's resident memory is sampled every second: after the
warm-up (the first ``--warmup`` seconds, which load models and fill pools), its mean over the
last quarter of the run must stay within 10 % of its mean over the first quarter. Prints one
JSON summary; exits 1 on any error, any cross-talk or memory growth past 10 %.
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
from typing import Any

import httpx

from bench import models, rss, workloads
from tests.support import multipart
from tests.support.bento_server import BentoServer

MIB = 2**20
MT_KEY = "mt_photos_ai_extra"  # the default the soak's server runs with
#: Answers within this of each other are the same (requests batched together give float
#: results a few ulps apart; MT's 2-decimal strings may round the other way).
TOLERANCE = 0.011
#: Allowed growth of the peak after warm-up over the warm-up's peak.
GROWTH_LIMIT = 0.10


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


async def _soak(url: str, requests: list[Request], seconds: float, concurrency: int) -> tuple[list[Any], Totals]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        alone = []
        for request in requests:  # one at a time: the truth each concurrent answer must equal
            response = await _send(client, request)
            if response.status_code != 200:
                raise SystemExit(f"{request.kind} alone answered {response.status_code}: {response.text[:300]}")
            alone.append(response.json())
        totals = Totals()
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

        await asyncio.gather(*(worker(seed) for seed in range(concurrency)))
        return alone, totals


def soak(home: Path, minutes: float, concurrency: int, warmup: float) -> dict[str, Any]:
    requests = mix()
    server = BentoServer(".", home, {}).start()
    try:
        samples: list[tuple[float, int]] = []
        started = time.monotonic()
        with _Sampler(server.pid, samples):
            _, totals = asyncio.run(_soak(server.url, requests, 60 * minutes, concurrency))
        healthy = httpx.get(f"{server.url}/ping", timeout=5).text == "pong"
    finally:
        server.stop()
    # The clock starts with the alone answers (which load the models) and the warm-up with it.
    after = [value for at, value in samples if at - started > warmup]
    growth = _growth(after)
    result = {
        "minutes": minutes, "concurrency": concurrency, "warmup_s": warmup,
        "requests": sum(totals.requests.values()), "errors": len(totals.errors), "crosstalk": len(totals.crosstalk),
        "rss_mib": {"peak": round(max((v for _, v in samples), default=0) / MIB),
                    "after_warmup_first_quarter_mean": round(_mean(after[: len(after) // 4]) / MIB),
                    "last_quarter_mean": round(_mean(after[-(len(after) // 4):]) / MIB),
                    "growth": round(growth, 4)},
        "ping_after": healthy, "by_kind": totals.summary(),
        "first_errors": totals.errors[:5], "first_crosstalk": totals.crosstalk[:5],
    }
    failures = [reason for reason, failed in (
        ("no requests", not result["requests"]), ("errors", bool(totals.errors)),
        ("cross-talk", bool(totals.crosstalk)), ("/ping failed after", not healthy),
        ("too few memory samples after the warm-up", len(after) < 8),
        (f"memory grew over {GROWTH_LIMIT:.0%}", not growth <= GROWTH_LIMIT),
    ) if failed]
    result["passed"], result["failures"] = not failures, failures
    return result


def _mean(values: list[int]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _growth(after: list[int]) -> float:
    """How much the memory rose from the first quarter after the warm-up to the last, by their
    means: memory under load swings with the batches that happen to form, a leak climbs."""
    quarter = len(after) // 4
    if quarter == 0:
        return float("nan")
    return _mean(after[-quarter:]) / _mean(after[:quarter]) - 1


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
