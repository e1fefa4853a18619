"""The face runner's work, called in-process: each job gets the outputs a pass over it alone gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from runners.batching import Failure
from runners.face import FaceModels
from runners.models.batch_axis import settle_batch_axis
from runners.sessions import Sessions
from tests.support.fake_faces import build_detector, build_recognizer
from tests.support.fake_faces import random_blob as blob


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Detectors as an import stores them: one whose axis is free, one that takes one image."""
    root = tmp_path_factory.mktemp("runner-models")
    paths = {}
    for name, options in (("stacks", {}), ("one-at-a-time", {"batched": True, "fixed_batch_reshape": True})):
        build_detector(root / f"{name}.src.onnx", **options)
        settle_batch_axis(root / f"{name}.src.onnx", root / f"{name}.onnx", blob((3, 640, 640)))
        paths[name] = str(root / f"{name}.onnx")
    build_recognizer(root / "rec.onnx")
    paths["rec"] = str(root / "rec.onnx")
    return paths


class CountedSessions(Sessions):
    """Sessions that record each pass: (file stem, batch size)."""

    def __init__(self) -> None:
        super().__init__(lambda path, api: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]))
        self.recorded: list[tuple[str, int]] = []

    def run_all(self, path: Path, batch: np.ndarray, family: str = "", api: str = "") -> list[np.ndarray]:
        assert family == "faces" and api in ("face_detect", "face_embed")
        self.recorded.append((path.stem, len(batch)))
        return super().run_all(path, batch, family, api)


@pytest.fixture
def sessions() -> CountedSessions:
    return CountedSessions()


def alone(path, item):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: item[None]})


def test_detect_gives_each_image_its_own_outputs_stacked_or_one_by_one(sessions, models):
    faces = FaceModels(sessions, None)
    jobs = [(models[name], blob((3, 640, 640))(seed)) for seed, name in
            enumerate(["stacks", "one-at-a-time", "stacks", "one-at-a-time", "stacks"])]
    results = faces.detect(jobs)
    assert len(results) == len(jobs)
    for (path, item), outputs in zip(jobs, results):
        want = alone(path, item)
        assert len(outputs) == 9
        assert all(g.shape == w.shape and np.array_equal(g, w) for g, w in zip(outputs, want))
    assert sorted(sessions.recorded) == [("one-at-a-time", 1), ("one-at-a-time", 1), ("stacks", 3)]


def test_embed_gives_each_face_its_own_vector_in_one_pass(sessions, models):
    jobs = [(models["rec"], blob((3, 112, 112))(seed)) for seed in range(5)]
    results = FaceModels(sessions, None).embed(jobs)
    assert [r.shape for r in results] == [(512,)] * 5
    for (path, item), vector in zip(jobs, results):
        assert np.allclose(vector, alone(path, item)[0][0], atol=1e-5)
    assert sessions.recorded == [("rec", 5)]


def test_a_pass_limit_splits_the_batch_and_changes_no_result(sessions, models):
    jobs = [(models["rec"], blob((3, 112, 112))(seed)) for seed in range(5)]
    whole = FaceModels(Sessions(sessions.create), None).embed(jobs)
    split = FaceModels(sessions, lambda shape: 2).embed(jobs)
    assert sessions.recorded == [("rec", 2), ("rec", 2), ("rec", 1)]
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(whole, split))


def test_a_missing_model_fails_only_its_own_jobs(sessions, models, tmp_path):
    jobs = [(str(tmp_path / "gone.onnx"), blob((3, 112, 112))(0)), (models["rec"], blob((3, 112, 112))(1))]
    missing, fine = FaceModels(sessions, None).embed(jobs)
    assert isinstance(missing, Failure) and fine.shape == (512,)
