"""Import a Chinese-CLIP model in Hugging Face transformers' format: a ``ChineseCLIPModel`` folder
(``config.json`` with ``model_type: chinese_clip``, weights in safetensors or a PyTorch bin,
``vocab.txt``, and usually ``preprocessor_config.json``), as OFA-Sys publishes
``chinese-clip-vit-*`` and TencentARC publishes QA-CLIP.

Its towers are exported to ONNX like cn-clip's (``clip_export.export_towers``): the image tower
is ``get_image_features``, the text tower ``get_text_features`` with the attention mask
transformers' tokenizer would give (every token that is not padding). The image
pre-processing is read from the folder's processor config (squeeze into the square, or shortest
side then centre crop) and served as transformers' processor does it.

Immich sizes its vector column by the part of the model name after the last "/", which must be
one of its own CLIP names: the model is stored as ``<name>/<the Immich name of its
architecture>``, e.g. ``qa-clip/ViT-B-16__openai`` (512 dimensions); ``<name>`` is ``--name``,
else the folder's name.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from runners.clip_steps import SHORTEST_EDGE, SQUARE, Tokenizer
from runners.models.clip import ARCHS, CONTEXT_LENGTH, MEAN, STD
from runners.models.clip_export import ClipImportError, export_towers, save_clip

#: (image size, patch size, width, layers) of each vision tower -> cn-clip's architecture name.
VISION_ARCHS = {(224, 16, 768, 12): "ViT-B-16", (224, 14, 1024, 24): "ViT-L-14", (336, 14, 1024, 24): "ViT-L-14-336",
                (224, 14, 1280, 32): "ViT-H-14"}


def is_transformers_folder(path: Path) -> bool:
    """Whether ``path`` is a transformers ChineseCLIPModel folder."""
    config = path / "config.json"
    if not path.is_dir() or not config.is_file():
        return False
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("model_type") == "chinese_clip"
    except ValueError:
        return False


def served_name(name: str, arch: str) -> str:
    """``<name>/<Immich's name for the architecture>``; a full name is kept if its last part is
    the architecture's."""
    immich = ARCHS[arch].served_name.rsplit("/", 1)[-1]
    if "/" in name:
        if name.rsplit("/", 1)[-1] != immich:
            raise ClipImportError(f"{name!r} must end in /{immich}: Immich sizes the vectors of a {arch} "
                                  f"({ARCHS[arch].dim} dimensions) by that name")
        return name
    prefix = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    if not prefix:
        raise ClipImportError(f"{name!r} gives no usable name; choose one with --name")
    return f"{prefix}/{immich}"


def import_transformers_clip(folder: Path, name: str | None = None, arch: str | None = None) -> str:
    """Import the ChineseCLIPModel in ``folder``; return the store tag. ``arch``: cn-clip's name
    for its architecture, when the vision tower's shape does not tell it (a model of another
    size with the same vector size), or to check that it does."""
    try:
        import torch
        from transformers import ChineseCLIPModel
    except ImportError as exc:
        raise ClipImportError(f"importing a transformers model needs torch and transformers ({exc}); install the "
                              "export extra: pip install -e '.[export]'") from exc
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    arch = _arch(config, arch)
    vocab = folder / "vocab.txt"
    if not vocab.is_file():
        raise ClipImportError(f"{folder} has no vocab.txt (the text tower's vocabulary)")
    preprocess = _preprocessing(folder, config, arch)
    try:
        model = ChineseCLIPModel.from_pretrained(str(folder)).float().eval()
    except (OSError, ValueError, RuntimeError) as exc:
        raise ClipImportError(f"{folder} could not be loaded as a ChineseCLIPModel: {str(exc)[:400]}") from exc
    size = preprocess["image_size"]
    pad = int(config.get("text_config", {}).get("pad_token_id", 0) or 0)
    tokenizer = Tokenizer(vocab)
    samples = ["海边的日落", "a photo of a cat", "北京 Beijing 2026 🌅", "", "猫" * 60]
    towers = {
        "visual": (_tower(model, "visual", pad), torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0)),
                   "pixel_values"),
        "textual": (_tower(model, "textual", pad), torch.from_numpy(np.stack([tokenizer(t) for t in samples])),
                    "input_ids"),
    }
    served = served_name(name or folder.resolve().name, arch)
    with tempfile.TemporaryDirectory() as tmp:
        files, checks = export_towers(towers, Path(tmp))
        metadata = {"name": served, "arch": arch, "format": "transformers", "source": str(folder.resolve()), **checks}
        return save_clip(served, files, preprocess, vocab, metadata, Path(tmp))


def _tower(model: Any, part: str, pad: int) -> Any:
    """One tower as a torch module of its own (made on use: torch is imported only to import)."""
    import torch

    class Tower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: Any) -> Any:
            if part == "visual":
                out = self.model.get_image_features(pixel_values=x)
            else:  # the mask transformers' tokenizer gives: every token but the padding
                out = self.model.get_text_features(input_ids=x, attention_mask=(x != pad).long(),
                                                   token_type_ids=torch.zeros_like(x))
            return out if isinstance(out, torch.Tensor) else out.pooler_output  # transformers 5 wraps it

    return Tower().eval()


def _arch(config: dict[str, Any], declared: str | None) -> str:
    vision = config.get("vision_config", {})
    key = (vision.get("image_size", 224), vision.get("patch_size", 32), vision.get("hidden_size", 768),
           vision.get("num_hidden_layers", 12))
    found = VISION_ARCHS.get(key)
    if declared is not None and declared not in ARCHS:
        raise ClipImportError(f"unknown Chinese-CLIP architecture {declared!r}; known: {', '.join(ARCHS)}")
    if found is not None and declared is not None and found != declared:
        raise ClipImportError(f"the folder holds a {found}, not a {declared}")
    arch = found or declared
    if arch is None:
        raise ClipImportError(
            f"the vision tower (image {key[0]}, patch {key[1]}, width {key[2]}, {key[3]} layers) is none of "
            f"{', '.join(VISION_ARCHS.values())}; name the architecture whose Immich name and vector size it "
            "should take: import clip ARCH --from FOLDER")
    dim = config.get("projection_dim", 512)
    if dim != ARCHS[arch].dim:
        raise ClipImportError(f"a {arch} gives {ARCHS[arch].dim} dimensions in Immich; this model projects to {dim}")
    return arch


def _preprocessing(folder: Path, config: dict[str, Any], arch: str) -> dict[str, Any]:
    """The image pre-processing the folder's processor config says (transformers' defaults when
    it has none), as preprocess.json keeps it."""
    path = folder / "preprocessor_config.json"
    processor = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    side = int(config.get("vision_config", {}).get("image_size", 224))
    size = processor.get("size", {"shortest_edge": side})
    if isinstance(size, int):
        size = {"shortest_edge": size}
    if "height" in size and "width" in size:
        if size["height"] != size["width"] or size["height"] != side:
            raise ClipImportError(f"the processor resizes to {size['width']}x{size['height']}; the tower reads {side}x{side}")
        resize = SQUARE
    else:
        crop = processor.get("crop_size", side)
        crop = crop if isinstance(crop, int) else crop.get("height", side)
        if size.get("shortest_edge") != side or crop != side or not processor.get("do_center_crop", True):
            raise ClipImportError(f"the processor's resize {size} and crop {crop} do not give the tower's {side}x{side}")
        resize = SHORTEST_EDGE
    for key, want in (("image_mean", MEAN), ("image_std", STD)):
        got = processor.get(key, list(want))
        if any(abs(a - b) > 1e-6 for a, b in zip(got, want)) or len(got) != 3:
            raise ClipImportError(f"the processor's {key} {got} is not CLIP's {list(want)}, which serving uses")
    if processor.get("resample", 3) != 3:
        raise ClipImportError(f"the processor resamples with {processor['resample']}, not bicubic (3)")
    return {"arch": arch, "embed_dim": ARCHS[arch].dim, "image_size": side, "mean": MEAN, "std": STD,
            "context_length": CONTEXT_LENGTH, "interpolation": "bicubic", "resize_mode": resize,
            "resize": "square, then RGB" if resize == SQUARE else "RGB, shortest side, then centre crop"}
