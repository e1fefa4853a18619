"""MT Photos' routes over real HTTP, sent as the MT Photos app sends them (multipart ``file``,
JSON ``{"text"}``, the ``api-key`` header), against a served process.

The truths are the references' own libraries on the same files: cn-clip's ``encode_image`` and
``encode_text`` (tests/support/tiny_clip.py), insightface's ``FaceAnalysis`` with
``det_thresh=0.65, det_size=(640, 640)`` (tests/support/face_reference.py), and, for OCR, this
service's own Immich route on the same image, whose quadrilaterals the boxes must bound.
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import re
import time

import httpx
import numpy as np
import pytest
from PIL import Image, ImageOps

from tests.conftest import MT_KEY as KEY
from tests.conftest import MT_MODEL_TTL as MODEL_TTL
from tests.support import multipart
from tests.support.face_reference import Reference
from tests.support.fake_faces import RED, faces_image, grid_centres
from tests.support.model_metrics import loaded_models
from tests.support.ocr_cases import FIXTURES, TRUTH, squash
from tests.support.tiny_clip import reference_encoders

IMAGE_ROUTES = ["/ocr", "/clip/img", "/represent"]
ALL_ROUTES = ["/check", *IMAGE_ROUTES, "/clip/txt", "/restart", "/restart_v2"]
SIXTEEN_DECIMALS = re.compile(r"^-?\d+\.\d{16}$")
OUT_OF_RANGE = {"result": [], "msg": "height or width out of range"}


def send(server, path: str, data: bytes | None = None, *, key: str | None = KEY, text: object = None,
         filename: str = "IMG_0001.jpg", content_type: str = "image/jpeg") -> httpx.Response:
    """A request as MT Photos makes it."""
    headers = {} if key is None else {"api-key": key}
    url = f"{server.url}{path}"
    if path == "/clip/txt":
        return httpx.post(url, json={"text": text}, headers=headers, timeout=120)
    if data is None:
        return httpx.post(url, headers=headers, timeout=120)
    return httpx.post(url, files={"file": (filename, data, content_type)}, headers=headers, timeout=120)


def answer(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def png(image: Image.Image, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", **params)
    return out.getvalue()


def jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def floats(values: list[str]) -> np.ndarray:
    assert all(isinstance(v, str) and SIXTEEN_DECIMALS.match(v) for v in values), values[:3]
    return np.array([float(v) for v in values], np.float64)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def cn_clip(tiny_clip):
    return reference_encoders(*tiny_clip)


@pytest.fixture(scope="module")
def insightface(face_packs):
    return Reference(face_packs["buffalo_l"])


# --- the key ----------------------------------------------------------------------------------

def test_check_passes_and_says_the_device_and_the_face_settings(mt_server):
    assert answer(send(mt_server, "/check")) == {
        "result": "pass", "title": "mt-photos-ai服务", "help": "https://mtmt.tech/docs/advanced/ocr_api",
        "device": "cpu", "detector_backend": "insightface", "recognition_model": "buffalo_l",
        "facial_min_score": 0.65, "facial_max_distance": 0.5,
        "served": {"ocr": True, "clip": True, "represent": True},
    }


@pytest.mark.parametrize("path", ALL_ROUTES)
def test_a_wrong_key_is_401_and_a_missing_one_422(mt_server, path):
    data = jpeg(Image.new("RGB", (64, 64), "white"))
    for key in ("mt_photos_ai_extra", "mt-test-ke", ""):  # the default is not this server's key
        refused = send(mt_server, path, data, key=key, text="猫")
        assert refused.status_code == 401 and refused.json() == {"detail": "Invalid API key"}
    missing = send(mt_server, path, data, key=None, text="猫")
    assert missing.status_code == 422
    assert [problem["loc"] for problem in missing.json()["detail"]] == [["header", "api-key"]]


# --- OCR --------------------------------------------------------------------------------------

def immich_ocr(server, data: bytes) -> dict:
    """The Immich route on the same image, at the text score MT's route keeps (rapidocr's 0.5)."""
    entries = json.dumps({"ocr": {"detection": {"modelName": "PP-OCRv5_mobile", "options": {}},
                                  "recognition": {"modelName": "PP-OCRv5_mobile", "options": {"minScore": 0.5}}}})
    body, content_type = multipart.build({"entries": entries, "image": multipart.FilePart("blob", data)})
    response = httpx.post(f"{server.url}/predict", content=body, headers={"content-type": content_type}, timeout=120)
    return answer(response)


@pytest.mark.parametrize("name", ["zh_clean.png", "prices.png", "tilted.png", "scene_1440x1080.jpg"])
def test_ocr_answers_mt_format_with_boxes_bounding_the_immich_routes_quadrilaterals(mt_server, name):
    data = (FIXTURES / name).read_bytes()
    result = answer(send(mt_server, "/ocr", data))["result"]
    assert set(result) == {"texts", "scores", "boxes"}
    immich = immich_ocr(mt_server, data)
    ocr, width, height = immich["ocr"], immich["imageWidth"], immich["imageHeight"]

    assert result["texts"] == ocr["text"] and result["texts"]
    assert result["scores"] == [f"{score:.2f}" for score in ocr["textScore"]]
    quads = np.array(ocr["box"], np.float64).reshape(-1, 4, 2) * [width, height]
    assert len(result["boxes"]) == len(quads)
    for box, quad in zip(result["boxes"], quads):
        assert set(box) == {"x", "y", "width", "height"}
        for value in box.values():  # str(round(v, 2)): "4.0", "12.35", never "4.00"
            assert isinstance(value, str) and value == str(round(float(value), 2))
        (left, top), (right, bottom) = quad.min(axis=0), quad.max(axis=0)
        expected = {"x": left, "y": top, "width": right - left, "height": bottom - top}
        for key, value in expected.items():  # 2 decimals, and float32 normalising on Immich's side
            assert abs(float(box[key]) - value) <= 0.006, (key, box, expected)
    if TRUTH[name]["match"] == "exact":
        assert squash(result["texts"]) == squash(TRUTH[name]["lines"])


def test_ocr_of_an_image_without_text_is_empty_lists(mt_server):
    blank = (FIXTURES / "blank.png").read_bytes()
    assert answer(send(mt_server, "/ocr", blank, content_type="image/png")) == {
        "result": {"texts": [], "scores": [], "boxes": []}}


# --- CLIP -------------------------------------------------------------------------------------

CLIP_IMAGES = {
    "preview.jpg": lambda: (FIXTURES / "scene_1440x1080.jpg").read_bytes(),
    "text.png": lambda: (FIXTURES / "zh_clean.png").read_bytes(),
    "rgba.png": lambda: png(Image.effect_noise((300, 500), 80).convert("RGBA")),
}


@pytest.mark.parametrize("name", list(CLIP_IMAGES))
def test_clip_image_is_cn_clips_encode_image_unnormalised(mt_server, cn_clip, name):
    data = CLIP_IMAGES[name]()
    got = floats(answer(send(mt_server, "/clip/img", data))["result"])
    want = cn_clip[0](data).astype(np.float64)
    assert got.shape == (512,)
    assert cosine(got, want) >= 0.9999
    assert abs(np.linalg.norm(got) / np.linalg.norm(want) - 1) <= 1e-3
    assert abs(np.linalg.norm(got) - 1) > 0.01  # as the model gives it, not made unit length


@pytest.mark.parametrize("text", ["海边的日落", "a sunset by the sea", "生日派对 🎂", ""], ids=["zh", "en", "emoji", "empty"])
def test_clip_text_is_cn_clips_encode_text_unnormalised(mt_server, cn_clip, text):
    got = floats(answer(send(mt_server, "/clip/txt", text=text))["result"])
    want = cn_clip[1](text).astype(np.float64)
    assert got.shape == (512,)
    assert cosine(got, want) >= 0.9999
    assert abs(np.linalg.norm(got) / np.linalg.norm(want) - 1) <= 1e-3


@pytest.mark.parametrize(("body", "where"), [
    (b"{not json", None), (b'["text"]', ["body"]), (b'{"txt": "x"}', ["body", "text"]), (b'{"text": 5}', ["body", "text"]),
])
def test_clip_text_with_a_bad_body_is_422(mt_server, body, where):
    refused = httpx.post(f"{mt_server.url}/clip/txt", content=body,
                         headers={"api-key": KEY, "content-type": "application/json"}, timeout=30)
    assert refused.status_code == 422, refused.text
    [problem] = refused.json()["detail"]
    assert problem["loc"][0] == "body" and (where is None or problem["loc"] == where) and problem["msg"]


# --- faces ------------------------------------------------------------------------------------

def assert_same_as_insightface(result: dict, expected: list) -> None:
    assert result["detector_backend"] == "insightface" and result["recognition_model"] == "buffalo_l"
    faces = result["result"]
    assert len(faces) == len(expected)
    for face, want in zip(faces, expected):
        assert set(face) == {"embedding", "facial_area", "face_confidence"}
        x1, y1, x2, y2 = want.bbox
        assert face["facial_area"] == {"x": int(x1), "y": int(y1), "w": int(x2 - x1), "h": int(y2 - y1)}
        assert abs(face["face_confidence"] - float(want.det_score)) < 1e-6
        embedding = np.array(face["embedding"], np.float64)
        assert embedding.shape == (512,) and abs(np.linalg.norm(embedding) - 1) < 1e-5
        np.testing.assert_allclose(embedding, want.normed_embedding, rtol=1e-5, atol=1e-6)


FACE_PICTURES = {
    "preview.jpg": lambda: jpeg(faces_image(1440, 1080, [(300, 300), (720, 600), (1150, 350)], 60, seed=1)),
    "grid.png": lambda: png(faces_image(1440, 1080, grid_centres(1440, 1080, 4, 3, 200), 60, seed=2)),
    # Scores about 0.99, 0.86, 0.73, 0.56: the last is under the 0.65 threshold.
    "faint.png": lambda: png(faces_image(1440, 1080, [(250, 250), (1190, 250), (250, 830), (1190, 830)], 80, seed=7,
                                         colours=[RED, (255, 40, 40), (255, 50, 50), (255, 60, 60)])),
    "none.jpg": lambda: jpeg(faces_image(1440, 1080, [], 60, seed=5)),
}


@pytest.mark.parametrize("name", list(FACE_PICTURES))
def test_represent_is_what_insightface_face_analysis_finds(mt_server, insightface, name):
    data = FACE_PICTURES[name]()
    expected = insightface.found(data, 0.65)
    assert_same_as_insightface(answer(send(mt_server, "/represent", data)), expected)
    assert len(expected) == {"preview.jpg": 3, "grid.png": 12, "faint.png": 3, "none.jpg": 0}[name]


def test_a_gif_is_read_by_its_first_frame(mt_server, insightface):
    first = faces_image(800, 600, [(200, 200), (600, 400)], 60)
    second = faces_image(800, 600, [], 60)  # no face: reading this frame would answer none
    out = io.BytesIO()
    first.save(out, "GIF", save_all=True, append_images=[second], duration=200, loop=0)
    gif = out.getvalue()
    frame = Image.open(io.BytesIO(gif))
    assert getattr(frame, "n_frames", 1) == 2
    as_png = png(frame.convert("RGB"))  # frame 0, as Pillow reads it: what the reference's face service reads
    expected = insightface.found(as_png, 0.65)
    assert len(expected) >= 2
    assert_same_as_insightface(answer(send(mt_server, "/represent", gif, filename="a.gif", content_type="image/gif")),
                               expected)


# --- failures the reference's way -------------------------------------------------------------

@pytest.mark.parametrize("path", IMAGE_ROUTES)
def test_over_10000_px_on_a_side_is_refused_as_the_reference_refuses(mt_server, path):
    for size in ((10_001, 1), (1, 10_001)):
        assert answer(send(mt_server, path, png(Image.new("L", size, 255)), content_type="image/png")) == OUT_OF_RANGE


@pytest.mark.parametrize("path", IMAGE_ROUTES)
def test_the_intake_limits_still_apply_before_decoding(mt_server, path):
    # This server allows 4000 px on a side and 4 MP; both images are a few KB of PNG.
    for size, reason in (((5_000, 10), "longest side"), ((3_000, 3_000), "pixels")):
        result = answer(send(mt_server, path, png(Image.new("L", size, 255)), content_type="image/png"))
        assert result["result"] == [] and reason in result["msg"] and "limit" in result["msg"]


@pytest.mark.parametrize("path", IMAGE_ROUTES)
def test_a_file_that_is_no_image_or_is_cut_short_is_a_msg(mt_server, path):
    whole = jpeg(Image.effect_noise((400, 300), 60).convert("RGB"))
    for data in (b"not an image at all", whole[: len(whole) // 2], b""):
        result = answer(send(mt_server, path, data))
        assert result["result"] == [] and isinstance(result["msg"], str) and result["msg"]


@pytest.mark.parametrize("path", IMAGE_ROUTES)
def test_a_request_without_a_file_part_is_422(mt_server, path):
    missing = httpx.post(f"{mt_server.url}{path}", headers={"api-key": KEY}, data={"image": "x"}, timeout=30)
    as_text = httpx.post(f"{mt_server.url}{path}", headers={"api-key": KEY}, data={"file": "x"}, timeout=30)
    for refused in (missing, as_text):
        assert refused.status_code == 422, refused.text
        assert [problem["loc"] for problem in refused.json()["detail"]] == [["body", "file"]]


def test_an_image_is_turned_upright_by_its_exif_orientation(mt_server):
    upright = Image.open(FIXTURES / "zh_clean.png").convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as a camera held sideways stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    tagged = png(stored, exif=exif)
    assert np.array_equal(np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(tagged)))), np.asarray(upright))

    as_sent = answer(send(mt_server, "/ocr", tagged, content_type="image/png"))
    assert as_sent == answer(send(mt_server, "/ocr", png(upright), content_type="image/png"))
    assert squash(as_sent["result"]["texts"]) == squash(TRUTH["zh_clean.png"]["lines"])
    assert answer(send(mt_server, "/clip/img", tagged)) == answer(send(mt_server, "/clip/img", png(upright)))


def test_a_sideways_jpeg_is_read_upright_on_every_route(mt_server, insightface):
    upright = faces_image(800, 600, [(200, 200), (560, 380)], 60)
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(out, "JPEG", quality=95, exif=exif)
    tagged = out.getvalue()
    # The truth: insightface on the image OpenCV decodes, which OpenCV turns upright itself.
    expected = insightface.found(tagged, 0.65)
    assert len(expected) >= 2 and all(face.bbox[2] <= 800 for face in expected)
    assert_same_as_insightface(answer(send(mt_server, "/represent", tagged)), expected)


@pytest.mark.parametrize("mode", ["L", "CMYK", "I;16", "P", "LA"])
def test_every_image_mode_is_read(mt_server, mode):
    image = faces_image(640, 480, [(320, 240)], 80).convert("RGB")
    if mode == "I;16":
        image = Image.fromarray((np.asarray(image.convert("L"), np.uint16) * 257))
    else:
        image = image.convert(mode)
    out = io.BytesIO()
    image.save(out, "JPEG" if mode == "CMYK" else "PNG")
    for path in IMAGE_ROUTES:
        result = answer(send(mt_server, path, out.getvalue()))
        assert "msg" not in result and result["result"] is not None, (path, result)


def test_a_body_over_the_size_limit_is_413(mt_server):
    from tests.conftest import MAX_REQUEST_BYTES

    refused = send(mt_server, "/ocr", b"\xff" * (MAX_REQUEST_BYTES + 1))
    assert refused.status_code == 413 and "limit" in refused.json()["detail"]


# --- sharing the service with Immich ----------------------------------------------------------

def immich_clip(server, data: bytes) -> np.ndarray:
    entries = json.dumps({"clip": {"visual": {"modelName": "cn-clip/ViT-B-16__openai"}}})
    body, content_type = multipart.build({"entries": entries, "image": multipart.FilePart("blob", data)})
    response = httpx.post(f"{server.url}/predict", content=body, headers={"content-type": content_type}, timeout=120)
    return np.array(json.loads(answer(response)["clip"]), np.float64)


def immich_faces(server, data: bytes) -> list[dict]:
    entries = json.dumps({"facial-recognition": {"detection": {"modelName": "buffalo_l", "options": {"minScore": 0.65}},
                                                 "recognition": {"modelName": "buffalo_l"}}})
    body, content_type = multipart.build({"entries": entries, "image": multipart.FilePart("blob", data)})
    response = httpx.post(f"{server.url}/predict", content=body, headers={"content-type": content_type}, timeout=120)
    return answer(response)["facial-recognition"]


def test_concurrent_mt_and_immich_requests_each_get_their_own_answer(mt_server):
    pictures = [png(Image.new("RGB", (320 + 8 * n, 240), (n * 40, 255 - n * 30, (n * 70) % 256))) for n in range(6)]
    crowds = [png(faces_image(640 + 16 * n, 480, grid_centres(640 + 16 * n, 480, n + 1, 1, 80), 50, seed=20 + n))
              for n in range(4)]
    alone = {("clip", n): (floats(answer(send(mt_server, "/clip/img", data))["result"]), immich_clip(mt_server, data))
             for n, data in enumerate(pictures)}
    for n, data in enumerate(crowds):
        alone[("faces", n)] = (answer(send(mt_server, "/represent", data))["result"], immich_faces(mt_server, data))
        assert len(alone[("faces", n)][0]) == len(alone[("faces", n)][1]) >= 1
    assert len({len(alone[("faces", n)][0]) for n in range(len(crowds))}) > 1  # the crowds differ
    for n in range(len(pictures)):  # the pictures are told apart by the model: cross-talk would show
        for m in range(n):
            assert cosine(alone[("clip", n)][0], alone[("clip", m)][0]) < 0.999

    def one(job: tuple[str, int, str]) -> tuple[str, int, str, object]:
        kind, n, route = job
        if kind == "clip":
            got = (floats(answer(send(mt_server, "/clip/img", pictures[n]))["result"]) if route == "mt"
                   else immich_clip(mt_server, pictures[n]))
        else:
            got = (answer(send(mt_server, "/represent", crowds[n]))["result"] if route == "mt"
                   else immich_faces(mt_server, crowds[n]))
        return kind, n, route, got

    jobs = [(kind, n, route) for _ in range(2) for kind, count in (("clip", len(pictures)), ("faces", len(crowds)))
            for n in range(count) for route in ("mt", "immich")]
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(one, jobs))
    for kind, n, route, got in results:
        want = alone[(kind, n)][0 if route == "mt" else 1]
        if kind == "clip":
            assert cosine(got, want) >= 0.99999, (n, route)
            assert abs(np.linalg.norm(got) / np.linalg.norm(want) - 1) <= 1e-4
            continue
        assert len(got) == len(want), (n, route)
        for face, expected in zip(got, want):
            area = "facial_area" if route == "mt" else "boundingBox"
            assert face[area] == expected[area]
            vectors = [np.array(v if route == "mt" else json.loads(v), np.float64)
                       for v in (face["embedding"], expected["embedding"])]
            assert cosine(*vectors) >= 0.99999, (n, route)


# --- restart ----------------------------------------------------------------------------------

def test_restart_never_restarts_but_unloads_the_models_idle_a_while(mt_server):
    def clip_files() -> dict[str, bool]:
        return {path.rsplit("/", 1)[-1]: loaded for path, loaded in loaded_models(mt_server.url).items()
                if path.endswith(("visual.onnx", "textual.onnx"))}

    pid = mt_server.pid
    answer(send(mt_server, "/clip/txt", text="猫"))
    time.sleep(MODEL_TTL + 0.5)  # /restart unloads what idled min(60 s, MODEL_TTL)
    answer(send(mt_server, "/clip/img", jpeg(Image.new("RGB", (64, 64), "white"))))  # in use just now: stays
    assert clip_files() == {"textual.onnx": True, "visual.onnx": True}

    assert answer(send(mt_server, "/restart")) == {"result": "pass"}
    assert clip_files() == {"textual.onnx": False, "visual.onnx": True}
    assert answer(send(mt_server, "/restart_v2")) == {"result": "pass"}
    assert mt_server.pid == pid and httpx.get(f"{mt_server.url}/ping").text == "pong"
    assert len(answer(send(mt_server, "/clip/txt", text="猫"))["result"]) == 512  # loads again on demand


# --- a model that is not here -----------------------------------------------------------------

def test_a_model_not_imported_is_a_msg_naming_it_and_check_says_so(lonely_server):
    # No CLIP and no faces imported there; its key is the reference's default.
    key = "mt_photos_ai_extra"
    check = answer(send(lonely_server, "/check", key=key))
    assert check["result"] == "pass" and check["served"] == {"ocr": True, "clip": False, "represent": False}
    data = jpeg(Image.new("RGB", (64, 64), "white"))
    for path, name in (("/clip/img", "cn-clip/ViT-B-16__openai"), ("/represent", "buffalo_l")):
        result = answer(send(lonely_server, path, data, key=key))
        assert result["result"] == [] and name in result["msg"] and "not served" in result["msg"]
    assert "not served" in answer(send(lonely_server, "/clip/txt", key=key, text="猫"))["msg"]
    assert "python -m runners.models import clip ViT-B-16" in lonely_server.log()
