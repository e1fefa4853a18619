"""The requests the benchmark sends, exactly as the Immich server sends them: its default
options, 1440x1080 JPEG previews at quality 80."""

from __future__ import annotations

import io
import json

import numpy as np
from PIL import Image, ImageDraw

from bench.load import Workload
from tests.support import multipart
from tests.support.ocr_cases import FIXTURES

CLIP_MODEL = "cn-clip/ViT-B-16__openai"
FACE_PACK = "buffalo_l"
OCR_MODEL = "PP-OCRv5_mobile"
#: A 1440x1080 preview with several lines of Chinese and English text (OCR reads 4-5 lines).
SCENE = FIXTURES / "scene_1440x1080.jpg"
FACES_PER_IMAGE = 3
#: Sensor-like grain, so a preview weighs (about 230 KB) and decodes like a phone photo's
#: rather than like the flat synthetic scene (96 KB).
GRAIN = 8.0

CLIP_VISUAL = json.dumps({"clip": {"visual": {"modelName": CLIP_MODEL}}})
CLIP_TEXTUAL = json.dumps({"clip": {"textual": {"modelName": CLIP_MODEL, "options": {"language": "zh-CN"}}}})
FACES = json.dumps({"facial-recognition": {"detection": {"modelName": FACE_PACK, "options": {"minScore": 0.7}},
                                           "recognition": {"modelName": FACE_PACK}}})
OCR = json.dumps({"ocr": {"detection": {"modelName": OCR_MODEL, "options": {"minScore": 0.5, "maxResolution": 736}},
                          "recognition": {"modelName": OCR_MODEL, "options": {"minScore": 0.8}}}})
QUERIES = ["海边的日落", "一只在草地上奔跑的小狗", "生日蛋糕和蜡烛", "sunset over the sea", "雪山下的湖泊", "火锅"]


def preview(image: Image.Image, seed: int) -> bytes:
    """``image`` with grain, as a quality-80 JPEG (Immich's preview setting)."""
    noise = np.random.default_rng(seed).normal(0.0, GRAIN, (image.height, image.width, 3))
    grainy = np.clip(np.asarray(image.convert("RGB"), np.float32) + noise, 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(grainy).save(out, "JPEG", quality=80)
    return out.getvalue()


def scene(seed: int = 0) -> bytes:
    return preview(Image.open(SCENE), seed)


def face_preview(seed: int) -> bytes:
    """The scene with three 60 px 'faces' (red squares, which the bench detector finds) at
    places that vary with ``seed``."""
    image = Image.open(SCENE).convert("RGB")
    draw = ImageDraw.Draw(image)
    rng = np.random.default_rng(seed)
    for column in range(FACES_PER_IMAGE):
        x, y = 240 + 480 * column + int(rng.integers(-100, 100)), int(rng.integers(200, 880))
        draw.rectangle([x - 30, y - 30, x + 29, y + 29], fill=(255, 0, 0))
    return preview(image, seed)


def _image_bodies(entries: str, images: list[bytes]) -> list[tuple[bytes, str]]:
    return [multipart.build({"entries": entries, "image": multipart.FilePart("blob", image)}) for image in images]


def _expect_faces(answer: dict) -> None:
    if len(answer["facial-recognition"]) != FACES_PER_IMAGE:
        raise AssertionError(f"{len(answer['facial-recognition'])} faces, expected {FACES_PER_IMAGE}")


def _expect_text(answer: dict) -> None:
    if not answer["ocr"]["text"]:
        raise AssertionError("no text read")


def _expect_vector(answer: dict) -> None:
    if len(json.loads(answer["clip"])) != 512:
        raise AssertionError("not a 512-d vector")


def clip_image() -> Workload:
    return Workload("clip image", _image_bodies(CLIP_VISUAL, [scene(seed) for seed in range(4)]), _expect_vector)


def clip_text() -> Workload:
    bodies = [multipart.build({"entries": CLIP_TEXTUAL, "text": query}) for query in QUERIES]
    return Workload("clip text", bodies, _expect_vector)


def faces() -> Workload:
    return Workload("faces", _image_bodies(FACES, [face_preview(seed) for seed in range(8)]), _expect_faces)


def ocr() -> Workload:
    return Workload("ocr", _image_bodies(OCR, [scene(seed) for seed in range(4)]), _expect_text)
