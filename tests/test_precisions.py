"""The faster precisions over real HTTP, each held to its own tolerance of the exact answers.

- ``auto``: OpenVINO at bf16 where the CPU has bf16 (skipped elsewhere, where ``auto`` is the
  exact fp32 path the other tests hold): CLIP and face embeddings at cos >= 0.999 to the
  references, face boxes within 2 px and scores within 0.01; OCR, which runs at fp32 on
  OpenVINO there (bf16 changed spaces, see runners/precision.py), reads text identical to ONNX
  Runtime's on every OCR test image, with the real PP-OCRv5 mobile and PP-OCRv6 small weights.
- ``int8``: the CLIP towers quantised: embeddings at cos >= 0.99 to cn-clip's, and on a gallery
  of 300 photographs each image's 10 nearest neighbours at least 90 % those of fp32.

Every other test server runs at fp32 (tests/support/bento_server.EXACT).
"""

from __future__ import annotations

import concurrent.futures
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from runners import cpu
from tests.adapters.test_clip import TEXTS, embed_image, embed_text, images, vector
from tests.adapters.test_face import encode, faces_of
from tests.adapters.test_ocr import immich_entries as ocr_entries
from tests.adapters.test_ocr import ocr
from tests.conftest import LIMITS, _with_clip_and_faces
from tests.support.bento_server import BentoServer
from tests.support.face_reference import Reference
from tests.support.fake_faces import peaked_faces_image
from tests.support.gallery import gallery, neighbour_overlap
from tests.support.metrics import batch_sizes
from tests.support.ocr_cases import BATCH, FIXTURES, TRUTH
from tests.support.tiny_clip import reference_encoders

BF16 = "BF16" in (cpu.openvino_capabilities() or ())
#: Neighbours whose fp32 cosines to a photo are this close are ties: their order is rounding
#: (int8 moves a cosine by about this much; Immich's search ranks them as equals in effect).
TIE = 1e-3
needs_bf16 = pytest.mark.skipif(not BF16, reason="this CPU has no bf16 (OpenVINO's CPU device does not list "
                                                 "BF16): auto is the exact fp32 path there")
OCR_MODELS = ["PP-OCRv5_mobile", "PP-OCRv6_small"]


def serve(tmp_path_factory, tiny_clip, face_packs, precision: str):
    home = _with_clip_and_faces(tmp_path_factory.mktemp(f"{precision}-home"), tiny_clip, face_packs)
    server = BentoServer(".", home, {**LIMITS, "IMMICH_CN_ML_PRECISION": precision}).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def auto_server(tmp_path_factory, tiny_clip, face_packs):
    yield from serve(tmp_path_factory, tiny_clip, face_packs, "auto")


@pytest.fixture(scope="module")
def spread_clip(tmp_path_factory):
    """A tiny Chinese-CLIP whose image embeddings spread as a trained model's do (see
    ``write_tiny_checkpoint``): the tests' usual one puts every photo within float rounding of
    its neighbours, so no precision but fp32 itself could keep their order."""
    from tests.support.tiny_clip import SPREAD_CONFIG, write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("spread-clip"), config=SPREAD_CONFIG, spread=None)


@pytest.fixture(scope="module")
def int8_server(tmp_path_factory, spread_clip, face_packs):
    yield from serve(tmp_path_factory, spread_clip, face_packs, "int8")


@pytest.fixture(scope="module")
def reference(tiny_clip):
    return reference_encoders(*tiny_clip)


@pytest.fixture(scope="module")
def spread_reference(spread_clip):
    return reference_encoders(*spread_clip)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def status(server) -> dict:
    return httpx.get(f"{server.url}/ui/api/status", timeout=30).json()


# --- auto: OpenVINO bf16 ---------------------------------------------------------------------


@needs_bf16
def test_auto_runs_openvino_bf16_and_says_so_in_the_log_and_the_status(auto_server):
    embed_text(auto_server, "海边的日落")
    found = status(auto_server)
    assert found["runtime"]["plans"] == {"clip": "OpenVINO CPU bf16", "faces": "OpenVINO CPU bf16",
                                         "ocr": "OpenVINO CPU fp32"}
    [row] = [m for m in found["models"] if (m["task"], m["type"]) == ("clip", "textual") and m["loaded"]]
    assert row["runs_on"] == "OpenVINO CPU bf16"
    log = auto_server.log()
    assert "backend auto, precision auto: clip on OpenVINO CPU bf16" in log and "avx512_bf16" in log


@needs_bf16
@pytest.mark.parametrize("name", list(images()))
def test_bf16_image_embeddings_stay_within_cos_0999_of_cn_clip(auto_server, reference, name):
    data = images()[name]
    got, want = vector(embed_image(auto_server, data)), reference[0](data)
    assert cosine(got, want) >= 0.999


@needs_bf16
def test_auto_decodes_a_jpeg_for_clip_reduced_and_answers_the_size_sent(auto_server, reference):
    data = images()["preview.jpg"]  # 1440x1080: decoded at 1/4, 360x270
    answer = embed_image(auto_server, data)
    assert (answer["imageWidth"], answer["imageHeight"]) == (1440, 1080)
    reduced = Image.open(io.BytesIO(data))
    reduced.draft(None, (224, 224))
    out = io.BytesIO()
    reduced.convert("RGB").save(out, "PNG")  # the reduced pixels, losslessly, for the reference
    got, whole, small = vector(answer), reference[0](data), reference[0](out.getvalue())
    assert cosine(got, small) > cosine(got, whole)  # what was embedded is the reduced decoding


@needs_bf16
def test_bf16_text_embeddings_stay_within_cos_0999_of_cn_clip(auto_server, reference):
    for text in TEXTS:
        assert cosine(vector(embed_text(auto_server, text)), reference[1](text)) >= 0.999, text


#: Faces whose red peaks at their centres (see ``peaked_faces_image``), mid-cell for the detector.
PEAKED = {
    "preview-jpeg": lambda: encode(peaked_faces_image(1440, 1080, [(297, 297), (603, 603), (1143, 351)], 60, seed=1),
                                   "JPEG", quality=90),
    "preview-png": lambda: encode(peaked_faces_image(1440, 1080, [(189, 189), (711, 189), (1233, 189), (189, 765),
                                                                   (711, 765), (1233, 765)], 70, seed=2)),
}


@needs_bf16
@pytest.mark.parametrize("picture", list(PEAKED))
def test_bf16_faces_stay_within_2px_001_and_cos_0999_of_insightface(auto_server, face_packs, picture):
    image = PEAKED[picture]()
    want = Reference(face_packs["buffalo_l"]).faces(image, 0.7)
    got = faces_of(auto_server, image)
    assert len(got) == len(want) and want
    for face, truth in zip(got, want):
        box = face["boundingBox"]
        assert max(abs(box[k] - truth["box"][k]) for k in ("x1", "y1", "x2", "y2")) <= 2, (box, truth["box"])
        assert abs(face["score"] - truth["score"]) <= 0.01
        assert cosine(np.array(json.loads(face["embedding"])), truth["embedding"]) >= 0.999


@pytest.mark.parametrize("model", OCR_MODELS)
def test_auto_reads_the_same_text_as_fp32_on_every_ocr_test_image(auto_server, lonely_server, model):
    # OCR runs at fp32 on OpenVINO at auto, whether the CPU has bf16 or not.
    names = [*(FIXTURES / name for name in TRUTH), *(FIXTURES / "batch" / f"{i:02d}.png" for i in range(len(BATCH)))]
    differ = []
    for path in names:
        answers = []
        for server in (lonely_server, auto_server):  # lonely_server runs the exact fp32 path
            response = ocr(server, path.read_bytes(), ocr_entries(model=model))
            assert response.status_code == 200, response.text
            answers.append(response.json()["ocr"]["text"])
        if answers[0] != answers[1]:
            differ.append((path.name, answers))
    assert not differ, differ


@needs_bf16
def test_bf16_concurrent_requests_batch_and_each_get_their_own_answer(auto_server):
    datas = gallery(24, side=224, seed=3)
    alone = [vector(embed_image(auto_server, data)) for data in datas]
    before = batch_sizes(auto_server.url, "clip_image")
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        together = list(pool.map(lambda data: vector(embed_image(auto_server, data)), datas))
    for got, want in zip(together, alone):
        assert cosine(got, want) >= 0.9999  # batched passes differ from single ones in rounding only
    batches, calls, singles = (a - b for a, b in zip(batch_sizes(auto_server.url, "clip_image"), before))
    assert calls == 24 and batches < calls, "no image batch merged two requests"


# --- int8: the CLIP towers ---------------------------------------------------------------------


def test_int8_quantises_the_clip_towers_and_leaves_the_rest(int8_server):
    embed_image(int8_server, images()["preview.jpg"])
    found = status(int8_server)
    assert found["runtime"]["plans"]["clip"] == "ONNX Runtime CPU int8"
    assert found["runtime"]["plans"]["faces"] == ("OpenVINO CPU bf16" if BF16 else "ONNX Runtime CPU fp32")
    [row] = [m for m in found["models"] if (m["task"], m["type"]) == ("clip", "visual") and m["loaded"]]
    assert row["runs_on"] == "ONNX Runtime CPU int8"
    assert "int8 applies to the CLIP towers only" in int8_server.log()


def test_int8_text_embeddings_stay_within_cos_099_of_cn_clip(int8_server, spread_reference):
    for text in TEXTS:
        assert cosine(vector(embed_text(int8_server, text)), spread_reference[1](text)) >= 0.99, text


def test_int8_keeps_each_photos_nearest_neighbours_in_a_gallery_of_300(int8_server, spread_reference):
    photos = gallery(300)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        served = np.stack(list(pool.map(lambda data: vector(embed_image(int8_server, data)), photos)))
    exact = np.stack([spread_reference[0](data) for data in photos])
    cosines = (served * exact).sum(1) / np.linalg.norm(served, axis=1) / np.linalg.norm(exact, axis=1)
    strict, tied = neighbour_overlap(exact, served), neighbour_overlap(exact, served, tie=TIE)
    print(f"int8 against fp32 on 300 photos: cos min {cosines.min():.5f}, mean {cosines.mean():.5f}; "
          f"10-NN overlap min {strict.min():.2f}, mean {strict.mean():.3f}; with ties: min {tied.min():.2f}")
    assert cosines.min() >= 0.99
    assert tied.min() >= 0.9, sorted(tied)[:10]  # each photo's neighbours, but for ties
    assert strict.mean() >= 0.95
