"""The Chinese-CLIP runner: image and text towers on ONNX Runtime, batched across requests.

``encode_image`` takes preprocessed (3, S, S) images and ``encode_text`` (52,) token ids, each
job naming its model's folder; BentoML merges concurrent requests' jobs, and one forward pass runs per
model and shape. Features come back as the towers give them (not normalised); the entry
service normalises. On CUDA the fp16 towers run (inputs and outputs stay fp32).
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
from runners.models import clip as clip_models
from runners.models import store
from runners.onnx import Sessions, choose_providers

log = logging.getLogger(__name__)
settings = get_settings()


def use_fp16() -> bool:
    if settings.clip_fp16 != "auto":
        return settings.clip_fp16 == "true"
    return choose_providers(settings.onnx_providers)[0] == "CUDAExecutionProvider"


class ClipRunner:
    def __init__(self) -> None:
        self._sessions = Sessions(settings)
        self._fp16 = use_fp16()

    def _forward(self, part: str, folder: str, batch: np.ndarray) -> np.ndarray:
        # Jobs name the model's folder (one stored version, resolved by the entry service).
        return self._sessions.run(clip_models.tower_path(Path(folder), part, self._fp16), batch)

    @bentoml.api(
        batchable=True, max_batch_size=settings.clip_max_batch_size, max_latency_ms=settings.batch_max_latency_ms
    )
    def encode_image(self, jobs: list[Any]) -> list[Any]:
        """jobs: (model folder, (3, S, S) float32) -> (D,) float32 image features."""
        return run_grouped(jobs, lambda folder, batch: self._forward("visual", folder, batch))

    @bentoml.api(
        batchable=True, max_batch_size=settings.clip_max_batch_size, max_latency_ms=settings.batch_max_latency_ms
    )
    def encode_text(self, jobs: list[Any]) -> list[Any]:
        """jobs: (model folder, (52,) int64 token ids) -> (D,) float32 text features."""
        return run_grouped(jobs, lambda folder, batch: self._forward("textual", folder, batch))


store.declare_models(ClipRunner, clip_models.FAMILY)

ClipRunner = bentoml.service(**runner_service_config("clip-runner", settings))(ClipRunner)
