"""The OCR runner APIs: PaddleOCR's DB detector and CTC recogniser on ONNX Runtime.

Both APIs are batchable, so BentoML merges concurrent requests: ``ocr_detect`` takes prepared
detector inputs, ``ocr_recognize`` takes prepared text-line inputs from any number of images.
Jobs name their model file, so one runner serves every OCR model. The runner returns raw model
outputs (reduced to what decoding needs); everything else happens in the entry service
(``runners.ocr_steps``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import bentoml
import numpy as np

from config.settings import get_settings
from runners.batching import run_grouped
from runners.models import store
from runners.sessions import Sessions

settings = get_settings()


#: PaddleOCR's detectors read BGR scaled to [-1, 1], ``(v / 255 - 0.5) / 0.5``; a table of
#: those 256 values (computed as rapidocr's DetPreProcess computes them, so bit for bit the
#: same) turns an 8-bit image into the detector's input in one pass.
DET_TABLE = (np.arange(256, dtype=np.float32) * np.float32(1 / 255.0) - np.float32(0.5)) / np.float32(0.5)


def detector_tensor(bgr: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) uint8 BGR -> (B, 3, H, W) float32, normalised for a PaddleOCR detector."""
    return np.take(DET_TABLE, bgr.transpose(0, 3, 1, 2))


class OcrModels:
    def __init__(self, sessions: Sessions, max_items: Callable[[tuple[int, ...]], int] | None) -> None:
        self._sessions, self._max_items = sessions, max_items

    @staticmethod
    def path(kind: str, model: str) -> Path:
        return store.resolve(model)  # jobs name the detector's or recogniser's file (``store.reference``)

    def detect(self, jobs: list[Any]) -> list[Any]:
        def forward(path: str, batch: np.ndarray) -> np.ndarray:
            return self._sessions.run(self.path("det", path), detector_tensor(batch), "ocr", "ocr_detect")[:, 0]

        return run_grouped(jobs, forward, self._max_items)

    def recognize(self, jobs: list[Any]) -> list[Any]:
        def forward(path: str, batch: np.ndarray) -> np.ndarray:
            logits = self._sessions.run(self.path("rec", path), batch, "ocr", "ocr_recognize")
            return np.stack([logits.argmax(axis=2).astype(np.float32), logits.max(axis=2)], axis=2)

        return run_grouped(jobs, forward, self._max_items)


class OcrApis:
    """Mixed into a runner service (``runners.services``), which sets ``self.ocr``."""

    ocr: OcrModels

    @bentoml.api(
        batchable=True,
        max_batch_size=settings.ocr_det_max_batch_size,
        max_latency_ms=settings.batch_max_latency_ms,
    )
    def ocr_detect(self, jobs: list[Any]) -> list[Any]:
        """jobs: (detector path, (H, W, 3) uint8 BGR) -> (H, W) float32 text probability maps."""
        return self.ocr.detect(jobs)

    @bentoml.api(
        batchable=True,
        max_batch_size=max(2, settings.ocr_max_batch_size),
        max_latency_ms=settings.batch_max_latency_ms,
    )
    def ocr_recognize(self, jobs: list[Any]) -> list[Any]:
        """jobs: (recogniser path, (3, 48, W) float32) -> (T, 2) float32: per time step, the best
        class and its probability (all CTC decoding reads; a tiny part of the full output)."""
        return self.ocr.recognize(jobs)
