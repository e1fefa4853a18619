"""Shared fixtures: an upstream stand-in and real ``bentoml serve`` processes.

Servers are session-scoped (each start costs seconds) and every one has its own BENTOML_HOME.
Settings that tests depend on are small limits, so their cases stay cheap to build.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterator

import pytest
from PIL import Image

from tests.support.bento_server import BentoServer
from tests.support.ports import free_port
from tests.support.upstream_stub import UpstreamStub

# Limits the test servers run with (see the settings in README).
MAX_REQUEST_BYTES = 2_000_000
MAX_IMAGE_PIXELS = 4_000_000
MAX_IMAGE_SIDE = 4_000
UPSTREAM_TIMEOUT = 2.0

LIMITS = {
    # Enough image requests at once for the batching tests' concurrent requests to share passes
    # (the default, one per core, leaves two on CI's machine).
    "IMMICH_CN_ML_MAX_ACTIVE_REQUESTS": "16",
    "IMMICH_CN_ML_MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES),
    "IMMICH_CN_ML_MAX_IMAGE_PIXELS": str(MAX_IMAGE_PIXELS),
    "IMMICH_CN_ML_MAX_IMAGE_SIDE": str(MAX_IMAGE_SIDE),
    "IMMICH_CN_ML_UPSTREAM_TIMEOUT": str(UPSTREAM_TIMEOUT),
}


@pytest.fixture(scope="session")
def upstream_stub() -> Iterator[UpstreamStub]:
    stub = UpstreamStub().start()
    yield stub
    stub.stop()


@pytest.fixture
def upstream(upstream_stub: UpstreamStub) -> UpstreamStub:
    """The stand-in, with nothing recorded and its default Immich-shaped answer."""
    upstream_stub.reset()
    return upstream_stub


def _serve(tmp_path_factory: pytest.TempPathFactory, target: str, env: dict[str, str]) -> Iterator[BentoServer]:
    server = BentoServer(target, tmp_path_factory.mktemp("bentoml-home"), env).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def proxy_server(tmp_path_factory, upstream_stub) -> Iterator[BentoServer]:
    """The real service (``bentoml serve .``) in front of the upstream stand-in."""
    yield from _serve(tmp_path_factory, ".", {**LIMITS, "IMMICH_CN_ML_UPSTREAM_URL": upstream_stub.url})


@pytest.fixture(scope="session")
def lonely_server(tmp_path_factory) -> Iterator[BentoServer]:
    """The real service with no upstream set."""
    yield from _serve(tmp_path_factory, ".", dict(LIMITS))


@pytest.fixture(scope="session")
def dead_upstream_server(tmp_path_factory) -> Iterator[BentoServer]:
    """The real service whose upstream refuses connections (nothing listens on that port)."""
    yield from _serve(tmp_path_factory, ".", {**LIMITS, "IMMICH_CN_ML_UPSTREAM_URL": f"http://127.0.0.1:{free_port()}"})


@pytest.fixture(scope="session")
def seam_server(tmp_path_factory, upstream_stub) -> Iterator[BentoServer]:
    """The real app with a fake local face runner registered, in front of the stand-in."""
    env = {
        **LIMITS,
        "IMMICH_CN_ML_UPSTREAM_URL": upstream_stub.url,
        "IMMICH_CN_ML_MODEL_ALIASES": '{"faces-by-another-name": "fake-faces"}',
    }
    yield from _serve(tmp_path_factory, "tests.support.fake_service:FakeEntry", env)


def encode(image: Image.Image, fmt: str = "JPEG", **params) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


@pytest.fixture(scope="session")
def preview_jpeg() -> bytes:
    """A preview-like JPEG: 1440x1080, quality 80, as Immich sends."""
    image = Image.linear_gradient("L").resize((1440, 1080)).convert("RGB")
    return encode(image, quality=80)


@pytest.fixture(scope="session")
def preview_path(tmp_path_factory, preview_jpeg: bytes) -> Path:
    path = tmp_path_factory.mktemp("images") / "preview.jpeg"
    path.write_bytes(preview_jpeg)
    return path


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, config) of a small random Chinese-CLIP (see tests/support/tiny_clip.py)."""
    from tests.support.tiny_clip import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def clip_home(tmp_path_factory, tiny_clip) -> Path:
    """A BENTOML_HOME holding the tiny model, imported by the real command as ViT-B-16."""
    from tests.support.models_cli import models

    home = tmp_path_factory.mktemp("clip-home")
    checkpoint, config = tiny_clip
    run = models(home, "import", "clip", "ViT-B-16", "--from", str(checkpoint), "--config", str(config))
    assert run.returncode == 0, run.stderr
    return home


@pytest.fixture(scope="session")
def clip_server(tmp_path_factory, clip_home, upstream_stub) -> Iterator[BentoServer]:
    """The real service with the tiny Chinese-CLIP imported, in front of the upstream stand-in."""
    server = BentoServer(".", clip_home, {**LIMITS, "IMMICH_CN_ML_UPSTREAM_URL": upstream_stub.url}).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def face_packs(tmp_path_factory) -> dict[str, Path]:
    """Two fake InsightFace packs (tests/support/fake_faces.py), as a user would have them:
    ``buffalo_l`` as a folder, its detector able to take a batch; ``antelopev2`` as a zip
    with its files one folder down (as the real one has them), its detector one image at a
    time. Values are the folders of the original files; ``antelopev2.zip`` lies beside them."""
    import zipfile

    from tests.support.fake_faces import build_detector, build_pack, build_recognizer

    root = tmp_path_factory.mktemp("face-packs")
    buffalo = build_pack(root / "buffalo_l")
    antelope = root / "antelopev2"
    antelope.mkdir()
    build_detector(antelope / "scrfd_10g_bnkps.onnx", batched=True, fixed_batch_reshape=True)
    build_recognizer(antelope / "glintr100.onnx", seed=1)
    with zipfile.ZipFile(root / "antelopev2.zip", "w") as archive:
        for path in sorted(antelope.iterdir()):
            archive.write(path, f"antelopev2/{path.name}")
    return {"buffalo_l": buffalo, "antelopev2": antelope}


@pytest.fixture(scope="session")
def face_home(tmp_path_factory, face_packs) -> Path:
    """A BENTOML_HOME with both fake packs imported by the real command."""
    from tests.support.models_cli import models

    home = tmp_path_factory.mktemp("face-home")
    for name, source in (("buffalo_l", face_packs["buffalo_l"]),
                         ("antelopev2", face_packs["antelopev2"].with_suffix(".zip"))):
        run = models(home, "import", "face", name, "--from", str(source))
        assert run.returncode == 0, run.stderr
    return home


@pytest.fixture(scope="session")
def face_server(face_home, upstream_stub) -> Iterator[BentoServer]:
    """The real service with both fake packs imported, in front of the upstream stand-in.
    Recognition passes hold at most 8 faces, so an image with more is split across passes."""
    env = {**LIMITS, "IMMICH_CN_ML_UPSTREAM_URL": upstream_stub.url, "IMMICH_CN_ML_FACE_MAX_BATCH_SIZE": "8"}
    server = BentoServer(".", face_home, env).start()
    try:
        yield server
    finally:
        server.stop()


def _with_clip_and_faces(home: Path, tiny_clip: tuple[Path, Path], face_packs: dict[str, Path]) -> Path:
    """``home`` with the tiny Chinese-CLIP imported as ViT-B-16 and the fake ``buffalo_l`` pack,
    by the real import command."""
    from tests.support.models_cli import models

    checkpoint, config = tiny_clip
    for command in (("import", "clip", "ViT-B-16", "--from", str(checkpoint), "--config", str(config)),
                    ("import", "face", "buffalo_l", "--from", str(face_packs["buffalo_l"]))):
        run = models(home, *command)
        assert run.returncode == 0, run.stderr
    return home


#: The hardening server's upstream password, which must appear in no answer and no log line.
UPSTREAM_PASSWORD = "s3cret-pw"
#: Its ceilings, small enough for tests to reach.
HARDENING_IN_FLIGHT = 3
HARDENING_MAX_FACES = 5


@pytest.fixture(scope="session")
def hardening_home(tmp_path_factory, tiny_clip, face_packs) -> Path:
    """A BENTOML_HOME with the fake ``buffalo_l`` pack and a Chinese-CLIP whose files were
    damaged after the import (its preprocess.json is no longer JSON)."""
    home = _with_clip_and_faces(tmp_path_factory.mktemp("hardening-home"), tiny_clip, face_packs)
    [preprocess] = home.rglob("preprocess.json")
    # As long as the file was: a shorter one would be an import cut short, which the store skips
    # (tests/runners/models/test_store.py); this one must reach the service's own check.
    preprocess.write_text("{ damaged".ljust(preprocess.stat().st_size), encoding="utf-8")
    return home


@pytest.fixture(scope="session")
def hardening_server(hardening_home) -> Iterator[BentoServer]:
    """The real service with small ceilings (requests in flight, faces per image), a damaged
    CLIP model, and an upstream whose URL carries credentials (nothing listens there)."""
    env = {
        **LIMITS,
        "IMMICH_CN_ML_MAX_REQUESTS_IN_FLIGHT": str(HARDENING_IN_FLIGHT),
        "IMMICH_CN_ML_MAX_FACES": str(HARDENING_MAX_FACES),
        "IMMICH_CN_ML_UPSTREAM_URL": f"http://immich:{UPSTREAM_PASSWORD}@127.0.0.1:{free_port()}",
    }
    server = BentoServer(".", hardening_home, env).start()
    try:
        yield server
    finally:
        server.stop()


#: MT Photos' key on ``mt_server``, set through the reference's own variable name (API_AUTH_KEY),
#: as MT Photos users do.
MT_KEY = "mt-test-key"
#: ``mt_server``'s MODEL_TTL, which bounds how long MT's /restart lets a model idle before it
#: unloads it. The runner's own idle check runs hourly, so only /restart unloads in the tests.
MT_MODEL_TTL = 5.0


@pytest.fixture(scope="session")
def mt_home(tmp_path_factory, tiny_clip, face_packs) -> Path:
    """Everything MT Photos' routes use: the tiny Chinese-CLIP as ViT-B-16 and the fake
    ``buffalo_l`` pack (the PP-OCRv5 mobile models ship in a wheel)."""
    return _with_clip_and_faces(tmp_path_factory.mktemp("mt-home"), tiny_clip, face_packs)


@pytest.fixture(scope="session")
def mt_server(mt_home) -> Iterator[BentoServer]:
    """The real service with every model MT Photos' routes use (and Immich's routes beside)."""
    env = {**LIMITS, "API_AUTH_KEY": MT_KEY, "MACHINE_LEARNING_MODEL_TTL": str(MT_MODEL_TTL),
           "MACHINE_LEARNING_MODEL_TTL_POLL_S": "3600"}
    server = BentoServer(".", mt_home, env).start()
    try:
        yield server
    finally:
        server.stop()
