"""How much time the proxy adds: requests per second and latency, direct vs through us.

Starts the upstream stand-in (answers at once) and `bentoml serve .` in front of it, then
sends the same Immich-shaped CLIP request (a 1440x1080 JPEG preview) to each, at the given
concurrency. Run from the project root:

    .venv/bin/python -m bench.proxy_overhead [--requests 400] [--concurrency 1 4]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from PIL import Image

from tests.support import multipart
from tests.support.bento_server import BentoServer
from tests.support.upstream_stub import UpstreamStub

ENTRIES = '{"clip":{"visual":{"modelName":"ViT-B-32__openai"}}}'


def preview() -> bytes:
    import io

    out = io.BytesIO()
    Image.effect_noise((1440, 1080), 40).convert("RGB").save(out, "JPEG", quality=80)
    return out.getvalue()


def measure(url: str, body: bytes, content_type: str, requests: int, concurrency: int) -> tuple[float, float, float]:
    with httpx.Client(limits=httpx.Limits(max_connections=concurrency)) as client:

        def one(_: int) -> float:
            started = time.perf_counter()
            response = client.post(f"{url}/predict", content=body, headers={"content-type": content_type})
            response.raise_for_status()
            return time.perf_counter() - started

        for i in range(min(20, requests)):  # warm up connections
            one(i)
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            latencies = sorted(pool.map(one, range(requests)))
        elapsed = time.perf_counter() - started
    return requests / elapsed, statistics.median(latencies) * 1000, latencies[int(0.95 * len(latencies))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()

    image = preview()
    body, content_type = multipart.build({"entries": ENTRIES, "image": multipart.FilePart("blob", image)})
    stub = UpstreamStub().start()
    with tempfile.TemporaryDirectory() as home:
        server = BentoServer(".", Path(home), {"IMMICH_CN_ML_UPSTREAM_URL": stub.url}, exact=False).start()
        try:
            print(f"request: {len(body)} bytes (JPEG 1440x1080, {len(image)} bytes), {args.requests} requests per row")
            print(f"{'target':<8} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8}")
            for concurrency in args.concurrency:
                for name, url in (("direct", stub.url), ("proxied", server.url)):
                    rps, p50, p95 = measure(url, body, content_type, args.requests, concurrency)
                    stub.reset()  # drop the recorded bodies
                    print(f"{name:<8} {concurrency:>4} {rps:>8.1f} {p50:>8.2f} {p95:>8.2f}")
        finally:
            server.stop()
            stub.stop()


if __name__ == "__main__":
    main()
