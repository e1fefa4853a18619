"""runners/models/hints.py: the import command for a model a request names."""

from __future__ import annotations

import pytest

from runners.models.hints import import_command


@pytest.mark.parametrize(("task", "name", "command"), [
    ("clip", "cn-clip/ViT-B-16__openai", "python -m runners.models import clip ViT-B-16"),
    ("clip", "cn-clip/ViT-L-14-336::openai", "python -m runners.models import clip ViT-L-14-336"),
    ("facial-recognition", "antelopev2", "python -m runners.models import face antelopev2"),
    ("ocr", "PP-OCRv5_server", "python -m runners.models import ocr PP-OCRv5_server"),
    ("clip", "ViT-B-32__openai", None),  # stock OpenCLIP: the upstream's
    ("ocr", "PP-OCRv4_unknown", None),
    ("speech", "buffalo_l", None),
])
def test_known_models_name_their_import_command(task, name, command):
    assert import_command(task, name) == command
