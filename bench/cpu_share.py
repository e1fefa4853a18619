"""Where a request's CPU time goes: each process of the service, and its busiest threads.

    .venv/bin/python -m bench.cpu_share --workload ocr [--concurrency 1] [--requests 60] [--home H]

Starts the service on the benchmark's models (``bench.models``, imported into ``--home``),
warms it up, then sends ``--requests`` requests of one workload from ``--concurrency`` clients
and reads every process's and thread's CPU time (user + system) before and after. It prints,
as JSON, the wall time per request and the CPU milliseconds per request of the entry service,
the runner, `bentoml serve` itself and this client.

On a machine with few cores this is the arithmetic behind the speed ceilings in
bench/BENCHMARKS.md: every millisecond the entry service or the runner spends outside ONNX
Runtime is taken from the forward passes once the cores are full. In the runner, the thread
that calls ONNX Runtime also unpickles and answers; ONNX Runtime's pool threads are the others
with the most time.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import psutil

from bench import load, models, rss, workloads
from tests.support.bento_server import BentoServer

WORKLOADS = {"clip_image": workloads.clip_image, "clip_text": workloads.clip_text,
             "faces": workloads.faces, "ocr": workloads.ocr}


def cpu_times(processes: list[psutil.Process]) -> dict[str, dict[int, float]]:
    """{process name: {thread id: CPU seconds}}; thread 0 holds the process's own total."""
    out: dict[str, dict[int, float]] = {}
    for process in processes:
        try:
            times = process.cpu_times()
            threads = {t.id: t.user_time + t.system_time for t in process.threads()}
            name = rss.service_name(process)
        except psutil.Error:  # a worker that ended meanwhile
            continue
        out[name] = {0: times.user + times.system, **threads}
    return out


def share(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]], requests: int,
          top: int = 4) -> dict[str, dict]:
    """CPU ms per request of each process, and of its ``top`` busiest threads."""
    out: dict[str, dict] = {}
    for name, threads in after.items():
        old = before.get(name, {})
        used = {tid: seconds - old.get(tid, 0.0) for tid, seconds in threads.items()}
        busiest = sorted(((s, tid) for tid, s in used.items() if tid != 0), reverse=True)[:top]
        out[name] = {"cpu_ms_per_request": round(1000 * used[0] / requests, 1),
                     "threads_ms_per_request": [round(1000 * s / requests, 1) for s, _ in busiest]}
    return out


def measure(url: str, pid: int, workload: load.Workload, concurrency: int, requests: int) -> dict:
    processes = rss.tree(pid)
    client = psutil.Process(os.getpid())
    before, client_before = cpu_times(processes), client.cpu_times()
    [tally] = load.run(url, [(workload, concurrency)], requests=requests, warmup=0)
    after, client_after = cpu_times(processes), client.cpu_times()
    client_ms = 1000 * (client_after.user + client_after.system - client_before.user - client_before.system)
    return {
        "workload": workload.name,
        "concurrency": concurrency,
        "requests": len(tally.latencies),
        "errors": len(tally.errors),
        "wall_ms_per_request": round(1000 * tally.seconds / requests, 1),
        "p50_ms": tally.summary()["p50_ms"],
        "processes": share(before, after, requests),
        "client_cpu_ms_per_request": round(client_ms / requests, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=30,
                        help="requests first (BentoML's batcher delays a few while it learns the pass time)")
    parser.add_argument("--home", type=Path, default=Path(tempfile.gettempdir()) / "immich-cn-ml-bench",
                        help="BENTOML_HOME holding the models (bench.models imports them when missing)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a setting for the service")
    args = parser.parse_args()

    models.prepare(args.home)
    workload = WORKLOADS[args.workload]()
    server = BentoServer(".", args.home, dict(item.split("=", 1) for item in args.env), exact=False).start()
    try:
        load.run(server.url, [(workload, args.concurrency)], requests=args.warmup, warmup=0)
        result = measure(server.url, server.pid, workload, args.concurrency, args.requests)
    finally:
        server.stop()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
