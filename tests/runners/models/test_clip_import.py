"""``python -m runners.models import clip``: export, checks, store, and its refusals."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import yaml

from runners.models.clip import ARCHS, resolve
from tests.support.models_cli import models, offline_import
from tests.support.tiny_clip import TINY_CONFIG, load_reference, write_tiny_checkpoint


def test_imported_towers_match_torch_and_carry_what_serving_needs(clip_home, tiny_clip):
    folder = next((clip_home / "models" / "clip-cn-clip-vit-b-16__openai").glob("*/"))
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["model.yaml", "preprocess.json",
                     "textual.fp16.onnx", "textual.fp16.onnx.data", "textual.onnx", "textual.onnx.data",
                     "visual.fp16.onnx", "visual.fp16.onnx.data", "visual.onnx", "visual.onnx.data", "vocab.txt"]
    preprocess = json.loads((folder / "preprocess.json").read_text())
    assert preprocess["image_size"] == 224 and preprocess["embed_dim"] == 512 and preprocess["context_length"] == 52
    metadata = yaml.safe_load((folder / "model.yaml").read_text())["metadata"]
    assert metadata["visual_max_abs_diff"] <= 1e-3 and metadata["textual_max_abs_diff"] <= 1e-3

    # A dynamic batch axis: any batch size runs, and each row is its own input's features.
    import torch

    model = load_reference(*tiny_clip)
    images = torch.randn(3, 3, 224, 224)
    session = ort.InferenceSession(str(folder / "visual.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model.encode_image(images).numpy()
    assert np.abs(session.run(None, {"pixel_values": images.numpy()})[0] - expected).max() < 1e-4
    fp16 = ort.InferenceSession(str(folder / "visual.fp16.onnx"), providers=["CPUExecutionProvider"])
    assert fp16.get_inputs()[0].type == "tensor(float)"  # fp16 inside, fp32 at the edges
    assert fp16.run(None, {"pixel_values": images.numpy()[:1]})[0].shape == (1, 512)


def test_checkpoint_without_module_prefix_imports_too(tmp_path):
    checkpoint, config = write_tiny_checkpoint(tmp_path / "plain", seed=3, module_prefix=False)
    run = models(tmp_path / "home", "import", "clip", "ViT-B-16", "--from", str(checkpoint), "--config", str(config))
    assert run.returncode == 0, run.stderr
    assert "clip-cn-clip-vit-b-16__openai:" in run.stdout


def test_offline_download_fails_fast_and_says_what_to_do(tmp_path):
    run, seconds = offline_import(tmp_path, "clip", "ViT-B-16")
    assert seconds < 30
    assert run.returncode == 1
    assert "could not download https://huggingface.co/OFA-Sys/chinese-clip-vit-base-patch16/" in run.stderr
    assert "--from FILE" in run.stderr and "Traceback" not in run.stderr


def test_unknown_architecture_is_refused(tmp_path):
    run = models(tmp_path, "import", "clip", "ViT-G-99")
    assert run.returncode == 1 and "known: ViT-B-16" in run.stderr


def test_dimension_that_immich_would_not_accept_is_refused(tmp_path, tiny_clip):
    checkpoint, _ = tiny_clip
    config = tmp_path / "wide.json"
    config.write_text(json.dumps({**TINY_CONFIG, "embed_dim": 768}))
    run = models(tmp_path, "import", "clip", "ViT-B-16", "--from", str(checkpoint), "--config", str(config))
    assert run.returncode == 1 and "512 dimensions" in run.stderr


def test_checkpoint_of_another_shape_is_refused(tmp_path, tiny_clip):
    checkpoint, _ = tiny_clip
    run = models(tmp_path, "import", "clip", "RN50", "--from", str(checkpoint))  # RN50's own config
    assert run.returncode == 1 and "does not fit this architecture" in run.stderr


def test_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    run = models(tmp_path, "import", "clip", "ViT-B-16", "--from", str(junk))
    assert run.returncode == 1 and "not a readable torch checkpoint" in run.stderr


@pytest.mark.parametrize("arch", list(ARCHS))
def test_every_architecture_is_served_under_an_immich_name_of_its_size(arch):
    served = ARCHS[arch].served_name
    assert served.startswith("cn-clip/")
    immich_name = served.split("/")[-1]
    sizes = {"ViT-B-16__openai": 512, "ViT-L-14__openai": 768, "ViT-L-14-336__openai": 768,
             "ViT-H-14__laion2b-s32b-b79k": 1024, "RN50__openai": 1024}
    assert sizes[immich_name] == ARCHS[arch].dim
    assert resolve(served) is None or resolve(served).dim == ARCHS[arch].dim
