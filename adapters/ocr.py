"""Immich's ``ocr`` task: detection then recognition, answered in Immich's shape.

Detection options: ``minScore`` (DB box threshold, default 0.5) and ``maxResolution`` (the
detector input's shorter side, default 736). Recognition option: ``minScore`` (lines whose text
score is not above it are dropped; default 0.9, the reference service's).

The seed fork's older request names only ``recognition``; it then gets the older answer:
``{"ocr": "<texts joined by a space>", "result": {"texts", "scores", "boxes"}}``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from PIL import Image

from adapters import shown
from adapters.aio import to_thread
from adapters.errors import RequestError
from adapters.local import Inputs, LocalModels, TaskOutput, runner_results
from runners.models import store
from runners.models.ocr import OcrFiles
from runners.ocr_steps import (
    Decoder, Lines, detector_input, find_lines, line_crops, recogniser_input,
)
from runners.pixels import flatten, to_bgr

log = logging.getLogger(__name__)

DETECTION_DEFAULTS = {"minScore": 0.5, "maxResolution": 736}
RECOGNITION_MIN_SCORE = 0.9
LEGACY_MIN_SCORE = 0.5  # rapidocr's own text_score, which the fork's gateway applied


class OcrDetection:
    def __init__(self, runner: Any, detector: str) -> None:
        self.runner = runner
        self.detector = detector  # the file
        self.job = store.reference(Path(detector))  # how runner jobs name it

    async def predict(self, inputs: Inputs, options: Mapping[str, Any], previous: Any) -> Lines:
        if inputs.image is None:
            raise RequestError(400, "ocr needs an image")
        min_score = _number(options, "minScore", DETECTION_DEFAULTS["minScore"], 0.0, 1.0)
        max_resolution = int(_number(options, "maxResolution", DETECTION_DEFAULTS["maxResolution"], 32, 4096))
        bgr, tensor = await to_thread(_prepare, inputs.image, max_resolution)
        if tensor is None:
            return Lines.none(bgr)
        [probability] = runner_results(await self.runner.to_async.ocr_detect([(self.job, tensor)]))
        return await to_thread(find_lines, probability, bgr, min_score)

    async def preload(self) -> None:
        await self.runner.to_async.load(models=[["ocr_detect", self.job]])


class OcrRecognition:
    def __init__(self, runner: Any, recogniser: str, decoder: Decoder, detection: OcrDetection) -> None:
        self.runner = runner
        self.recogniser = recogniser  # the file
        self.job = store.reference(Path(recogniser))  # how runner jobs name it
        self.decoder = decoder
        self.detection = detection

    async def predict(self, inputs: Inputs, options: Mapping[str, Any], previous: Lines | None) -> Any:
        legacy = previous is None
        lines = previous if previous is not None else await self.detection.predict(inputs, {}, None)
        default = LEGACY_MIN_SCORE if legacy else RECOGNITION_MIN_SCORE
        min_score = _number(options, "minScore", default, 0.0, 1.0)
        kept, texts, scores = await self.read(lines, min_score)
        return _legacy_answer(kept, texts, scores) if legacy else _immich_answer(kept, texts, scores)

    async def read(self, lines: Lines, min_score: float) -> tuple[Lines, list[str], np.ndarray]:
        """The lines whose text scores above ``min_score``: those lines, their texts and scores."""
        texts: list[str] = []
        scores = np.zeros(0, np.float32)
        if len(lines.boxes):
            tensors = await to_thread(lambda: [recogniser_input(c) for c in line_crops(lines)])
            outputs = runner_results(await self.runner.to_async.ocr_recognize([(self.job, t) for t in tensors]))
            decoded = [self.decoder(out[:, 0].astype(np.int64), out[:, 1]) for out in outputs]
            texts = [text for text, _ in decoded]
            scores = np.nan_to_num(np.array([score for _, score in decoded], np.float32), nan=0.0)

        keep = scores > min_score
        kept = Lines(lines.image, lines.boxes[keep], lines.scores[keep])
        return kept, [text for text, ok in zip(texts, keep) if ok], scores[keep]

    async def preload(self) -> None:
        await self.runner.to_async.load(models=[["ocr_recognize", self.job]])


def ocr_local_models(runner: Any, models: list[OcrFiles]) -> LocalModels:
    """The router's entries for every available OCR model (a broken one is logged and left out)."""
    table: dict[tuple[str, str, str], Any] = {}
    for files in models:
        try:
            decoder = Decoder(files.keys)
        except (OSError, ValueError) as exc:
            log.error("OCR model %s (%s) is not served: its alphabet cannot be read: %s", files.name, files.origin, exc)
            continue
        detection = OcrDetection(runner, str(files.det))
        table[("ocr", "detection", files.name)] = detection
        table[("ocr", "recognition", files.name)] = OcrRecognition(runner, str(files.rec), decoder, detection)
    return table


def _immich_answer(lines: Lines, texts: list[str], text_scores: np.ndarray) -> dict[str, Any]:
    height, width = lines.image.shape[:2]
    normalised = np.clip(lines.boxes / np.array([width, height], np.float32), 0.0, 1.0)
    return {
        "text": texts,
        "box": normalised.reshape(-1).tolist(),
        "boxScore": lines.scores.tolist(),
        "textScore": text_scores.tolist(),
    }


def _legacy_answer(lines: Lines, texts: list[str], text_scores: np.ndarray) -> TaskOutput:
    # x2/y2 are the right and bottom edges (the fork's gateway once put width/height there).
    boxes = [
        {"x1": round(float(b[:, 0].min()), 1), "y1": round(float(b[:, 1].min()), 1),
         "x2": round(float(b[:, 0].max()), 1), "y2": round(float(b[:, 1].max()), 1)}
        for b in lines.boxes
    ]
    result = {"texts": texts, "scores": [f"{s:.2f}" for s in text_scores], "boxes": boxes}
    return TaskOutput(" ".join(texts), {"result": result})


def _prepare(image: Image.Image, max_resolution: int) -> tuple[np.ndarray, np.ndarray | None]:
    bgr = to_bgr(flatten(image))
    return bgr, detector_input(bgr, max_resolution)


def _number(options: Mapping[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = options.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise RequestError(400, f"ocr option {name} must be a number from {low:g} to {high:g}, got {shown.value(value)}")
    return float(value)
