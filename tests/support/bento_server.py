"""Run ``bentoml serve`` as a real server process for a test, and stop it afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


class PortTaken(RuntimeError):
    """``bentoml serve`` could not bind the port chosen for it."""


#: What test servers run with unless a test says otherwise: ONNX Runtime's exact fp32 answers,
#: which the parity tests compare with the references bit for bit (the faster precisions are
#: held to their own tolerances by tests that ask for them).
EXACT = {"IMMICH_CN_ML_PRECISION": "fp32"}


class BentoServer:
    """``bentoml serve TARGET`` on a free port of 127.0.0.1, with its own BENTOML_HOME.

    ``exact``: run with ``EXACT`` unless ``env`` sets the precision (the benchmarks pass False:
    they measure the service as a user runs it)."""

    def __init__(self, target: str, home: Path, env: dict[str, str] | None = None, cwd: Path = ROOT,
                 exact: bool = True) -> None:
        self.target = target
        self.home = home
        self.cwd = cwd
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("IMMICH_CN_ML_", "MACHINE_LEARNING_"))},
            "BENTOML_HOME": str(home),
            "BENTOML_DO_NOT_TRACK": "true",
            **(EXACT if exact else {}),
            **(env or {}),
        }
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / f"serve-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0, ready: str = "/readyz") -> BentoServer:
        """Start, and wait until ``ready`` answers 200 (``/ping`` for a server that is up but
        not ready). A port some other process took in the meantime is replaced by a fresh one."""
        for attempt in range(3):
            try:
                return self._start_once(timeout, ready)
            except PortTaken:
                if attempt == 2:
                    raise
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"
                self.log_path = self.home / f"serve-{self.port}.log"
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float, ready: str) -> BentoServer:
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", self.target, "--host", "127.0.0.1", "-p", str(self.port)],
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so stop() can end the runner processes too
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                log = self.log()
                if f"Could not bind 127.0.0.1:{self.port}" in log:
                    raise PortTaken(log)
                raise RuntimeError(f"bentoml serve exited with {self._process.returncode}:\n{log}")
            try:
                if httpx.get(f"{self.url}{ready}", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"bentoml serve was not ready within {timeout} s:\n{self.log()}")

    @property
    def pid(self) -> int:
        """The `bentoml serve` process (its workers are its children)."""
        assert self._process is not None, "not started"
        return self._process.pid

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)

    def worker(self, service_name: str) -> "psutil.Process":
        """The worker process of one BentoML service (``model-runner``, ``immich-cn-ml`` ...)."""
        import psutil

        for process in psutil.Process(self.pid).children(recursive=True):
            try:
                args = process.cmdline()
            except psutil.Error:  # a worker ending (a zombie until BentoML reaps it)
                continue
            if "--service-name" in args and args[args.index("--service-name") + 1] == service_name:
                return process
        raise LookupError(f"no {service_name} worker")

    def settled(self, service_name: str, replacing: int | None = None, timeout: float = 60.0) -> "psutil.Process":
        """The worker of ``service_name`` (other than the process ``replacing``) once it runs
        and ``/readyz`` answers 200: after a worker was started again (a runner starting afresh
        after MODEL_TTL, say)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                worker = self.worker(service_name)
                if worker.pid != replacing and httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return worker
            except (LookupError, httpx.HTTPError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{service_name} did not settle within {timeout:g} s:\n{self.log()[-3000:]}")
            time.sleep(0.5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
