"""deploy/docker-compose.split.yml brought up with docker-compose (`make image-test`; CI does not
run it): the entry service and the three runners as separate containers of the one image on a
compose network, the models volume shared read-only by the runners.

Immich's CLIP, face and OCR requests sent through the entry container answer as the one-container
image does; one runner container stopped, only its family answers 503 (with Retry-After), at
once; started again, it answers again with no restart of the entry container.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.bento_server import ROOT
from tests.support.docker_image import Container, assert_close, immich_predict
from tests.support.ports import free_port

pytestmark = pytest.mark.image

SPLIT = ROOT / "deploy" / "docker-compose.split.yml"
ENTRY = "immich-machine-learning"
#: The runner container of each family of Immich's requests (conftest ``requests``: CLIP image,
#: CLIP text, faces, OCR).
FAMILIES = ["immich-cn-ml-clip", "immich-cn-ml-clip", "immich-cn-ml-faces", "immich-cn-ml-ocr"]


class Compose:
    """`docker-compose -p <project> -f docker-compose.split.yml -f <override>`, with the image
    under test, the models folder bind-mounted in place of the volume, and the entry's port
    published on 127.0.0.1 (the override)."""

    def __init__(self, image: str, cache: Path, folder: Path) -> None:
        if shutil.which("docker-compose") is None:
            pytest.fail("the split layout's test needs docker-compose (`make image-test` installs Debian's)")
        self.project = f"immich-cn-ml-test-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        split = yaml.safe_load(SPLIT.read_text())
        override = {"services": {
            name: {"volumes": [f"{cache}:/cache" + ("" if name == ENTRY else ":ro")]} for name in split["services"]}}
        override["services"][ENTRY]["ports"] = [f"127.0.0.1:{self.port}:3003"]
        self.override = folder / "override.yml"
        self.override.write_text(yaml.safe_dump(override))
        self.env = {**os.environ, "IMMICH_CN_ML_IMAGE": image}

    def __call__(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        run = subprocess.run(["docker-compose", "-p", self.project, "-f", str(SPLIT), "-f", str(self.override), *args],
                             capture_output=True, text=True, timeout=timeout, env=self.env, cwd=SPLIT.parent)
        assert run.returncode == 0, f"docker-compose {' '.join(args)}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
        return run

    def logs(self) -> str:
        run = subprocess.run(["docker-compose", "-p", self.project, "-f", str(SPLIT), "-f", str(self.override),
                              "logs", "--tail", "60"], capture_output=True, text=True, env=self.env, cwd=SPLIT.parent)
        return run.stdout[-6000:]


def predict(url: str, entries: dict, kind: str, value: str) -> httpx.Response:
    """Immich's /predict form, sent with httpx (for the answers that are not 200)."""
    files = {"image": ("image.jpg", Path(value).read_bytes(), "image/jpeg")} if kind == "image" else None
    data = {"entries": json.dumps(entries), **({"text": value} if kind == "text" else {})}
    return httpx.post(f"{url}/predict", data=data, files=files, timeout=60)


def test_split_compose_answers_as_one_container_and_a_stopped_runner_costs_only_its_family(
        image, cache, requests, tmp_path):
    one = Container(image, "-v", f"{cache}:/cache:ro")
    try:
        one.wait_ready()
        expected = [immich_predict(one.url, *request) for request in requests]
    finally:
        one.remove()
    compose = Compose(image, cache, tmp_path)
    try:
        compose("up", "-d")
        deadline = time.monotonic() + 240
        while True:  # every family answers through the entry container
            try:
                if all(predict(compose.url, *request).status_code == 200 for request in requests):
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the split layout did not answer:\n{compose.logs()}"
            time.sleep(2)
        for request, answer in zip(requests, expected):
            assert_close(immich_predict(compose.url, *request), answer)
        shown = httpx.get(f"{compose.url}/ui/api/status", timeout=30).json()["runners"]
        assert {r["name"]: (r["url"], r["answers"]) for r in shown} == {
            "clip-runner": ("http://immich-cn-ml-clip:3003", True), "face-runner": ("http://immich-cn-ml-faces:3003", True),
            "ocr-runner": ("http://immich-cn-ml-ocr:3003", True)}

        compose("stop", "immich-cn-ml-faces")
        for request, family, answer in zip(requests, FAMILIES, expected):
            started = time.monotonic()
            got = predict(compose.url, *request)
            seconds = time.monotonic() - started
            if family == "immich-cn-ml-faces":
                assert got.status_code == 503 and got.headers["retry-after"], got.text
                assert seconds < 10, f"the stopped runner's family waited {seconds:.1f} s"
            else:
                assert got.status_code == 200, got.text
                assert_close(got.json(), answer)

        compose("start", "immich-cn-ml-faces")
        faces = requests[FAMILIES.index("immich-cn-ml-faces")]
        deadline = time.monotonic() + 120
        while predict(compose.url, *faces).status_code != 200:
            assert time.monotonic() < deadline, f"the face runner, started again, was not used again:\n{compose.logs()}"
            time.sleep(1)
        assert_close(immich_predict(compose.url, *faces), expected[FAMILIES.index("immich-cn-ml-faces")])
    finally:
        subprocess.run(["docker-compose", "-p", compose.project, "-f", str(SPLIT), "-f", str(compose.override),
                        "down", "-v", "-t", "5"], capture_output=True, text=True, env=compose.env, timeout=300)
