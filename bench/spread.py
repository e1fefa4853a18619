"""How calls spread over a runner family's replicas behind one address, as behind a Kubernetes
Service, when a replica is added during a scan (an autoscaler scaling up).

    .venv/bin/python -m bench.spread [--seconds 90] [--scale-at 20] [--concurrency 4]

Two OCR runner services served alone (``bentoml serve runners.services:OcrRunner``) sit behind a
TCP balancer that places each new connection on a replica chosen at random, as kube-proxy does;
the entry service names the balancer as its OCR runner (``IMMICH_CN_ML_RUNNER_URL__OCR``).
Clients send Immich's OCR request in a closed loop. At ``--scale-at`` seconds the second replica
joins the balancer. Printed, for connections kept open (``RUNNER_CONNECTION_REQUESTS=0``) and for
the default turnover: the runner calls each replica answered after the scale-up, and the
connections the balancer placed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import threading
from pathlib import Path
from typing import Callable

import httpx

from bench import load, workloads
from config.settings import Settings
from tests.support.bento_server import BentoServer
from tests.support.ports import free_port


class Balancer:
    """A TCP balancer on 127.0.0.1 that places each connection on one of ``backends`` (ports)
    at random, and keeps it there for its life."""

    def __init__(self) -> None:
        self.backends: list[int] = []
        self.placed: dict[int, int] = {}  # backend port -> connections placed on it
        self.calls: dict[int, int] = {}  # backend port -> runner API calls sent to it
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> Balancer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(asyncio.start_server(self._connection, "127.0.0.1", self.port),
                                         self._loop).result(10)
        return self

    def add(self, port: int) -> None:
        self._loop.call_soon_threadsafe(self.backends.append, port)

    async def _connection(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        port = random.choice(self.backends)
        self.placed[port] = self.placed.get(port, 0) + 1
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, writer, lambda data: self._count(port, data)),
                             _pipe(reader, client_writer))

    def _count(self, port: int, data: bytes) -> None:
        # A runner call's request line (HTTP/1.1, one call at a time on a connection).
        self.calls[port] = self.calls.get(port, 0) + data.count(b"POST /ocr_")


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                seen: Callable[[bytes], None] = lambda data: None) -> None:
    try:
        while data := await reader.read(65536):
            seen(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


def scale_up(home: Path, turnover: int, seconds: float, scale_at: float, concurrency: int) -> dict:
    env = {"IMMICH_CN_ML_RUNNER_CONNECTION_REQUESTS": str(turnover)}
    replicas = [BentoServer("runners.services:OcrRunner", home, env, exact=False) for _ in range(2)]
    balancer = Balancer().start()
    entry = None
    try:
        for replica in replicas:
            replica.start()
        balancer.add(replicas[0].port)
        entry = BentoServer(".", home, {"IMMICH_CN_ML_RUNNERS": "split",
                                        "IMMICH_CN_ML_RUNNER_URL__OCR": f"http://127.0.0.1:{balancer.port}"},
                            exact=False).start()
        ocr = workloads.ocr()
        load.run(entry.url, [(ocr, 1)], requests=2)  # the models loaded in the first replica
        before: list[int] = []

        def scale() -> None:
            before.extend(balancer.calls.get(r.port, 0) for r in replicas)
            balancer.add(replicas[1].port)

        timer = threading.Timer(scale_at, scale)
        timer.start()
        [tally] = load.run(entry.url, [(ocr, concurrency)], seconds=seconds, warmup=0)
        gained = [balancer.calls.get(r.port, 0) - b for r, b in zip(replicas, before)]
        return {"turnover": turnover, "requests": len(tally.latencies), "errors": len(tally.errors),
                "calls_after_scale_up": gained,
                "new_replica_share": round(gained[1] / max(1, sum(gained)), 3),
                "connections_placed": [balancer.placed.get(r.port, 0) for r in replicas]}
    finally:
        for server in [entry, *replicas]:
            if server is not None:
                server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--scale-at", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    default = Settings.model_fields["runner_connection_requests"].default
    with tempfile.TemporaryDirectory(prefix="immich-cn-ml-spread-") as home:
        for turnover in (0, default):
            print(json.dumps(scale_up(Path(home), turnover, args.seconds, args.scale_at, args.concurrency)),
                  flush=True)


if __name__ == "__main__":
    main()
