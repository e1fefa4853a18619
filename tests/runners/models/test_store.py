"""runners/models/store.py: what an import killed while BentoML copied it into the store leaves
(a version without model.yaml, or with a file cut short) is skipped, and the model's older
version is served; BentoML's ``latest`` pointer, which a full disk can empty, is not needed."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from config.settings import get_settings
from runners.models import store


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MACHINE_LEARNING_CACHE_FOLDER", str(tmp_path / "cache"))
    get_settings.cache_clear()
    yield tmp_path / "cache"
    get_settings.cache_clear()


def _two_versions(tmp_path: Path) -> tuple[str, str]:
    source = tmp_path / "weights.bin"
    source.write_bytes(b"w" * 5000)
    older = store.save("ocr", "Tiny", {"det.onnx": source}, {"name": "Tiny"})
    newer = store.save("ocr", "Tiny", {"det.onnx": source}, {"name": "Tiny"})
    assert str(store.get("ocr", "Tiny").tag) == newer
    return older, newer


def _folder(cache: Path, tag: str) -> Path:
    name, version = tag.split(":")
    return cache / name / version


@pytest.mark.parametrize("damage", ["a file cut short", "no model.yaml", "a file missing"])
def test_a_half_copied_version_is_skipped_and_the_older_one_served(cache, tmp_path, caplog, damage):
    older, newer = _two_versions(tmp_path)
    folder = _folder(cache, newer)
    if damage == "a file cut short":
        (folder / "det.onnx").write_bytes(b"w" * 100)
    elif damage == "no model.yaml":
        (folder / "model.yaml").unlink()
    else:
        (folder / "det.onnx").unlink()
    with caplog.at_level(logging.WARNING, logger="runners.models.store"):
        assert str(store.get("ocr", "Tiny").tag) == older
        assert ("Tiny", older) in store.newest("ocr") and ("Tiny", newer) not in store.newest("ocr")
        store.get("ocr", "Tiny")
    warnings = [r.getMessage() for r in caplog.records if "incomplete import" in r.getMessage()]
    assert len(warnings) == 1 and str(folder) in warnings[0]  # said once, naming the folder


def test_an_emptied_latest_pointer_does_not_hide_the_model(cache, tmp_path):
    _, newer = _two_versions(tmp_path)
    (cache / newer.split(":")[0] / "latest").write_text("")
    assert str(store.get("ocr", "Tiny").tag) == newer


def test_jobs_name_a_model_by_its_place_in_the_stores_which_a_runner_finds_in_its_own(cache, tmp_path, monkeypatch):
    # The entry names a version by its place in the store; a runner whose stores are elsewhere
    # (another host, another mount) finds the same version in its own.
    _, newer = _two_versions(tmp_path)
    folder = _folder(cache, newer)
    name = store.reference(folder / "det.onnx")
    assert name == f"{newer.replace(':', '/')}/det.onnx"
    assert store.resolve(name) == folder / "det.onnx"
    # The runner's side: its cache folder elsewhere, holding the same version.
    elsewhere = tmp_path / "mounted-elsewhere"
    shutil.copytree(cache, elsewhere)
    monkeypatch.setenv("MACHINE_LEARNING_CACHE_FOLDER", str(elsewhere))
    get_settings.cache_clear()
    assert store.resolve(name) == elsewhere / newer.replace(":", "/") / "det.onnx"
    # A file outside the stores (an OCR model in its wheel) keeps its absolute path.
    outside = tmp_path / "wheel" / "det.onnx"
    assert store.reference(outside) == str(outside) and store.resolve(str(outside)) == outside


def test_a_reference_cannot_leave_the_stores(cache):
    with pytest.raises(ValueError, match="inside the model stores"):
        store.resolve("ocr-tiny/../../../etc/passwd")
