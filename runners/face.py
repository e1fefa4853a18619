"""The face runner APIs: InsightFace's SCRFD detector and ArcFace recogniser on ONNX Runtime.

Both APIs are batchable, so BentoML merges concurrent requests: ``face_detect`` takes
letterboxed detector inputs, one per image, and ``face_embed`` takes aligned face crops from any
number of images. A model whose graph takes a batch gets one forward pass per model and shape;
one that takes a single input (its file declares batch 1) gets one pass per item, still within
one batch call. Jobs name their model file, so one runner serves every pack.

The runner returns raw model outputs: letterboxing, anchor decoding, NMS and alignment are
insightface's own code, run in the entry service (``runners.face_steps``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import bentoml
import numpy as np

from config.settings import get_settings
from runners.batching import run_grouped, unstack
from runners.models import store
from runners.sessions import Sessions

settings = get_settings()


class FaceModels:
    def __init__(self, sessions: Sessions, max_items: Callable[[tuple[int, ...]], int] | None) -> None:
        self._sessions, self._max_items = sessions, max_items

    @staticmethod
    def path(kind: str, model: str) -> Path:
        return store.resolve(model)  # jobs name the detector's or recogniser's file (``store.reference``)

    def _passes(self, path: str, batch: np.ndarray, api: str) -> list[list[np.ndarray]]:
        """Every output of the model for each item of ``batch``, shaped as a pass over that item
        alone gives them."""
        model = store.resolve(path)
        if self._sessions.takes_batches(model, api):
            return unstack(self._sessions.run_all(model, batch, "faces", api), len(batch))
        return [self._sessions.run_all(model, item[None], "faces", api) for item in batch]

    def detect(self, jobs: list[Any]) -> list[Any]:
        return run_grouped(jobs, lambda path, batch: self._passes(path, batch, "face_detect"), self._max_items)

    def embed(self, jobs: list[Any]) -> list[Any]:
        return run_grouped(jobs, lambda path, batch: [outputs[0][0] for outputs in self._passes(path, batch, "face_embed")],
                           self._max_items)


class FaceApis:
    """Mixed into a runner service (``runners.services``), which sets ``self.faces``."""

    faces: FaceModels

    @bentoml.api(
        batchable=True,
        max_batch_size=settings.face_det_max_batch_size,
        max_latency_ms=settings.batch_max_latency_ms,
    )
    def face_detect(self, jobs: list[Any]) -> list[Any]:
        """jobs: (detector path, (3, H, W) float32) -> the detector's outputs for that image
        (scores, boxes, landmarks per stride), as a single-image pass gives them."""
        return self.faces.detect(jobs)

    @bentoml.api(
        batchable=True,
        max_batch_size=max(2, settings.face_max_batch_size),
        max_latency_ms=settings.batch_max_latency_ms,
    )
    def face_embed(self, jobs: list[Any]) -> list[Any]:
        """jobs: (recogniser path, (3, 112, 112) float32) -> (512,) float32 raw embedding."""
        return self.faces.embed(jobs)
