"""Chinese-CLIP in transformers' format (ChineseCLIPModel folders: OFA-Sys, QA-CLIP): the
pre-processing as its processor does it, the import, and its answers over HTTP against
transformers' own get_image_features / get_text_features."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from runners.clip_steps import SHORTEST_EDGE, SQUARE, image_input
from runners.models.clip_export import ClipImportError
from runners.models.clip_transformers import is_transformers_folder, served_name
from tests.adapters.test_clip import TEXTS, cosine, embed_image, embed_text, images, vector
from tests.conftest import LIMITS
from tests.support import tiny_hf_clip
from tests.support.bento_server import BentoServer
from tests.support.models_cli import models

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    return tiny_hf_clip.write_tiny_hf_clip(tmp_path_factory.mktemp("hf") / "QA-CLIP-test")


@pytest.mark.parametrize("processor", ["squeeze", "shortest edge"])
@pytest.mark.parametrize("size", [(1440, 1080), (300, 800), (224, 224), (500, 231)])
def test_pre_processing_is_transformers_processors(tmp_path, processor, size):
    # Its Pillow processor (transformers 4's only one; 5 also has a torchvision one, whose
    # antialiased resize differs from Pillow's by a few 8-bit levels: the embeddings over HTTP
    # below are held against that default).
    try:
        from transformers.models.chinese_clip.image_processing_pil_chinese_clip import (
            ChineseCLIPImageProcessorPil as Processor,
        )
    except ImportError:  # transformers 4
        from transformers import ChineseCLIPImageProcessor as Processor

    config = tiny_hf_clip.SQUEEZE if processor == "squeeze" else tiny_hf_clip.SHORTEST_EDGE
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(config))
    want = Processor.from_pretrained(str(tmp_path))
    image = Image.effect_noise(size, 50).convert("RGB")
    expected = want(images=image, return_tensors="np")["pixel_values"][0]
    got = image_input(image, 224, SQUARE if processor == "squeeze" else SHORTEST_EDGE)
    assert got.shape == expected.shape == (3, 224, 224)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_the_name_ends_in_immichs_name_for_the_architecture():
    assert served_name("QA-CLIP ViT B 16", "ViT-B-16") == "QA-CLIP-ViT-B-16/ViT-B-16__openai"
    assert served_name("qa-clip/ViT-L-14__openai", "ViT-L-14") == "qa-clip/ViT-L-14__openai"
    with pytest.raises(ClipImportError, match="must end in /ViT-B-16__openai"):
        served_name("qa-clip/QA-CLIP-ViT-B-16", "ViT-B-16")


def test_the_folder_is_told_apart_from_a_cn_clip_checkpoint(hf_folder, tiny_clip):
    assert is_transformers_folder(hf_folder)
    assert not is_transformers_folder(tiny_clip[0]) and not is_transformers_folder(tiny_clip[0].parent)


def test_a_vision_tower_of_no_known_size_needs_its_architecture_named(hf_folder, tmp_path):
    run = models(tmp_path, "import", "clip", "--from", str(hf_folder))
    assert run.returncode == 1 and "import clip ARCH --from FOLDER" in run.stderr and "Traceback" not in run.stderr
    run = models(tmp_path, "import", "clip", "ViT-L-14", "--from", str(hf_folder))
    assert run.returncode == 1 and "768" in run.stderr  # a ViT-L-14 gives 768 dimensions; this model 512


@pytest.fixture(scope="module")
def hf_server(tmp_path_factory, hf_folder):
    home = tmp_path_factory.mktemp("hf-home")
    run = models(home, "import", "clip", "ViT-B-16", "--from", str(hf_folder), "--name", "qa-clip")
    assert run.returncode == 0, run.stderr
    assert "qa-clip/ViT-B-16__openai" in models(home, "list").stdout
    server = BentoServer(".", home, dict(LIMITS)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def hf_reference(hf_folder):
    return tiny_hf_clip.reference(hf_folder)


@pytest.mark.parametrize("name", list(images()))
def test_image_embeddings_are_transformers_get_image_features(hf_server, hf_reference, name):
    data = images()[name]
    assert cosine(vector(embed_image(hf_server, data, model="qa-clip/ViT-B-16__openai")), hf_reference[0](data)) >= 0.9999


def test_text_embeddings_are_transformers_get_text_features(hf_server, hf_reference):
    for text in TEXTS:
        got = vector(embed_text(hf_server, text, model="qa-clip/ViT-B-16__openai"))
        assert cosine(got, hf_reference[1](text)) >= 0.9999, text
