"""Import a Chinese-CLIP checkpoint: load it with cn-clip, export both towers to ONNX, check
the export against torch, and store it. This is the only code that needs torch and cn-clip
(the ``export`` extra); serving reads what it stores.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from config.settings import get_settings
from runners.models import store
from runners.models.clip import (
    ARCHS, CONTEXT_LENGTH, FAMILY, MEAN, STD, TEXTUAL, TEXTUAL_FP16, VISUAL, VISUAL_FP16, VOCAB,
)
from runners.models import sources
from runners.models.download import download

log = logging.getLogger(__name__)

# An fp32 export must give torch's features to within this (absolute, on features whose
# scale is a few units); fp16 towers must point the same way to within this cosine.
MAX_ABS_DIFF = 1e-3
MIN_FP16_COSINE = 0.999
OPSET = 17


class ClipImportError(ValueError):
    """A checkpoint that cannot be imported, with the reason for the user."""


def import_clip(arch: str, checkpoint: Path | None, config: Path | None = None, source: str | None = None) -> str:
    """Import ``arch`` from ``checkpoint`` (downloaded from ``source`` when None: Hugging Face
    or ModelScope, ``IMMICH_CN_ML_MODEL_SOURCE`` by default); return the store tag."""
    if arch not in ARCHS:
        raise ClipImportError(f"unknown Chinese-CLIP architecture {arch!r}; known: {', '.join(ARCHS)}")
    try:
        import torch  # noqa: F401  (only to fail early, with the fix, when it is missing)
        from cn_clip.clip import utils as cn_utils
    except ImportError as exc:
        raise ClipImportError(
            f"importing a CLIP model needs torch and cn-clip ({exc}); install the export extra: "
            "pip install -e '.[export]'"
        ) from exc

    with tempfile.TemporaryDirectory() as tmp:
        if checkpoint is None:
            repo, filename = cn_utils._MODELS[arch]
            remote = sources.clip_checkpoint(repo, filename, source or get_settings().model_source)
            checkpoint = download(remote, Path(tmp) / filename)
        info = _model_info(arch, config, cn_utils)
        model = _load(checkpoint, info)
        return _export_and_store(arch, model, info, checkpoint, Path(tmp))


def _model_info(arch: str, config: Path | None, cn_utils: Any) -> dict[str, Any]:
    """cn-clip's configuration of ``arch`` (vision JSON + text JSON), or the given one."""
    if config is not None:
        info = json.loads(config.read_text(encoding="utf-8"))
    else:
        vision, text = cn_utils._MODEL_INFO[arch]["struct"].split("@")
        folder = Path(cn_utils.__file__).parent / "model_configs"
        info = {**json.loads((folder / f"{vision}.json").read_text()), **json.loads((folder / f"{text}.json").read_text())}
    if isinstance(info.get("vision_layers"), str):  # RN50 writes "[3,4,6,3]"
        info["vision_layers"] = json.loads(info["vision_layers"])
    if info["embed_dim"] != ARCHS[arch].dim:
        raise ClipImportError(
            f"{arch} is served as {ARCHS[arch].served_name}, which Immich sizes at {ARCHS[arch].dim} dimensions; "
            f"this configuration has embed_dim {info['embed_dim']}"
        )
    return info


def _load(checkpoint: Path, info: dict[str, Any]) -> Any:
    """Build the model as cn-clip's create_model does (weights through fp16, then fp32)."""
    import torch
    from cn_clip.clip.model import CLIP, convert_weights

    try:
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ClipImportError(f"{checkpoint} is not a readable torch checkpoint: {exc}") from exc
    if not isinstance(saved, dict) or "state_dict" not in saved:
        raise ClipImportError(f"{checkpoint} is not a cn-clip checkpoint (a dict with 'state_dict')")
    state = {k.removeprefix("module."): v for k, v in saved["state_dict"].items()}
    state = {k: v for k, v in state.items() if not k.startswith("bert.pooler")}

    model = CLIP(**info)
    convert_weights(model)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ClipImportError(f"{checkpoint} does not fit this architecture: {str(exc)[:500]}") from exc
    return model.float().eval()


def _export_and_store(arch: str, model: Any, info: dict[str, Any], checkpoint: Path, tmp: Path) -> str:
    import cn_clip.clip as cn_clip
    import torch

    size = int(info["image_resolution"])
    towers = {
        "visual": (_tower(model, "visual"), torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0)),
                   "pixel_values"),
        "textual": (_tower(model, "textual"), _sample_tokens(cn_clip), "input_ids"),
    }
    files, checks = export_towers(towers, tmp)
    preprocess = {"arch": arch, "embed_dim": int(info["embed_dim"]), "image_size": size, "mean": MEAN, "std": STD,
                  "context_length": CONTEXT_LENGTH, "interpolation": "bicubic", "resize": "square, then RGB"}
    metadata = {"name": ARCHS[arch].served_name, "arch": arch, "checkpoint": str(checkpoint.name), **checks}
    return save_clip(ARCHS[arch].served_name, files, preprocess, Path(cn_clip.__file__).parent / "vocab.txt",
                     metadata, tmp)


def export_towers(towers: dict[str, tuple[Any, Any, str]], tmp: Path) -> tuple[dict[str, Path], dict[str, float]]:
    """Export each tower (``part`` -> (torch module, sample input, input name)) to ONNX, fp32 and
    fp16, and check both against torch on the sample; the files by their names in the store,
    and the checks' figures."""
    import torch

    files: dict[str, Path] = {}
    checks: dict[str, float] = {}
    for part, (tower, sample, input_name) in towers.items():
        fp32, fp16 = tmp / f"{part}.onnx", tmp / f"{part}.fp16.onnx"
        exported = tmp / "export" / part / f"{part}.onnx"
        exported.parent.mkdir(parents=True)
        with torch.no_grad():
            torch.onnx.export(
                tower, (sample,), str(exported), input_names=[input_name], output_names=["features"],
                dynamic_axes={input_name: {0: "batch"}, "features": {0: "batch"}},
                opset_version=OPSET, dynamo=False,
            )
            reference = tower(sample).numpy()
        _save_with_weights_beside(exported, fp32)
        _to_fp16(fp32, fp16, tmp)
        checks[f"{part}_max_abs_diff"] = _check(fp32, fp16, input_name, sample.numpy(), reference)
        for path, name in ((fp32, {"visual": VISUAL, "textual": TEXTUAL}[part]),
                           (fp16, {"visual": VISUAL_FP16, "textual": TEXTUAL_FP16}[part])):
            files[name] = path
            files[name + ".data"] = path.with_name(path.name + ".data")
    return files, checks


def save_clip(served_name: str, files: dict[str, Path], preprocess: dict[str, Any], vocab: Path,
              metadata: dict[str, Any], tmp: Path) -> str:
    """Store the towers with their pre-processing and vocabulary under ``served_name``."""
    path = tmp / "preprocess.json"
    path.write_text(json.dumps(preprocess, indent=2), encoding="utf-8")
    return store.save(FAMILY, served_name, {**files, "preprocess.json": path, VOCAB: vocab}, metadata)


def _tower(model: Any, part: str) -> Any:
    """One encoder as a torch module of its own, so each tower exports alone."""
    import torch

    class Tower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: Any) -> Any:
            return self.model.encode_image(x) if part == "visual" else self.model.encode_text(x)

    return Tower().eval()


def _sample_tokens(cn_clip: Any) -> Any:
    texts = ["海边的日落", "a photo of a cat", "北京 Beijing 2026 🌅", "", "猫" * 60]
    return cn_clip.tokenize(texts, context_length=CONTEXT_LENGTH)


def _save_with_weights_beside(source: Path, dest: Path) -> None:
    """Re-save a model with all its weights in one ``<name>.data`` file beside it.

    Protobuf caps a file at 2 GB, so torch writes a larger model (ViT-H-14's image tower) as
    hundreds of weight files; one layout for every size keeps the store simple.
    """
    import onnx

    model = onnx.load(str(source))  # pulls in any weight files torch wrote beside it
    onnx.save_model(model, str(dest), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=f"{dest.name}.data", size_threshold=1024)


def _to_fp16(fp32: Path, fp16: Path, tmp: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    # Shape inference from the file, not in memory: a model over 2 GB cannot be serialised
    # whole, which in-memory inference needs.
    inferred = tmp / f"{fp32.stem}.inferred.onnx"
    onnx.shape_inference.infer_shapes_path(str(fp32), str(inferred))
    # Inputs and outputs stay fp32, so callers do not care which file runs.
    half = convert_float_to_float16(onnx.load(str(inferred)), keep_io_types=True, disable_shape_infer=True)
    onnx.save_model(half, str(fp16), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=f"{fp16.name}.data", size_threshold=1024)


def _check(fp32: Path, fp16: Path, input_name: str, sample: np.ndarray, reference: np.ndarray) -> float:
    import onnxruntime as ort

    got = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run(None, {input_name: sample})[0]
    diff = float(np.abs(got - reference).max())
    if not diff <= MAX_ABS_DIFF:
        raise ClipImportError(f"{fp32.name} differs from torch by {diff:.2e} (bound {MAX_ABS_DIFF:.0e}); not stored")
    half = ort.InferenceSession(str(fp16), providers=["CPUExecutionProvider"]).run(None, {input_name: sample})[0]
    cosine = (half * reference).sum(1) / (np.linalg.norm(half, axis=1) * np.linalg.norm(reference, axis=1) + 1e-12)
    if not cosine.min() >= MIN_FP16_COSINE:
        raise ClipImportError(f"{fp16.name} drifts from torch (cosine {cosine.min():.5f}); not stored")
    log.info("%s matches torch: max abs diff %.2e, fp16 cosine >= %.5f", fp32.name, diff, cosine.min())
    return diff
