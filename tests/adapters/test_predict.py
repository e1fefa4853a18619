"""``POST /predict`` over real HTTP: validation, limits, 501, and the local/upstream split."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE, MAX_REQUEST_BYTES, encode
from tests.support import multipart
from tests.support.upstream_stub import Reply

CLIP_VISUAL = json.dumps({"clip": {"visual": {"modelName": "ViT-B-32__openai"}}})
FAKE_FACES = {
    "facial-recognition": {
        "detection": {"modelName": "fake-faces", "options": {"minScore": 0.7}},
        "recognition": {"modelName": "fake-faces"},
    }
}


def post(server, fields: dict, **kwargs) -> httpx.Response:
    body, content_type = multipart.build(fields)
    return httpx.post(f"{server.url}/predict", content=body, headers={"content-type": content_type}, timeout=30, **kwargs)


def image_part(data: bytes) -> multipart.FilePart:
    return multipart.FilePart("blob", data)


# --- 422: malformed entries, exactly the reference's answer --------------------------------

@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"text": "hi"}, id="entries-missing"),
        pytest.param({"entries": "{not json", "text": "hi"}, id="entries-not-json"),
        pytest.param({"entries": json.dumps({"clip": {"textual": {"options": {}}}}), "text": "hi"}, id="no-modelName"),
        pytest.param({"entries": json.dumps(["clip"]), "text": "hi"}, id="entries-not-an-object"),
    ],
)
def test_malformed_entries_get_422(proxy_server, upstream, fields):
    response = post(proxy_server, fields)
    assert response.status_code == 422
    assert response.json() == {"detail": "Invalid request format."}
    assert upstream.received == []


# --- 400: inputs ----------------------------------------------------------------------------

def test_neither_image_nor_text_gets_400(proxy_server, upstream):
    response = post(proxy_server, {"entries": CLIP_VISUAL})
    assert response.status_code == 400
    assert response.json() == {"detail": "Either image or text must be provided"}
    assert upstream.received == []


def test_empty_image_gets_400(proxy_server, upstream):
    response = post(proxy_server, {"entries": CLIP_VISUAL, "image": image_part(b"")})
    assert response.status_code == 400
    assert "empty" in response.json()["detail"]
    assert upstream.received == []


def test_zero_width_image_gets_400(proxy_server, upstream):
    response = post(proxy_server, {"entries": CLIP_VISUAL, "image": image_part(_png_header(0, 64))})
    assert response.status_code == 400
    assert "zero-sized" in response.json()["detail"]
    assert upstream.received == []


def test_non_image_bytes_get_400_naming_the_problem(proxy_server, upstream):
    response = post(proxy_server, {"entries": CLIP_VISUAL, "image": image_part(b"%PDF-1.7 this is not a photo")})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "could not be identified" in detail and "%PDF" in detail
    assert upstream.received == []


def test_image_sent_as_text_field_gets_400(proxy_server, upstream):
    response = post(proxy_server, {"entries": CLIP_VISUAL, "image": "not a file part"})
    assert response.status_code == 400
    assert "file part" in response.json()["detail"]


def test_malformed_multipart_gets_400(proxy_server, upstream):
    response = httpx.post(
        f"{proxy_server.url}/predict",
        content=b"--x\r\nContent-Disposition: form-data; name=\"entries\"\r\n\r\n{}\r\n--x--\r\n",
        headers={"content-type": "multipart/form-data"},  # no boundary: the parts cannot be found
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("malformed form body")
    assert upstream.received == []


# --- 413: limits ----------------------------------------------------------------------------

def test_oversized_upload_is_refused(proxy_server, upstream):
    response = post(proxy_server, {"entries": CLIP_VISUAL, "image": image_part(b"\xff" * (MAX_REQUEST_BYTES + 1))})
    assert response.status_code == 413
    assert str(MAX_REQUEST_BYTES) in response.json()["detail"]
    assert upstream.received == []


def test_oversized_chunked_upload_is_refused(proxy_server, upstream):
    body, content_type = multipart.build({"entries": CLIP_VISUAL, "image": image_part(b"\x00" * (MAX_REQUEST_BYTES + 1))})

    def chunks():  # no content-length: the limit must hold while streaming
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    response = httpx.post(f"{proxy_server.url}/predict", content=chunks(), headers={"content-type": content_type})
    assert response.status_code == 413
    assert upstream.received == []


def test_decompression_bomb_is_refused_from_its_header(proxy_server, upstream):
    side = 3000  # 9 MP, over the 4 MP limit, in about a kilobyte of PNG
    bomb = encode(Image.new("1", (side, side)), "PNG")
    assert len(bomb) < 5000
    response = post(proxy_server, {"entries": CLIP_VISUAL, "image": image_part(bomb)})
    assert response.status_code == 413
    assert f"over the limit of {MAX_IMAGE_PIXELS}" in response.json()["detail"]
    assert upstream.received == []


def test_header_claiming_a_huge_canvas_is_refused_without_decoding(proxy_server, upstream):
    # 60000 x 60000 with no pixel data at all: only the header can have been read.
    response = post(proxy_server, {"entries": CLIP_VISUAL, "image": image_part(_png_header(60000, 60000))})
    assert response.status_code == 413
    assert str(MAX_IMAGE_SIDE) in response.json()["detail"]


def test_overlong_side_is_refused(proxy_server, upstream):
    strip = encode(Image.new("L", (MAX_IMAGE_SIDE + 1, 8)), "PNG")
    response = post(proxy_server, {"entries": CLIP_VISUAL, "image": image_part(strip)})
    assert response.status_code == 413
    assert f"limit of {MAX_IMAGE_SIDE} px" in response.json()["detail"]


# --- 501: nothing serves it -----------------------------------------------------------------

def test_no_upstream_and_no_local_model_gets_501_naming_the_model(lonely_server, preview_jpeg):
    response = post(lonely_server, {"entries": CLIP_VISUAL, "image": image_part(preview_jpeg)})
    assert response.status_code == 501
    detail = response.json()["detail"]
    assert "clip/visual model 'ViT-B-32__openai'" in detail
    assert "IMMICH_CN_ML_UPSTREAM_URL" in detail


def test_a_model_we_import_but_do_not_have_gets_501_and_the_log_names_its_import(lonely_server, preview_jpeg):
    entries = json.dumps({"clip": {"visual": {"modelName": "cn-clip/ViT-L-14__openai"}}})
    for _ in range(2):
        response = post(lonely_server, {"entries": entries, "image": image_part(preview_jpeg)})
        assert response.status_code == 501
    hint = "`python -m runners.models import clip ViT-L-14` imports it"
    assert lonely_server.log().count(hint) == 1, lonely_server.log()[-3000:]


# --- the runner seam: local tasks, and local + upstream in one request ------------------------

def test_local_task_runs_on_the_fake_runner(seam_server, upstream, preview_jpeg):
    response = post(seam_server, {"entries": json.dumps(FAKE_FACES), "image": image_part(preview_jpeg)})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "facial-recognition": [
            {
                "boundingBox": {"x1": 0, "y1": 0, "x2": 1440, "y2": 1080},
                "embedding": json.dumps([2520.0, 1440.0]),
                "score": 0.7,
            }
        ],
        "imageHeight": 1080,
        "imageWidth": 1440,
    }
    assert upstream.received == []


@pytest.mark.parametrize("name", ["immich-app/fake-faces", "faces-by-another-name", "org/faces-by-another-name"])
def test_local_models_match_by_cleaned_name_and_alias(seam_server, upstream, preview_jpeg, name):
    entries = {"facial-recognition": {"detection": {"modelName": name}, "recognition": {"modelName": name}}}
    response = post(seam_server, {"entries": json.dumps(entries), "image": image_part(preview_jpeg)})
    assert response.status_code == 200, response.text
    assert len(response.json()["facial-recognition"]) == 1
    assert upstream.received == []


def test_mixed_request_is_split_and_merged(seam_server, upstream, preview_jpeg):
    upstream.reset(lambda _: Reply(body=b'{"clip":"[0.25,0.5]","imageHeight":1080,"imageWidth":1440}'))
    entries = {**FAKE_FACES, "clip": {"visual": {"modelName": "ViT-B-32__openai"}}}
    response = post(
        seam_server, {"entries": json.dumps(entries), "image": multipart.FilePart("preview.jpeg", preview_jpeg, "image/jpeg")}
    )

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["clip"] == "[0.25,0.5]"
    assert answer["facial-recognition"][0]["boundingBox"] == {"x1": 0, "y1": 0, "x2": 1440, "y2": 1080}
    assert (answer["imageWidth"], answer["imageHeight"]) == (1440, 1080)

    # The upstream got only its own entries, and the image bytes unchanged.
    [received] = upstream.received
    parts = multipart.parse(received.body, received.headers["content-type"])
    assert json.loads(parts["entries"]) == {"clip": {"visual": {"modelName": "ViT-B-32__openai"}}}
    assert parts["image"] == multipart.FilePart("preview.jpeg", preview_jpeg, "image/jpeg")


def test_mixed_request_fails_with_the_upstream_error(seam_server, upstream, preview_jpeg):
    upstream.reset(lambda _: Reply(status=500, body=b'{"detail":"Failed to load model \'ViT-B-32__openai\'"}'))
    entries = {**FAKE_FACES, "clip": {"visual": {"modelName": "ViT-B-32__openai"}}}
    response = post(seam_server, {"entries": json.dumps(entries), "image": image_part(preview_jpeg)})
    assert response.status_code == 500
    detail = response.json()["detail"]
    assert upstream.url in detail and "Failed to load model" in detail


def test_task_only_partly_served_here_goes_upstream_whole(seam_server, upstream, preview_jpeg):
    entries = {"facial-recognition": {"detection": {"modelName": "fake-faces"}, "recognition": {"modelName": "buffalo_l"}}}
    body, content_type = multipart.build({"entries": json.dumps(entries), "image": image_part(preview_jpeg)})
    response = httpx.post(f"{seam_server.url}/predict", content=body, headers={"content-type": content_type})
    assert response.status_code == 200
    [received] = upstream.received
    assert received.body == body


def test_dependent_type_without_its_dependency_gets_400(seam_server, upstream, preview_jpeg):
    entries = {"facial-recognition": {"recognition": {"modelName": "fake-faces"}}}
    response = post(seam_server, {"entries": json.dumps(entries), "image": image_part(preview_jpeg)})
    assert response.status_code == 400
    assert response.json()["detail"] == "Task facial-recognition of type recognition depends on output of facial-recognition detection"


def test_truncated_image_gets_400_when_decoded_here(seam_server, upstream, preview_jpeg):
    response = post(seam_server, {"entries": json.dumps(FAKE_FACES), "image": image_part(preview_jpeg[: len(preview_jpeg) // 2])})
    assert response.status_code == 400
    assert "truncated" in response.json()["detail"]


def test_concurrent_requests_each_get_their_own_answer(seam_server, upstream):
    import concurrent.futures

    sizes = [(64 + 16 * i, 48 + 8 * i) for i in range(12)]

    def one(size):
        image = encode(Image.new("RGB", size, (size[0] % 255, 0, 0)))
        return size, post(seam_server, {"entries": json.dumps(FAKE_FACES), "image": image_part(image)})

    with concurrent.futures.ThreadPoolExecutor(len(sizes)) as pool:
        for size, response in pool.map(one, sizes):
            assert response.status_code == 200, response.text
            face = response.json()["facial-recognition"][0]
            assert face["boundingBox"] == {"x1": 0, "y1": 0, "x2": size[0], "y2": size[1]}
            assert json.loads(face["embedding"]) == [float(size[0] + size[1]), float(size[0])]


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with an empty image data chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


# --- hostile requests get declared answers ---------------------------------------------------

def _deep_entries(depth: int) -> str:
    return '{"clip": {"visual": {"modelName": "m", "options": {"x": ' + "[" * depth + "]" * depth + "}}}}"


@pytest.mark.parametrize("with_image", [True, False], ids=["image", "text"])
def test_entries_nested_5000_deep_get_the_reference_422(proxy_server, upstream, preview_jpeg, with_image):
    fields = {"entries": _deep_entries(5000), **({"image": image_part(preview_jpeg)} if with_image else {"text": "猫"})}
    response = post(proxy_server, fields)
    assert response.status_code == 422 and response.json() == {"detail": "Invalid request format."}
    assert upstream.received == []


def test_a_clients_model_name_is_escaped_and_bounded_in_answers_and_log(lonely_server, preview_jpeg):
    name = "ViT\nFORGED LOG LINE: admin logged in " + "长" * 20_000
    entries = json.dumps({"clip": {"visual": {"modelName": name}}})
    response = post(lonely_server, {"entries": entries, "image": image_part(preview_jpeg)})
    assert response.status_code == 501
    detail = response.json()["detail"]
    assert "\n" not in detail and "\\n" in detail and len(detail) < 600
    log = lonely_server.log()
    assert "\nFORGED LOG LINE" not in log and "长" * 200 not in log


def test_an_option_value_is_bounded_in_the_answer(face_server):
    entries = json.dumps({"facial-recognition": {
        "detection": {"modelName": "buffalo_l", "options": {"minScore": ["x" * 100] * 10_000}},
        "recognition": {"modelName": "buffalo_l"}}})
    response = post(face_server, {"entries": entries, "image": image_part(encode(Image.new("RGB", (64, 64))))})
    assert response.status_code == 400 and len(response.json()["detail"]) < 600  # of a 1 MB value


def test_uploads_spooled_to_disk_are_closed_after_every_answer(lonely_server):
    # Over 1 MB, Starlette spools an upload to an (unlinked) temporary file.
    big = encode(Image.effect_noise((900, 600), 90).convert("RGB"), "PNG")
    assert 1_100_000 < len(big) < MAX_REQUEST_BYTES - 10_000
    fds = Path(f"/proc/{lonely_server.worker('immich-cn-ml').pid}/fd")

    def spooled() -> int:  # open files already unlinked: spooled uploads (TemporaryFile)
        return sum(1 for fd in fds.iterdir() if os.readlink(fd).endswith("(deleted)"))

    before = spooled()
    cases = [{"entries": "not json", "image": image_part(big)},
             {"entries": CLIP_VISUAL, "image": image_part(big)},
             {"entries": json.dumps({"ocr": {"detection": {"modelName": "PP-OCRv5_mobile"},
                                             "recognition": {"modelName": "PP-OCRv5_mobile"}}}),
              "image": image_part(big)}]
    for fields in cases * 3:
        assert post(lonely_server, fields).status_code in (200, 422, 501)
    assert spooled() == before


def test_an_image_is_decoded_reduced_only_when_every_local_model_reads_it_reduced():
    from adapters.predict import _reduce_to
    from adapters.routing import Plan

    clip, other, larger = type("M", (), {"reduce_to": 224})(), object(), type("M", (), {"reduce_to": 336})()
    assert _reduce_to(Plan(local=[(None, clip)])) == 224
    assert _reduce_to(Plan(local=[(None, clip), (None, larger)])) == 336  # the larger tower's side
    assert _reduce_to(Plan(local=[(None, clip), (None, other)])) is None  # faces and OCR read every pixel
    assert _reduce_to(Plan(local=[(None, type("M", (), {"reduce_to": None})())])) is None  # fp32: off
    assert _reduce_to(Plan()) is None
