"""insightface's detection and alignment over a RemoteSession give what insightface gives alone.

The forward passes here run in this process (a plain ONNX Runtime session behind the
callable) so many images are cheap; tests/adapters/test_face.py holds the same over HTTP.
"""

from __future__ import annotations

import io

import numpy as np
import onnxruntime as ort
import pytest

from runners import face_steps
from runners.face_steps import RemoteSession
from tests.support.face_reference import Reference
from tests.support.fake_faces import build_pack, faces_image


def _io(session):
    return {"inputs": [[v.name, v.shape, v.type] for v in session.get_inputs()],
            "outputs": [[v.name, v.shape, v.type] for v in session.get_outputs()]}


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    return build_pack(tmp_path_factory.mktemp("pack"))


@pytest.fixture(scope="module")
def steps(pack):
    """(detector, recogniser, calls): insightface's models over remote sessions, and the
    shapes each forward callable was given."""
    calls = {"detector": [], "recognizer": []}

    def forward(part, session):
        def run(blob):
            calls[part].append(blob.shape)
            return session.run(None, {session.get_inputs()[0].name: blob})
        return run

    det = ort.InferenceSession(str(pack / "det_10g.onnx"), providers=["CPUExecutionProvider"])
    rec = ort.InferenceSession(str(pack / "w600k_r50.onnx"), providers=["CPUExecutionProvider"])
    return (face_steps.detector(_io(det), forward("detector", det)),
            face_steps.recognizer(pack / "w600k_r50.onnx", _io(rec), forward("recognizer", rec)), calls)


def _png(image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_random_images_give_what_face_analysis_gives(pack, steps):
    detector, recognizer, _ = steps
    reference = Reference(pack)
    rng = np.random.default_rng(0)
    for n in range(30):
        width, height = [(640, 640), (480, 640), (1280, 720), (1000, 700), (1440, 1080)][n % 5]
        count = int(rng.integers(0, 5))
        centres = [(int(rng.integers(40, width - 40)), int(rng.integers(40, height - 40))) for _ in range(count)]
        image = faces_image(width, height, centres, int(rng.integers(20, 40) * width / 640), seed=n)
        data = _png(image)
        bgr = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
        faces = face_steps.find_faces(detector, bgr, 0.7)
        expected = reference.faces(data, 0.7)
        assert len(faces.boxes) == len(expected), n
        if expected:
            embeddings = face_steps.embed_faces(recognizer, faces)
            assert np.array_equal(faces.boxes[:, :4].round().astype(int),
                                  [[e["box"][k] for k in ("x1", "y1", "x2", "y2")] for e in expected])
            assert np.allclose(faces.boxes[:, 4], [e["score"] for e in expected], atol=1e-6)
            assert np.allclose(embeddings, [e["embedding"] for e in expected], rtol=1e-5, atol=1e-6)


def test_one_forward_per_image_and_one_for_all_its_faces(steps):
    detector, recognizer, calls = steps
    calls["detector"].clear(), calls["recognizer"].clear()
    bgr = np.ascontiguousarray(np.asarray(faces_image(1440, 1080, [(200, 200), (700, 500), (1200, 900)], 60))[:, :, ::-1])
    faces = face_steps.find_faces(detector, bgr, 0.7)
    assert face_steps.embed_faces(recognizer, faces).shape == (3, 512)
    assert calls == {"detector": [(1, 3, 640, 640)], "recognizer": [(3, 3, 112, 112)]}


def test_detection_happens_at_640_whatever_the_graph_allows(steps):
    detector, _, calls = steps
    calls["detector"].clear()
    face_steps.find_faces(detector, np.zeros((100, 3000, 3), np.uint8), 0.5)
    assert calls["detector"] == [(1, 3, 640, 640)]  # one scale, not FaceAnalysis's default two


@pytest.mark.parametrize(("height", "width", "fits"),
                         [(3000, 3, False), (3, 3000, False), (1280, 2, True), (2, 1280, True), (1, 1, True)])
def test_images_too_thin_to_letterbox_have_no_faces(steps, height, width, fits):
    detector, _, calls = steps
    calls["detector"].clear()
    faces = face_steps.find_faces(detector, np.zeros((height, width, 3), np.uint8), 0.5)
    assert len(faces.boxes) == 0 and faces.landmarks.shape == (0, 5, 2)
    assert bool(calls["detector"]) is fits


def test_remote_session_answers_in_the_order_asked_and_counts_outputs():
    io_ = {"inputs": [["x", [1, 3, "h", "w"], "tensor(float)"]],
           "outputs": [["a", [1], "tensor(float)"], ["b", [2], "tensor(float)"]]}
    session = RemoteSession(io_, lambda blob: [np.zeros(1), np.ones(2)])
    assert [v.name for v in session.get_outputs()] == ["a", "b"]
    assert session.get_inputs()[0].shape == [1, 3, "h", "w"]
    assert [o.shape for o in session.run(["b", "a"], {"x": np.zeros(1)})] == [(2,), (1,)]
    assert len(session.run(None, {"x": np.zeros(1)})) == 2
    short = RemoteSession(io_, lambda blob: [np.zeros(1)])
    with pytest.raises(RuntimeError, match="gave 1 outputs; the model has 2"):
        short.run(None, {"x": np.zeros(1)})
