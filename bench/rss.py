"""Resident memory of a server's whole process tree (the `bentoml serve` process and every
worker it started), as a user's `top` or a container's memory counter sees it."""

from __future__ import annotations

import threading
import time

import psutil


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def service_name(process: psutil.Process) -> str:
    """The BentoML service a worker process runs, or "bentoml serve" for the server itself."""
    args = process.cmdline()
    return args[args.index("--service-name") + 1] if "--service-name" in args else "bentoml serve"


def by_process(pid: int) -> dict[str, int]:
    """RSS in bytes of each process, named by its BentoML service (or its command)."""
    out: dict[str, int] = {}
    for process in tree(pid):
        try:
            name = service_name(process)
            rss = process.memory_info().rss
        except psutil.Error:
            continue
        out[name] = out.get(name, 0) + rss
    return out


def total(pid: int) -> int:
    return sum(by_process(pid).values())


class PeakSampler:
    """Samples the tree's total RSS every ``interval`` seconds in a thread; keeps the peak and
    the per-process split at that peak."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid, self.interval = pid, interval
        self.peak = 0
        self.peak_split: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            split = by_process(self.pid)
            if sum(split.values()) > self.peak:
                self.peak, self.peak_split = sum(split.values()), split
            time.sleep(self.interval)
