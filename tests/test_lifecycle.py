"""Model lifecycle as stock users know it, over real HTTP against served processes:
MODEL_TTL unloads idle models in the runner, which then starts afresh (and the memory goes back), the next request loads
them again and answers the same; PRELOAD loads models at start and /readyz waits for them."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from bench import rss
from tests.adapters.test_ocr import immich_entries, ocr
from tests.conftest import LIMITS
from tests.support.bento_server import BentoServer
from tests.support.model_metrics import loaded_models
from tests.support.ocr_cases import FIXTURES

SCENE = (FIXTURES / "scene_1440x1080.jpg").read_bytes()
MIB = 2**20


def _serve(tmp_path_factory, env: dict[str, str], ready: str = "/readyz", home: Path | None = None):
    server = BentoServer(".", home or tmp_path_factory.mktemp("bentoml-home"), {**LIMITS, **env})
    server.start(ready=ready)
    return server


def wait_until(condition, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s")


#: Both runtimes: ONNX Runtime (fp32) and, at auto, OpenVINO (OCR runs at fp32 there).
PRECISIONS = ["fp32", "auto"]


@pytest.fixture(scope="module", params=PRECISIONS)
def ttl_server(tmp_path_factory, request):
    server = _serve(tmp_path_factory, {"MACHINE_LEARNING_MODEL_TTL": "3", "MACHINE_LEARNING_MODEL_TTL_POLL_S": "0.5",
                                       "IMMICH_CN_ML_PRECISION": request.param})
    yield server
    server.stop()


def test_idle_models_unload_the_runner_starts_afresh_and_the_memory_goes_back(ttl_server):
    ttl_server.settled("model-runner")
    idle = rss.total(ttl_server.pid)  # idle after start
    runner, entry = ttl_server.worker("model-runner"), ttl_server.worker("immich-cn-ml")
    first = ocr(ttl_server, SCENE, immich_entries())
    assert first.status_code == 200, first.text
    loaded = loaded_models(ttl_server.url)
    assert sorted(Path(m).name for m, on in loaded.items() if on) == ["det.onnx", "rec.onnx"]
    with_models = rss.total(ttl_server.pid)
    assert with_models - idle > 20 * MIB, "loading the OCR models should show in the tree's memory"

    wait_until(lambda: not any(loaded_models(ttl_server.url).values()))
    ttl_server.settled("model-runner", replacing=runner.pid)  # it starts afresh once all are unloaded
    ttl_server.settled("immich-cn-ml", replacing=entry.pid)  # and the entry worker, idle as long
    time.sleep(1.5)
    after = rss.total(ttl_server.pid)
    assert after <= 1.10 * idle, (idle / MIB, with_models / MIB, after / MIB)  # issue 19: within 10 %

    again = ocr(ttl_server, SCENE, immich_entries())
    assert again.status_code == 200 and again.json() == first.json()
    assert all(loaded_models(ttl_server.url).values())
    log = ttl_server.log()
    assert "unloaded" in log and "MODEL_TTL" in log and "starting this runner afresh" in log
    assert "idle since MODEL_TTL: starting this entry worker afresh" in log


@pytest.mark.parametrize("precision", PRECISIONS)
def test_preloaded_models_are_in_before_the_first_request(tmp_path_factory, precision):
    server = _serve(tmp_path_factory, {"MACHINE_LEARNING_MODEL_TTL": "0", "IMMICH_CN_ML_PRECISION": precision,
                                       "MACHINE_LEARNING_PRELOAD__OCR__DETECTION": "PP-OCRv5_mobile",
                                       "MACHINE_LEARNING_PRELOAD__OCR__RECOGNITION": "immich-app/PP-OCRv5_mobile",
                                       "MACHINE_LEARNING_PRELOAD__CLIP__VISUAL": "ViT-B-32__openai"})
    try:
        # start() waited for /readyz: both OCR files are loaded, and no request was made
        loaded = loaded_models(server.url)
        assert sorted(Path(m).name for m, on in loaded.items() if on) == ["det.onnx", "rec.onnx"]
        assert "preload clip/visual model 'ViT-B-32__openai': not served here" in server.log()
        assert ocr(server, SCENE, immich_entries()).status_code == 200
    finally:
        server.stop()


def test_a_preload_that_fails_keeps_readyz_503_while_ping_answers(tmp_path_factory, face_home, tmp_path):
    import shutil

    import onnx

    home = tmp_path / "home"
    shutil.copytree(face_home, home, ignore=shutil.ignore_patterns("serve-*.log"))
    for recognizer in home.glob("models/face-buffalo_l/*/recognizer.onnx"):
        # Still a graph insightface reads (the entry serves the pack), but no runtime runs it.
        model = onnx.load(str(recognizer))
        model.graph.node[0].op_type = "NoSuchOperator"
        onnx.save(model, str(recognizer))
    server = _serve(tmp_path_factory, {"MACHINE_LEARNING_PRELOAD__FACIAL_RECOGNITION__RECOGNITION": "buffalo_l"},
                    ready="/ping", home=home)
    try:
        wait_until(lambda: "preload(s) failed" in server.log())
        assert httpx.get(f"{server.url}/readyz").status_code == 503
        assert httpx.get(f"{server.url}/ping").text == "pong"
        assert "facial-recognition/recognition model 'buffalo_l'" in server.log()
    finally:
        server.stop()


def test_split_runners_answer_as_the_combined_one(tmp_path_factory, lonely_server):
    # MODEL_TTL 3 s bounds how long MT Photos' /restart lets models idle; the runners' own
    # idle check runs hourly, so only /restart unloads here.
    server = _serve(tmp_path_factory, {"IMMICH_CN_ML_RUNNERS": "split", "MACHINE_LEARNING_MODEL_TTL": "3",
                                       "MACHINE_LEARNING_MODEL_TTL_POLL_S": "3600"})
    try:
        names = {process.cmdline()[process.cmdline().index("--service-name") + 1]
                 for process in __import__("psutil").Process(server.pid).children(recursive=True)
                 if "--service-name" in process.cmdline()}
        assert names == {"immich-cn-ml", "clip-runner", "ocr-runner", "face-runner"}
        split = ocr(server, SCENE, immich_entries())
        combined = ocr(lonely_server, SCENE, immich_entries())
        assert split.status_code == 200 and split.json() == combined.json()
        # MT Photos' /restart asks every runner of the layout to unload its idle models.
        assert any(loaded_models(server.url).values())  # the OCR models
        time.sleep(3.5)
        key = {"api-key": "mt_photos_ai_extra"}
        assert httpx.post(f"{server.url}/restart_v2", headers=key, timeout=30).json() == {"result": "pass"}
        assert not any(loaded_models(server.url).values())
        assert httpx.post(f"{server.url}/check", headers=key, timeout=30).json()["device"] == "cpu"
    finally:
        server.stop()
