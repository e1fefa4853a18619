"""The Chinese-CLIP runner APIs: image and text towers, batched across requests.

``clip_image`` takes resized (S, S, 3) 8-bit RGB images and ``clip_text`` (52,) token ids, each
job naming its model's folder; BentoML merges concurrent requests' jobs, and one forward pass
runs per model and shape. Images travel as 8 bits, a quarter of their float size, and are
normalised here (``image_tensor``). Features come back as the towers give them (not
normalised); the entry service normalises. On CUDA the fp16 towers run (inputs and outputs stay
fp32).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import bentoml
import numpy as np

from config.settings import get_settings
from runners.batching import run_grouped
from runners.models import clip as clip_models
from runners.models import store
from runners.sessions import Sessions

settings = get_settings()

PARTS = {"image": "visual", "text": "textual"}

#: cn-clip's normalisation of each 8-bit value, per channel: ``(v / 255 - mean) / std``, computed
#: in float32 as cn-clip's ToTensor and Normalize compute it, so a table lookup gives the same
#: bits as the arithmetic.
_TABLES = np.stack([(np.arange(256, dtype=np.float32) / np.float32(255.0) - np.float32(mean)) / np.float32(std)
                    for mean, std in zip(clip_models.MEAN, clip_models.STD)])


def image_tensor(pixels: np.ndarray) -> np.ndarray:
    """(B, S, S, 3) uint8 RGB -> (B, 3, S, S) float32, normalised as cn-clip normalises."""
    planes = pixels.transpose(3, 0, 1, 2)  # channel first, then each channel's own table
    return np.stack([np.take(_TABLES[c], planes[c]) for c in range(3)], axis=1)


def use_fp16(first_provider: str) -> bool:
    if settings.clip_fp16 != "auto":
        return settings.clip_fp16 == "true"
    return first_provider == "CUDAExecutionProvider"


class ClipModels:
    def __init__(self, sessions: Sessions, fp16: bool, max_items: Callable[[tuple[int, ...]], int] | None) -> None:
        self._sessions, self._fp16, self._max_items = sessions, fp16, max_items

    def path(self, kind: str, folder: str) -> Path:
        """The tower file a job of ``kind`` ("image" or "text") on the model ``folder`` runs."""
        # Jobs name the model's folder (one stored version, resolved by the entry service), by
        # its place in the stores (``store.reference``): found here in this runner's own.
        return clip_models.tower_path(store.resolve(folder), PARTS[kind], self._fp16)

    def encode(self, kind: str, jobs: list[Any]) -> list[Any]:
        # Search queries take turns apart from the library's images: a query typed during a
        # library scan has used no runner time lately, so it gets the next turn.
        turns = "clip" if kind == "image" else "clip text"

        def forward(folder: str, batch: np.ndarray) -> np.ndarray:
            inputs = image_tensor(batch) if kind == "image" else batch
            return self._sessions.run(self.path(kind, folder), inputs, turns, f"clip_{kind}")

        return run_grouped(jobs, forward, self._max_items)


class ClipApis:
    """Mixed into a runner service (``runners.services``), which sets ``self.clip``."""

    clip: ClipModels

    @bentoml.api(
        batchable=True, max_batch_size=settings.clip_max_batch_size, max_latency_ms=settings.batch_max_latency_ms
    )
    def clip_image(self, jobs: list[Any]) -> list[Any]:
        """jobs: (model folder, (S, S, 3) uint8 RGB) -> (D,) float32 image features."""
        return self.clip.encode("image", jobs)

    @bentoml.api(
        batchable=True, max_batch_size=settings.clip_max_batch_size, max_latency_ms=settings.batch_max_latency_ms
    )
    def clip_text(self, jobs: list[Any]) -> list[Any]:
        """jobs: (model folder, (52,) int64 token ids) -> (D,) float32 text features."""
        return self.clip.encode("text", jobs)
