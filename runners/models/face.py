"""The InsightFace packs this service serves, and where their imported files live.

A pack is served under its own name (``buffalo_l``), the name Immich sends for the
``facial-recognition`` task, so an imported pack takes over from the upstream's copy of the
same model; a pack that is not imported still goes upstream.

Packs are imported with ``python -m runners.models import face PACK``. Only the detector and
the recogniser are kept: Immich uses no other model of a pack.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runners.models import store

FAMILY = "face"
DETECTOR, RECOGNIZER = "detector.onnx", "recognizer.onnx"
DEFAULT_PACK = "buffalo_l"
# The Immich server keeps face embeddings in a vector(512) column.
EMBEDDING_DIM = 512

#: The packs Immich offers, which InsightFace's model zoo publishes (without checksums).
PACKS: dict[str, str] = {
    "buffalo_l": "SCRFD 10GF detector, ArcFace ResNet-50 (WebFace600K)",
    "buffalo_m": "SCRFD 2.5GF detector, ArcFace ResNet-50 (WebFace600K)",
    "buffalo_s": "SCRFD 500MF detector, ArcFace MobileFaceNet (WebFace600K)",
    "antelopev2": "SCRFD 10GF detector, ArcFace ResNet-100 (Glint360K)",
}


@dataclass(frozen=True)
class FaceFiles:
    name: str  # the served name, the pack's
    folder: Path
    metadata: dict[str, Any]

    @property
    def detector(self) -> Path:
        return self.folder / DETECTOR

    @property
    def recognizer(self) -> Path:
        return self.folder / RECOGNIZER

    def io(self, part: str) -> dict[str, list[list[Any]]]:
        """A stored model's inputs and outputs, ``{"inputs": [[name, shape, type]], "outputs": ...}``,
        as ONNX Runtime reported them at import (so the entry service needs no session)."""
        return self.metadata[f"{part}_io"]


def resolve(name: str) -> FaceFiles | None:
    model = store.get(FAMILY, name)
    if model is None:
        return None
    metadata = dict(model.info.metadata)
    return FaceFiles(metadata.get("name", name), Path(model.path), metadata)


def available() -> list[FaceFiles]:
    """Every imported pack (its newest version)."""
    return [files for name, _ in store.newest(FAMILY) if (files := resolve(name)) is not None]
