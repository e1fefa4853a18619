"""The image tests' shared fixtures: the image built once, Immich's requests, a models folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.docker_image import IMAGE, OCR_PREVIEW, build_image
from tests.support.fake_faces import faces_image
from tests.support.models_cli import models


@pytest.fixture(scope="session")
def image(tmp_path_factory) -> str:
    return build_image(tmp_path_factory.mktemp("image-home"), "bentofile.yaml", IMAGE)


@pytest.fixture(scope="session")
def requests(tmp_path_factory) -> list[tuple[dict, str, str]]:
    """Immich's three jobs: CLIP on an image and on a text, faces, OCR (default options)."""
    folder = tmp_path_factory.mktemp("image-requests")
    faces = folder / "faces.jpg"
    faces_image(1440, 1080, [(300, 300), (720, 600), (1150, 350)], 60, seed=1).save(faces, quality=90)
    clip = {"clip": {"visual": {"modelName": "cn-clip/ViT-B-16__openai"}}}
    return [
        (clip, "image", str(faces)),
        ({"clip": {"textual": {"modelName": "cn-clip/ViT-B-16__openai", "options": {"language": "zh-CN"}}}}, "text", "海边的日落"),
        ({"facial-recognition": {
            "detection": {"modelName": "buffalo_l", "options": {"minScore": 0.7}},
            "recognition": {"modelName": "buffalo_l"}}}, "image", str(faces)),
        ({"ocr": {"detection": {"modelName": "PP-OCRv5_mobile", "options": {"minScore": 0.5, "maxResolution": 736}},
                  "recognition": {"modelName": "PP-OCRv5_mobile", "options": {"minScore": 0.8}}}},
         "image", str(OCR_PREVIEW)),
    ]


@pytest.fixture(scope="session")
def cache(tmp_path_factory, tiny_clip, face_packs) -> Path:
    """A models folder filled on this machine by the import command (Chinese-CLIP needs torch,
    which the image does not carry), readable by the image's user."""
    cache = tmp_path_factory.mktemp("image-cache")
    env = {"MACHINE_LEARNING_CACHE_FOLDER": str(cache)}
    checkpoint, config = tiny_clip
    home = tmp_path_factory.mktemp("import-home")
    for args in (["clip", "ViT-B-16", "--from", str(checkpoint), "--config", str(config)],
                 ["face", "buffalo_l", "--from", str(face_packs["buffalo_l"])]):
        run = models(home, "import", *args, env=env)
        assert run.returncode == 0, run.stderr
    for path in [cache, *cache.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o755 if path.is_dir() else path.stat().st_mode | 0o644)
    return cache
