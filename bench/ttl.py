"""Memory before, with, and after the models: MODEL_TTL unloads them and the memory goes back.

    .venv/bin/python -m bench.ttl [--ttl 10]

Serves the benchmark's models (``bench.models``: Chinese-CLIP ViT-B-16, a buffalo_l-sized face
pack, PP-OCRv5 mobile) with ``MACHINE_LEARNING_MODEL_TTL=--ttl``, and prints the process tree's
resident memory idle after start, once one request of each kind has loaded every model, after
the TTL has unloaded them (and the runner and the entry worker have started afresh), and after the same requests again
(whose answers must not change).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx

from bench import models, rss, workloads
from bench.soak import wait_for_fresh_start
from tests.support.bento_server import BentoServer
from tests.support.model_metrics import loaded_models

MIB = 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ttl", type=float, default=10.0)
    parser.add_argument("--home", type=Path, default=Path(tempfile.gettempdir()) / "immich-cn-ml-bench")
    args = parser.parse_args()
    models.prepare(args.home)

    env = {"MACHINE_LEARNING_MODEL_TTL": str(args.ttl), "MACHINE_LEARNING_MODEL_TTL_POLL_S": "1"}
    kinds = [workloads.clip_image(), workloads.clip_text(), workloads.faces(), workloads.ocr()]
    server = BentoServer(".", args.home, env, exact=False).start()

    def answers() -> list[dict]:
        out = []
        for kind in kinds:
            body, content_type = kind.bodies[0]
            response = httpx.post(f"{server.url}/predict", content=body, headers={"content-type": content_type},
                                  timeout=300)
            response.raise_for_status()
            out.append(response.json())
        return out

    def show(when: str) -> None:
        split = rss.by_process(server.pid)
        loaded = sum(loaded_models(server.url).values())
        parts = ", ".join(f"{name} {value / MIB:.0f}" for name, value in sorted(split.items()))
        print(f"{when:<28} {sum(split.values()) / MIB:7.0f} MiB  ({parts}); model files loaded: {loaded}", flush=True)

    try:
        time.sleep(3)
        show("idle after start")
        first = answers()
        time.sleep(2)  # the runner trims what the passes left once they settle
        show("every model loaded")
        wait_for_fresh_start(server, args.ttl)
        show(f"after MODEL_TTL={args.ttl:g} s")
        again = answers()
        time.sleep(2)
        show("loaded again")
        print("answers after reloading are the same:", again == first)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
