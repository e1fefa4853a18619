"""The OCR runner: PaddleOCR's DB detector and CTC recogniser on ONNX Runtime.

Both APIs are batchable, so BentoML merges concurrent requests: ``detect`` takes prepared
detector inputs, ``recognize`` takes prepared text-line inputs from any number of images.
Jobs name their model file, so one runner serves every OCR model; a file's session loads on
first use. The runner returns raw model outputs (reduced to what decoding needs); everything else
happens in the entry service (``runners.ocr_steps``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import bentoml
import numpy as np

from config.bento import runner_service_config
from config.settings import get_settings
from runners.batching import run_grouped
from runners.models import ocr as ocr_models
from runners.models import store
from runners.onnx import Sessions

log = logging.getLogger(__name__)
settings = get_settings()


class OcrRunner:
    def __init__(self) -> None:
        self._sessions = Sessions(settings)

    @bentoml.api(
        batchable=True,
        max_batch_size=settings.ocr_det_max_batch_size,
        max_latency_ms=settings.batch_max_latency_ms,
    )
    def detect(self, jobs: list[Any]) -> list[Any]:
        """jobs: (detector path, (3, H, W) float32) -> (H, W) float32 text probability maps."""
        return run_grouped(jobs, lambda path, batch: self._sessions.run(Path(path), batch)[:, 0])

    @bentoml.api(
        batchable=True,
        max_batch_size=max(2, settings.ocr_max_batch_size),
        max_latency_ms=settings.batch_max_latency_ms,
    )
    def recognize(self, jobs: list[Any]) -> list[Any]:
        """jobs: (recogniser path, (3, 48, W) float32) -> (T, 2) float32: per time step, the best
        class and its probability (all CTC decoding reads; a tiny part of the full output)."""

        def forward(path: str, batch: np.ndarray) -> np.ndarray:
            logits = self._sessions.run(Path(path), batch)
            return np.stack([logits.argmax(axis=2).astype(np.float32), logits.max(axis=2)], axis=2)

        return run_grouped(jobs, forward)


# Wheel-shipped models travel as packages; imported ones as the service's models.
store.declare_models(OcrRunner, ocr_models.FAMILY)
OcrRunner = bentoml.service(**runner_service_config("ocr-runner", settings))(OcrRunner)
