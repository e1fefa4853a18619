"""Run ``python -m runners.models`` as a user does, in a BENTOML_HOME of the test's own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.support.bento_server import ROOT
from tests.support.ports import free_port


def models(home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runners.models", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true", **(env or {})},
    )


def offline_import(home: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """``import ...`` behind a proxy that refuses every connection: offline, whatever network
    this machine has. Returns the run and how long it took."""
    dead = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    run = models(home, "import", *args, env={"HTTPS_PROXY": dead, "HTTP_PROXY": dead}, timeout=60)
    return run, time.monotonic() - started
