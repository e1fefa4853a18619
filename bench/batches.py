"""CLIP images/s at several concurrencies, and how large the runner's batches grew: whether
batches can fill (on a GPU, up to ``CLIP_MAX_BATCH_SIZE``; on a CPU, passes stay small).

    .venv/bin/python -m bench.batches [--concurrency 1,16,64] [--seconds 30]

Serves the benchmark's models (``bench.models``) as a user runs the service, on whatever device
the runner finds (CUDA where onnxruntime-gpu sees a GPU), and prints, per concurrency: the
device, the entry's admission limit (from its log), images/s, p50, and the histogram of CLIP
image batch sizes (calls per batch) from BentoML's metrics.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from pathlib import Path

import httpx

from bench import load, models, workloads
from tests.support.bento_server import BentoServer


def histogram(url: str, method: str = "clip_image") -> dict[str, float]:
    """BentoML's adaptive batch size histogram of ``method``: upper bound -> batches so far."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    buckets: dict[str, float] = {}
    for labels, value in re.findall(r"^bentoml_service_adaptive_batch_size_bucket\{([^}]*)\} (\S+)$", text, re.M):
        if f'method_name="{method}"' in labels:
            bound = re.search(r'le="([^"]+)"', labels).group(1)
            buckets[bound] = buckets.get(bound, 0.0) + float(value)
    return buckets


def per_bucket(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    """Batches of each size range between two cumulative readings ("<=1", "<=2" ...)."""
    bounds = sorted(after, key=lambda b: float("inf") if b == "+Inf" else float(b))
    out, below = {}, 0.0
    for bound in bounds:
        total = after[bound] - before.get(bound, 0.0)
        if total - below:
            out[f"<={bound}"] = int(total - below)
        below = total
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--home", type=Path, default=Path(tempfile.gettempdir()) / "immich-cn-ml-bench")
    args = parser.parse_args()
    models.prepare(args.home)
    server = BentoServer(".", args.home, {}, exact=False).start()
    try:
        clip = workloads.clip_image()
        load.run(server.url, [(clip, 1)], requests=2)  # the model loaded
        status = httpx.get(f"{server.url}/ui/api/status", timeout=30).json()
        limit = re.findall(r"working on up to (\d+) image requests", server.log())
        for concurrency in [int(c) for c in args.concurrency.split(",")]:
            before = histogram(server.url)
            [tally] = load.run(server.url, [(clip, concurrency)], seconds=args.seconds, warmup=0)
            print(json.dumps({"device": status["device"], "concurrency": concurrency,
                              "admission_limit": int(limit[-1]) if limit else "cores (CPU)",
                              **tally.summary(), "images_s": round(tally.rate, 2),
                              "clip_batches": per_bucket(before, histogram(server.url))}), flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
