"""Generated hostile and broken requests against a served process (hypothesis, seeded).

Over 2,000 requests a run: Immich forms built from random entries, options, fields and images;
valid multipart bodies with bytes flipped, cut or inserted and odd content types; MT Photos'
routes with random keys, files and JSON. Every answer must be one the README declares (no 500),
no connection may drop, and ``/ping`` must answer after. The examples are derived from the
tests' names (``derandomize``), so a run is the same on every machine.
"""

from __future__ import annotations

import io
import json
from collections import Counter

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.conftest import MT_KEY as KEY
from tests.support import multipart

SETTINGS = dict(derandomize=True, database=None, deadline=None, print_blob=True,
                suppress_health_check=list(HealthCheck))

#: What /predict may answer on this server (no upstream: an unserved model is 501).
PREDICT_STATUSES = {200, 400, 413, 422, 501}
#: What MT Photos' routes may answer: failures of images and models are 200 with "msg".
MT_STATUSES = {200, 400, 401, 413, 422}


def _encoded(image: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def _images() -> list[bytes]:
    base = Image.linear_gradient("L").resize((96, 64)).convert("RGB")
    frames = [base, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    return [
        _encoded(base, "JPEG"),
        _encoded(base, "PNG"),
        _encoded(base.convert("RGBA"), "PNG"),
        _encoded(base.convert("P"), "GIF", save_all=True, append_images=frames[1:]),
        _encoded(base, "WEBP"),
        _encoded(Image.new("1", (1, 1)), "BMP"),
        _encoded(Image.new("L", (3000, 3000)), "PNG"),  # over this server's 4 MP: refused from the header
        _encoded(Image.new("L", (5000, 2)), "PNG"),  # over its 4000 px side
    ]


IMAGES = _images()
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
TASKS = st.sampled_from(["clip", "facial-recognition", "ocr"]) | st.text(max_size=12)
TYPES = st.sampled_from(["visual", "textual", "detection", "recognition"]) | st.text(max_size=12)
MODELS = st.sampled_from(["cn-clip/ViT-B-16__openai", "buffalo_l", "PP-OCRv5_mobile", "immich-app/PP-OCRv5_mobile",
                          "ViT-B-32__openai", "antelopev2"]) | st.text(max_size=40)
OPTION_VALUES = st.floats(-1, 2) | st.sampled_from([float("nan"), float("inf")]) | st.integers(-10, 1024) | JSON
OPTIONS = st.dictionaries(st.sampled_from(["minScore", "maxResolution", "language"]) | st.text(max_size=8),
                          OPTION_VALUES, max_size=3)
ENTRY = st.fixed_dictionaries({"modelName": MODELS}, optional={"options": OPTIONS}) | JSON
#: What the models here serve, each task with the types Immich sends together.
SERVED = {
    "clip": ([["visual"], ["textual"]], "cn-clip/ViT-B-16__openai"),
    "facial-recognition": ([["detection", "recognition"]], "buffalo_l"),
    "ocr": ([["detection", "recognition"], ["recognition"]], "PP-OCRv5_mobile"),
}
GOOD_OPTIONS = st.dictionaries(st.sampled_from(["minScore", "maxResolution", "language"]),
                               st.floats(0, 1) | st.integers(32, 1024) | st.sampled_from(["zh-CN", "en"]), max_size=2)


@st.composite
def served_entries(draw) -> str:
    """Entries for models served here, with options valid or not: these reach the models."""
    entries: dict = {}
    for task in draw(st.lists(st.sampled_from(sorted(SERVED)), min_size=1, max_size=2, unique=True)):
        type_sets, model = SERVED[task]
        entries[task] = {type_: {"modelName": model, "options": draw(GOOD_OPTIONS | OPTIONS)}
                         for type_ in draw(st.sampled_from(type_sets))}
    return json.dumps(entries)


def _nested(depth: int) -> str:
    return '{"clip": {"visual": {"modelName": "m", "options": {"x": ' + "[" * depth + "]" * depth + "}}}}"


ENTRIES = (served_entries() | served_entries() | served_entries()
           | st.dictionaries(TASKS, st.dictionaries(TYPES, ENTRY, max_size=3), max_size=3).map(json.dumps)
           | JSON.map(json.dumps) | st.text(max_size=40) | st.integers(1, 20_000).map(_nested))


@st.composite
def mutated(draw, data: st.SearchStrategy[bytes]) -> bytes:
    """``data`` with a few bytes flipped, a piece cut out or random bytes put in."""
    out = bytearray(draw(data))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        at = draw(st.integers(0, max(0, len(out) - 1)))
        if action == "flip" and out:
            out[at] ^= draw(st.integers(1, 255))
        elif action == "cut":
            del out[at: at + draw(st.integers(1, 64))]
        elif action == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=32))
        else:
            del out[at:]
    return bytes(out)


FILES = st.sampled_from(IMAGES) | mutated(st.sampled_from(IMAGES)) | st.binary(max_size=256)


def _client(server) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=60)


def _record(statuses: Counter[int], response: httpx.Response, allowed: set[int], sent: object) -> None:
    statuses[response.status_code] += 1
    assert response.status_code in allowed, (sent, response.status_code, response.text[:500])


def _finish(server, name: str, statuses: Counter[int], at_least: int, *seen: int) -> None:
    """Enough requests were sent, answers of each status in ``seen`` came, /ping still answers."""
    print(f"{name}:", dict(statuses))
    assert sum(statuses.values()) >= at_least and all(statuses[status] > 0 for status in seen), statuses
    assert httpx.get(f"{server.url}/ping", timeout=5).text == "pong"


@st.composite
def predict_forms(draw) -> dict:
    fields: dict = {}
    if draw(st.booleans()) or draw(st.booleans()):
        fields["entries"] = draw(ENTRIES)
    payload = draw(st.sampled_from(["image", "image", "image", "text", "text", "both", "neither", "image-as-text"]))
    if payload in ("image", "both"):
        fields["image"] = multipart.FilePart(draw(st.text(max_size=12).map(lambda s: s.replace('"', ""))) or "blob",
                                             draw(FILES))
    if payload in ("text", "both"):
        fields["text"] = draw(st.text(max_size=60))
    if payload == "image-as-text":
        fields["image"] = draw(st.text(max_size=30))
    for name in draw(st.lists(st.sampled_from(["extra", "entries2", "modelName"]), max_size=2)):
        fields[name] = draw(st.text(max_size=20))
    return fields


def test_generated_immich_forms_get_declared_answers(mt_server):
    statuses: Counter[int] = Counter()
    with _client(mt_server) as client:

        @settings(max_examples=900, **SETTINGS)
        @given(predict_forms())
        def one(fields: dict) -> None:
            body, content_type = multipart.build(fields)
            _record(statuses, client.post("/predict", content=body, headers={"content-type": content_type}),
                    PREDICT_STATUSES, fields)

        one()
    _finish(mt_server, "immich forms", statuses, 900, 200)


VALID_BODIES = [
    multipart.build({"entries": json.dumps({"clip": {"visual": {"modelName": "cn-clip/ViT-B-16__openai"}}}),
                     "image": multipart.FilePart("blob", IMAGES[0])}),
    multipart.build({"entries": json.dumps({"facial-recognition": {
        "detection": {"modelName": "buffalo_l", "options": {"minScore": 0.7}}, "recognition": {"modelName": "buffalo_l"}}}),
        "image": multipart.FilePart("blob", IMAGES[1])}),
    multipart.build({"entries": json.dumps({"clip": {"textual": {"modelName": "cn-clip/ViT-B-16__openai"}}}),
                     "text": "海边的日落"}),
]
CONTENT_TYPES = st.sampled_from([None, "multipart/form-data", "multipart/form-data; boundary=",
                                 "multipart/form-data; boundary=other", "application/x-www-form-urlencoded",
                                 "application/json", "text/plain"]) | st.text(max_size=40)


def test_mutated_immich_bodies_get_declared_answers(mt_server):
    statuses: Counter[int] = Counter()
    with _client(mt_server) as client:

        @settings(max_examples=550, **SETTINGS)
        @given(st.sampled_from(range(len(VALID_BODIES))), st.booleans(), st.data())
        def one(which: int, mutate: bool, data: st.DataObject) -> None:
            body, content_type = VALID_BODIES[which]
            if mutate:
                body = data.draw(mutated(st.just(body)))
            if data.draw(st.booleans()):
                content_type = data.draw(CONTENT_TYPES)
            headers = {} if content_type is None else {"content-type": content_type.encode("utf-8")}
            try:
                response = client.post("/predict", content=body, headers=headers)
            except httpx.LocalProtocolError:  # a header value httpx itself refuses to send
                return
            _record(statuses, response, PREDICT_STATUSES, content_type)

        one()
    _finish(mt_server, "mutated bodies", statuses, 500, 200)


MT_ROUTES = ["/check", "/ocr", "/clip/img", "/clip/txt", "/represent", "/restart", "/restart_v2"]
TEXT_BODIES = (st.text(max_size=60).map(lambda t: json.dumps({"text": t}).encode())
               | JSON.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=120))


def test_generated_mt_photos_requests_get_declared_answers(mt_server):
    statuses: Counter[int] = Counter()
    with _client(mt_server) as client:

        @settings(max_examples=700, **SETTINGS)
        @given(st.sampled_from(MT_ROUTES), st.sampled_from([KEY, KEY, KEY, "wrong", None]), st.data())
        def one(route: str, key: str | None, data: st.DataObject) -> None:
            headers = {} if key is None else {"api-key": key}
            if route == "/clip/txt":
                response = client.post(route, content=data.draw(TEXT_BODIES),
                                       headers={**headers, "content-type": "application/json"})
            elif route in ("/ocr", "/clip/img", "/represent") and data.draw(st.booleans()):
                name = data.draw(st.sampled_from(["file", "file", "image", "File"]))
                body, content_type = multipart.build({name: multipart.FilePart("a.jpg", data.draw(FILES))})
                response = client.post(route, content=body, headers={**headers, "content-type": content_type})
            else:
                response = client.post(route, content=data.draw(st.binary(max_size=64)), headers=headers)
            _record(statuses, response, MT_STATUSES, route)
            if response.status_code == 200:
                assert "result" in response.json()

        one()
    _finish(mt_server, "MT Photos", statuses, 700, 200, 401)


@pytest.fixture(autouse=True)
def _no_worker_died(mt_server):
    """Every test leaves the same entry worker serving: none crashed and was started again."""
    before = mt_server.worker("immich-cn-ml").pid
    yield
    assert mt_server.worker("immich-cn-ml").pid == before
