"""``bentoml build`` works without a package index, and the built Bento serves."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib

import httpx
import yaml

from tests.support.bento_server import ROOT, BentoServer
from tests.support.fake_faces import build_pack
from tests.support.models_cli import ocr_download

DEAD_INDEX = "http://127.0.0.1:9/simple"  # nothing listens there: any index access fails


def test_build_needs_no_index_and_the_built_bento_serves(tmp_path):
    home = tmp_path / "bentoml-home"
    # An imported model must travel with the Bento (containerize copies what it references).
    files = ocr_download(tmp_path / "files")
    imported = subprocess.run(
        [sys.executable, "-m", "runners.models", "import", "ocr", "PP-OCRv5_server", "--from", str(files)],
        cwd=ROOT, env={**os.environ, "BENTOML_HOME": str(home)}, capture_output=True, text=True, timeout=120,
    )
    assert imported.returncode == 0, imported.stderr
    model_tag = imported.stdout.splitlines()[0].split(" as ")[1]
    pack = build_pack(tmp_path / "pack")
    imported = subprocess.run(
        [sys.executable, "-m", "runners.models", "import", "face", "--from", str(pack)],
        cwd=ROOT, env={**os.environ, "BENTOML_HOME": str(home)}, capture_output=True, text=True, timeout=120,
    )
    assert imported.returncode == 0, imported.stderr
    face_tag = imported.stdout.splitlines()[0].split(" as ")[1]

    env = {
        **os.environ,
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "true",
        "PIP_INDEX_URL": DEAD_INDEX,
        "PIP_NO_INDEX": "1",
        "UV_INDEX_URL": DEAD_INDEX,
        "UV_OFFLINE": "1",
    }
    build = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", ".", "--output", "tag"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    tag = re.search(r"__tag__:(\S+)", build.stdout).group(1)
    assert tag.startswith("immich-cn-ml:")

    bento = home / "bentos" / "immich-cn-ml" / tag.split(":")[1]
    info = yaml.safe_load((bento / "bento.yaml").read_text())
    assert info["entry_service"] == "immich-cn-ml"
    assert info["services"][0]["config"]["http"]["port"] == 3003
    services = {service["name"]: service for service in info["services"]}
    assert sorted(services) == ["immich-cn-ml", "model-runner"]  # a home server's layout
    assert sorted(m["tag"] for m in services["model-runner"]["models"]) == sorted([model_tag, face_tag])
    # The image runs config/container_setup.sh after installing the packages.
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    [script] = re.findall(r"^RUN chmod \+x (\./env/docker/script__\w+)", dockerfile, re.M)
    assert (bento / script).read_text() == (ROOT / "config" / "container_setup.sh").read_text()
    assert dockerfile.index("pip install -r $BENTO_PATH/env/python/requirements.txt") < dockerfile.index(script)
    assert (bento / "src" / "service.py").exists()
    assert not (bento / "src" / "tests").exists()
    assert {path.name for path in (bento / "src" / "adapters" / "ui" / "static").iterdir()} == {
        "index.html", "app.js", "style.css"}  # the status page's files travel with the code

    # Served from outside the checkout, the Bento runs on its own copy of the source.
    server = BentoServer(tag, home, cwd=tmp_path).start()
    try:
        response = httpx.get(f"{server.url}/ping")
        assert (response.status_code, response.text) == (200, "pong")
        page = httpx.get(f"{server.url}/ui/app.js")
        assert page.status_code == 200 and "/predict" in page.text
    finally:
        server.stop()
    # The same Bento (built combined, as `make image` builds the image) runs the split layout
    # too: the split compose file and Kubernetes manifests use the one image.
    split = BentoServer(tag, home, {"IMMICH_CN_ML_RUNNERS": "split"}, cwd=tmp_path).start()
    try:
        for runner in ("clip-runner", "face-runner", "ocr-runner"):
            split.worker(runner)  # each family's runner started
        assert httpx.get(f"{split.url}/ping").text == "pong"
    finally:
        split.stop()


def test_bento_requirements_pin_every_project_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = [
        line.strip() for line in (ROOT / "requirements" / "serve.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    name = lambda spec: re.split(r"[<>=!~\[ ;]", spec, maxsplit=1)[0].lower()  # noqa: E731
    assert sorted(map(name, project)) == sorted(map(name, pinned))
    assert all("==" in spec for spec in pinned)


def test_opencv_in_place_is_the_headless_build():
    # insightface pulls in OpenCV's GUI build, whose cv2 needs libGL; `make` and the image's
    # setup script leave the headless files in place instead.
    import cv2

    assert re.search(r"GUI:\s+NONE", cv2.getBuildInformation())


def test_the_cuda_variant_differs_only_in_onnxruntime():
    # bentofile.cuda.yaml is bentofile.yaml with the CUDA requirements; those are serve.txt
    # with onnxruntime-gpu (and its CUDA/cuDNN wheels) in place of onnxruntime.
    cpu = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    cuda = yaml.safe_load((ROOT / "bentofile.cuda.yaml").read_text())
    assert cuda["python"].pop("requirements_txt") == "./requirements/serve-cuda.txt"
    assert cpu["python"].pop("requirements_txt") == "./requirements/serve.txt"
    assert cuda == cpu

    def pins(name: str) -> set[str]:
        lines = (ROOT / "requirements" / name).read_text().splitlines()
        return {line.strip() for line in lines if line.strip() and not line.startswith("#")}

    only_cpu, only_cuda = pins("serve.txt") - pins("serve-cuda.txt"), pins("serve-cuda.txt") - pins("serve.txt")
    assert [p.split("==")[0] for p in only_cpu] == ["onnxruntime"]
    assert [p.split("==")[0] for p in only_cuda] == ["onnxruntime-gpu[cuda,cudnn]"]
    # the image's setup script puts the GPU build's files in place of the CPU build insightface pulls in
    assert "onnxruntime-gpu" in (ROOT / "config" / "container_setup.sh").read_text()
