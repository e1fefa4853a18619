"""A served process with everything MT Photos' routes use: the tiny Chinese-CLIP as ViT-B-16,
the fake ``buffalo_l`` pack, and the PP-OCRv5 mobile models that ship in a wheel."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import LIMITS
from tests.support.bento_server import BentoServer

#: Set through the reference's own variable name (API_AUTH_KEY), as MT Photos users do.
KEY = "mt-test-key"


@pytest.fixture(scope="session")
def mt_home(tmp_path_factory, tiny_clip, face_packs) -> Path:
    from tests.support.models_cli import models

    home = tmp_path_factory.mktemp("mt-home")
    checkpoint, config = tiny_clip
    for command in (("import", "clip", "ViT-B-16", "--from", str(checkpoint), "--config", str(config)),
                    ("import", "face", "buffalo_l", "--from", str(face_packs["buffalo_l"]))):
        run = models(home, *command)
        assert run.returncode == 0, run.stderr
    return home


@pytest.fixture(scope="session")
def mt_server(mt_home) -> Iterator[BentoServer]:
    server = BentoServer(".", mt_home, {**LIMITS, "API_AUTH_KEY": KEY}).start()
    try:
        yield server
    finally:
        server.stop()
