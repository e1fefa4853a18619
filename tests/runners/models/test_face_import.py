"""``python -m runners.models import face`` as a user runs it, on fake packs (real ones cannot
be downloaded here; tests/support/fake_faces.py builds files with their signatures)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import bentoml
import onnxruntime as ort
import pytest

from runners.models import face
from tests.support.fake_faces import build_detector, build_pack, build_recognizer
from tests.support.models_cli import models, offline_import


def test_a_pack_folder_imports_as_buffalo_l_by_default(tmp_path):
    pack = build_pack(tmp_path / "buffalo_l", others=True)
    run = models(tmp_path / "home", "import", "face", "--from", str(pack))
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("imported face model buffalo_l as face-buffalo_l:")

    listing = models(tmp_path / "home", "list")
    [row] = [line for line in listing.stdout.splitlines() if line.split()[:2] == ["face", "buffalo_l"]]
    assert "model store (" in row


def test_the_store_keeps_the_detector_and_the_recogniser_insightface_identified(tmp_path):
    pack = build_pack(tmp_path / "pack", others=True)
    run = models(tmp_path / "home", "import", "face", "buffalo_m", "--from", str(pack))
    assert run.returncode == 0, run.stderr
    tag = run.stdout.splitlines()[0].split(" as ")[1]
    model = bentoml.models.get(tag, _model_store=_store(tmp_path / "home"))
    metadata = model.info.metadata
    assert (metadata["name"], metadata["detector_file"], metadata["recognizer_file"]) == (
        "buffalo_m", "det_10g.onnx", "w600k_r50.onnx")
    assert metadata["detector_batches"] is True and metadata["recognizer_batches"] is True
    assert metadata["source"].startswith("folder ")
    files = sorted(p.name for p in (tmp_path / "home" / "models" / "face-buffalo_m").glob("*/*.onnx"))
    assert files == [face.DETECTOR, face.RECOGNIZER]
    # What the entry service reads instead of opening a session: ONNX Runtime's own view.
    folder = model.path_of("/")
    session = ort.InferenceSession(f"{folder}/{face.DETECTOR}", providers=["CPUExecutionProvider"])
    assert metadata["detector_io"]["outputs"] == [[o.name, o.shape, o.type] for o in session.get_outputs()]
    assert len(metadata["detector_io"]["outputs"]) == 9


def test_a_zip_with_its_files_one_folder_down_imports(tmp_path):
    pack = tmp_path / "files"
    pack.mkdir()
    build_detector(pack / "scrfd_10g_bnkps.onnx", batched=True, fixed_batch_reshape=True)
    build_recognizer(pack / "glintr100.onnx")
    archive = tmp_path / "antelopev2.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in pack.iterdir():
            zf.write(path, f"antelopev2/{path.name}")
        zf.writestr("antelopev2/README.txt", "not a model")
    run = models(tmp_path / "home", "import", "face", "antelopev2", "--from", str(archive))
    assert run.returncode == 0, run.stderr
    tag = run.stdout.splitlines()[0].split(" as ")[1]
    metadata = bentoml.models.get(tag, _model_store=_store(tmp_path / "home")).info.metadata
    assert metadata["detector_file"] == "scrfd_10g_bnkps.onnx"
    assert metadata["detector_batches"] is False  # its graph names batch 1: one image at a time
    assert metadata["source"].startswith("zip ")


def test_offline_download_fails_fast_and_says_what_to_do(tmp_path):
    run, seconds = offline_import(tmp_path, "face", "buffalo_l")
    assert seconds < 30
    assert run.returncode == 1
    assert "could not download https://github.com/deepinsight/insightface/releases/download/model-zoo/buffalo_l.zip" in run.stderr
    assert "import face buffalo_l --from FILE.zip" in run.stderr
    assert "Traceback" not in run.stderr


def _pack_without(tmp_path, part):
    folder = tmp_path / "pack"
    build_pack(folder)
    (folder / part).unlink()
    return folder


def _pack_with(tmp_path, **parts):
    folder = build_pack(tmp_path / "pack")
    for name, build in parts.items():
        build(folder / name)
    return folder


def _text_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    return path


def _empty_folder(tmp_path):
    path = tmp_path / "empty"
    path.mkdir()
    return path


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (lambda t: _pack_without(t, "det_10g.onnx"), "found 0 detector(s) [] and 1 recogniser(s)"),
        (lambda t: _pack_without(t, "w600k_r50.onnx"), "and 0 recogniser(s)"),
        (lambda t: _pack_with(t, **{"det_2.5g.onnx": lambda p: build_detector(p, half_box=60)}), "found 2 detector(s)"),
        (lambda t: _pack_with(t, **{"det_10g.onnx": lambda p: build_detector(p, keypoints=False)}), "without landmarks"),
        (lambda t: _pack_with(t, **{"w600k_r50.onnx": lambda p: build_recognizer(p, dim=128)}), "gives [(1, 128)] for one face"),
        (lambda t: _pack_with(t, **{"w600k_r50.onnx": lambda p: build_recognizer(p, flat=True)}), "gives [(512,)] for one face"),
        (lambda t: _pack_with(t, **{"det_10g.onnx": lambda p: build_detector(p, anchors=1)}), "insightface cannot decode"),
        (lambda t: t / "missing", "does not exist"),
        (_text_file, "neither a folder nor a zip"),
        (_empty_folder, "holds no .onnx files"),
    ],
    ids=["no-detector", "no-recogniser", "two-detectors", "no-landmarks", "not-512", "flat-output", "one-anchor",
         "missing", "not-a-zip", "empty"],
)
def test_packs_that_cannot_be_served_are_refused_with_the_reason(tmp_path, source, message):
    run = models(tmp_path / "home", "import", "face", "buffalo_l", "--from", str(source(tmp_path)))
    assert run.returncode == 1
    assert message in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "home" / "models" / "face-buffalo_l").exists()  # nothing half-stored


def test_a_folder_with_antelopev2s_files_at_two_levels_imports(tmp_path):
    # The usual hand fix of antelopev2's nested zip copies its files one level up.
    pack = build_pack(tmp_path / "antelopev2" / "antelopev2")
    for path in pack.iterdir():
        (tmp_path / "antelopev2" / path.name).write_bytes(path.read_bytes())
    run = models(tmp_path / "home", "import", "face", "antelopev2", "--from", str(tmp_path / "antelopev2"))
    assert run.returncode == 0, run.stderr


def test_two_different_detectors_are_named_by_their_place_in_the_pack(tmp_path):
    pack = build_pack(tmp_path / "pack")
    (pack / "old").mkdir()
    build_detector(pack / "old" / "det_10g.onnx", half_box=60)
    run = models(tmp_path / "home", "import", "face", "--from", str(pack))
    assert run.returncode == 1
    assert "2 detector(s) ['det_10g.onnx', 'old/det_10g.onnx']" in run.stderr


def test_zip_member_paths_cannot_write_outside_the_import(tmp_path):
    pack = build_pack(tmp_path / "pack")
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(pack / "det_10g.onnx", "../../escaped_det.onnx")
        zf.write(pack / "w600k_r50.onnx", "/tmp/escaped_rec.onnx")
    run = models(tmp_path / "home", "import", "face", "--from", str(archive))
    assert run.returncode == 0, run.stderr
    assert not Path("/tmp/escaped_rec.onnx").exists()
    assert not list(tmp_path.parent.glob("escaped_*")) and not list(tmp_path.parent.parent.glob("escaped_*"))


def test_a_broken_onnx_file_in_a_pack_is_skipped(tmp_path):
    pack = build_pack(tmp_path / "pack")
    (pack / "broken.onnx").write_bytes(b"not a protobuf")
    run = models(tmp_path / "home", "import", "face", "--from", str(pack))
    assert run.returncode == 0, run.stderr


def test_an_unknown_pack_has_no_download(tmp_path):
    run = models(tmp_path, "import", "face", "my_pack")
    assert run.returncode == 1
    assert "no download is known for face pack 'my_pack'" in run.stderr


def test_other_families_still_need_a_name(tmp_path):
    run = models(tmp_path, "import", "ocr")
    assert run.returncode == 2
    assert "needs a model name" in run.stderr


def _store(home):
    from bentoml._internal.models import ModelStore

    return ModelStore(str(home / "models"))
