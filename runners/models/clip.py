"""The Chinese-CLIP models this service serves, and where their exported files live.

Each architecture is served under a name the Immich server accepts for the same embedding
size: the server checks the name after its last "/" against its own CLIP table, and that
table's dimension sizes the vector column. The ``cn-clip/`` prefix keeps the stock OpenCLIP
model of the same name (which may go upstream) apart from ours.

Models are imported (exported to ONNX) with ``python -m runners.models import clip ARCH``;
serving reads the BentoML model store only, and needs neither torch nor cn-clip.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runners.models import store

log = logging.getLogger(__name__)

FAMILY = "clip"
VISUAL, TEXTUAL = "visual.onnx", "textual.onnx"
VISUAL_FP16, TEXTUAL_FP16 = "visual.fp16.onnx", "textual.fp16.onnx"
#: Every tower file an imported model holds.
TOWER_FILES = frozenset({VISUAL, TEXTUAL, VISUAL_FP16, TEXTUAL_FP16})
VOCAB = "vocab.txt"
CONTEXT_LENGTH = 52
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ClipArch:
    arch: str  # cn-clip's name
    served_name: str  # the name Immich sends
    dim: int


ARCHS: dict[str, ClipArch] = {
    a.arch: a
    for a in (
        ClipArch("ViT-B-16", "cn-clip/ViT-B-16__openai", 512),
        ClipArch("ViT-L-14", "cn-clip/ViT-L-14__openai", 768),
        ClipArch("ViT-L-14-336", "cn-clip/ViT-L-14-336__openai", 768),
        ClipArch("ViT-H-14", "cn-clip/ViT-H-14__laion2b-s32b-b79k", 1024),
        ClipArch("RN50", "cn-clip/RN50__openai", 1024),
    )
}


@dataclass(frozen=True)
class ClipFiles:
    name: str  # the served name
    folder: Path
    metadata: dict[str, Any]

    def tower(self, part: str, fp16: bool) -> Path:
        return tower_path(self.folder, part, fp16)

    @property
    def vocab(self) -> Path:
        return self.folder / VOCAB

    @property
    def image_size(self) -> int:
        return int(self.metadata["image_size"])

    @property
    def dim(self) -> int:
        return int(self.metadata["embed_dim"])

    @property
    def resize(self) -> str:
        """How an image becomes the tower's square (``runners.clip_steps.SQUARE`` for cn-clip's
        own checkpoints)."""
        return str(self.metadata.get("resize_mode", "square"))


def tower_path(folder: Path, part: str, fp16: bool) -> Path:
    """One tower's file in an imported model's folder; part is "visual" or "textual"."""
    files = {("visual", False): VISUAL, ("visual", True): VISUAL_FP16,
             ("textual", False): TEXTUAL, ("textual", True): TEXTUAL_FP16}
    return folder / files[(part, fp16)]


def resolve(name: str) -> ClipFiles | None:
    folder = store.find(FAMILY, name)
    if folder is None:
        return None
    metadata = json.loads((folder / "preprocess.json").read_text(encoding="utf-8"))
    return ClipFiles(name, folder, metadata)


def available() -> list[ClipFiles]:
    """Every imported CLIP model whose files can be read (one that cannot is logged and left
    out: the other models still serve): cn-clip's architectures, and models imported from
    transformers' format under names of their own."""
    found = []
    names = [arch.served_name for arch in ARCHS.values()]
    names += sorted({name for name, _ in store.newest(FAMILY)} - set(names))
    for name in names:
        try:
            files = resolve(name)
        except (OSError, ValueError) as exc:  # a folder or its preprocess.json unreadable or damaged
            log.error("CLIP model %s is not served: its files cannot be read: %s: %s", name, type(exc).__name__, exc)
            continue
        if files is not None:
            found.append(files)
    return found
