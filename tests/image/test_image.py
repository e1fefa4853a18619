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

import json
import re
import time
import uuid

import pytest
import yaml

from tests.deploy.test_deploy import IMAGE_UID
from tests.support.bento_server import ROOT, BentoServer
from tests.support.docker_image import IMAGE, Container, assert_close, build_image, docker, immich_predict
from tests.support.models_cli import models, ocr_download

pytestmark = pytest.mark.image

#: The compose file's healthcheck command (after "CMD"), run inside the image.
HEALTHCHECK = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())[
    "services"]["immich-machine-learning"]["healthcheck"]["test"][1:]


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
        # Not root, and the number the Kubernetes manifests run as (tests/deploy).
        assert docker("exec", container.name, "id", "-u").stdout.strip() == str(IMAGE_UID)
        assert docker("exec", container.name, *HEALTHCHECK, check=False).returncode == 0
    finally:
        container.remove()


#: The PIDs of the container's processes whose command line holds ``$1``.
PIDS_OF = ('for p in /proc/[0-9]*; do [ "${p#/proc/}" = "$$" ] && continue; '
           'tr "\\0" " " < $p/cmdline 2>/dev/null | grep -q -- "$1" && echo ${p#/proc/}; done; true')


def test_the_runner_killed_inside_the_container_comes_back(image, cache, requests):
    container = Container(image, "-v", f"{cache}:/cache:ro")
    try:
        container.wait_ready()
        before = [immich_predict(container.url, *request) for request in requests]
        find = ["exec", container.name, "sh", "-c", PIDS_OF, "pids", "--service-name model-runner"]
        [runner] = docker(*find).stdout.split()
        docker("exec", container.name, "sh", "-c", f"kill -9 {runner}")  # the image has no kill(1); sh's own
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
