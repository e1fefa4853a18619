"""runners.derived: a derived file is made once, beside its model in the store, and made again
when the model changes; never half-written under its name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runners import derived


def store_version(root: Path) -> Path:
    """A model version folder as BentoML's store lays one out, with one model file."""
    folder = root / "store" / "clip-x" / "v1"
    folder.mkdir(parents=True)
    (folder / derived.STORE_MARK).write_text("name: clip-x\n")
    (folder / "visual.onnx").write_bytes(b"weights v1")
    return folder / "visual.onnx"


class Maker:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, source: Path, target: Path) -> None:
        self.calls += 1
        target.write_bytes(b"from " + source.read_bytes())
        target.with_suffix(".bin").write_bytes(b"beside it")


def test_made_once_beside_the_model_in_the_store(tmp_path):
    source, make = store_version(tmp_path), Maker()
    first = derived.derive(source, "openvino-fp16", ".xml", "maker 1", make, tmp_path / "fallback")
    again = derived.derive(source, "openvino-fp16", ".xml", "maker 1", make, tmp_path / "fallback")
    assert first == again and first.path == source.parent / "derived" / "visual.openvino-fp16.xml"
    assert make.calls == 1 and not first.temporary
    assert first.path.read_bytes() == b"from weights v1"
    assert first.path.with_suffix(".bin").read_bytes() == b"beside it"  # the files made beside it move too
    assert not (tmp_path / "fallback").exists()


def test_made_again_when_the_model_or_its_maker_changes(tmp_path):
    source, make = store_version(tmp_path), Maker()
    derived.derive(source, "int8", ".onnx", "maker 1", make)
    source.write_bytes(b"weights v2, longer")
    made = derived.derive(source, "int8", ".onnx", "maker 1", make)
    assert make.calls == 2 and made.path.read_bytes() == b"from weights v2, longer"
    derived.derive(source, "int8", ".onnx", "maker 2", make)
    assert make.calls == 3


def test_external_weights_count_as_part_of_the_model(tmp_path):
    source, make = store_version(tmp_path), Maker()
    weights = source.with_name(source.name + ".data")
    weights.write_bytes(b"a" * 10)
    derived.derive(source, "int8", ".onnx", "m", make)
    weights.write_bytes(b"b" * 11)
    derived.derive(source, "int8", ".onnx", "m", make)
    assert make.calls == 2


def test_a_model_outside_the_store_goes_to_the_fallback_folder(tmp_path):
    wheel = tmp_path / "site-packages" / "ocr"
    wheel.mkdir(parents=True)
    (wheel / "det.onnx").write_bytes(b"det")
    made = derived.derive(wheel / "det.onnx", "openvino-fp16", ".xml", "m", Maker(), tmp_path / "fallback")
    assert made.path.parent.parent == tmp_path / "fallback" and made.path.parent.name.startswith("ocr-")
    assert not (wheel / "derived").exists()


def test_a_read_only_store_folder_goes_to_the_fallback(tmp_path, monkeypatch):
    source = store_version(tmp_path)
    real = derived._make_into

    def read_only(folder, *args):
        if folder == source.parent / "derived":
            raise PermissionError(13, "Permission denied", str(folder))
        return real(folder, *args)

    monkeypatch.setattr(derived, "_make_into", read_only)
    made = derived.derive(source, "int8", ".onnx", "m", Maker(), tmp_path / "fallback")
    assert (tmp_path / "fallback") in made.path.parents and made.path.exists()


def test_with_nowhere_to_write_it_is_made_in_a_temporary_folder_that_goes_after_loading(tmp_path, monkeypatch):
    source = store_version(tmp_path)
    real = derived._make_into

    def nowhere(folder, *args):
        if "immich-cn-ml-derived-" not in str(folder):
            raise OSError(30, "Read-only file system", str(folder))
        return real(folder, *args)

    monkeypatch.setattr(derived, "_make_into", nowhere)
    made = derived.derive(source, "int8", ".onnx", "m", Maker(), tmp_path / "fallback")
    assert made.temporary and made.path.exists()
    made.discard()
    assert not made.path.parent.exists()


def test_a_make_that_fails_leaves_nothing_under_the_name_and_says_why(tmp_path):
    source = store_version(tmp_path)

    def broken(source: Path, target: Path) -> None:
        target.with_suffix(".bin").write_bytes(b"half")
        target.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        derived.derive(source, "int8", ".onnx", "m", broken)
    folder = source.parent / "derived"
    assert not (folder / "visual.int8.onnx").exists() and not (folder / "visual.int8.onnx.json").exists()
    assert [path.name for path in folder.iterdir()] == []  # no scratch folder left either


def test_a_stamp_without_its_file_is_made_again(tmp_path):
    source, make = store_version(tmp_path), Maker()
    made = derived.derive(source, "int8", ".onnx", "m", make)
    os.remove(made.path)
    derived.derive(source, "int8", ".onnx", "m", make)
    assert make.calls == 2 and made.path.exists()
