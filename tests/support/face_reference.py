"""The parity tests' truth: insightface's own ``FaceAnalysis`` on a pack's original files.

It is set up as Immich's reference service sets up its models: detection at 640x640 (one
scale, not FaceAnalysis's default two) with ``det_thresh`` = the request's ``minScore``, then
ArcFace on every face. Images are decoded as the reference decodes them (``cv2.imdecode``),
not by the service's own code. (Only transparency differs: the service lays it on white, as
for OCR, where OpenCV drops the alpha channel; the test images are opaque.)
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np


class Reference:
    def __init__(self, pack: Path) -> None:
        from insightface.app import FaceAnalysis

        self._app = FaceAnalysis(name=str(pack), providers=["CPUExecutionProvider"])
        self._threshold: float | None = None

    def found(self, data: bytes, min_score: float) -> list[Any]:
        """insightface's ``Face`` objects for this image (``bbox``, ``det_score``, ``embedding``,
        ``normed_embedding``), as ``FaceAnalysis(det_thresh=min_score, det_size=(640, 640))``
        finds them."""
        if min_score != self._threshold:
            self._app.prepare(ctx_id=0, det_thresh=min_score, det_size=(640, 640))
            self._threshold = min_score
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # scikit-image, on every alignment
            return self._app.get(bgr)

    def faces(self, data: bytes, min_score: float) -> list[dict[str, Any]]:
        """What Immich's answer should hold for this image: boxes rounded, raw embeddings."""
        return [
            {"box": dict(zip(("x1", "y1", "x2", "y2"), (int(v) for v in face.bbox.round()))),
             "score": float(face.det_score), "embedding": face.embedding}
            for face in self.found(data, min_score)
        ]


def assert_same_faces(answer: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """An answer's faces equal the reference's, in the reference's order."""
    assert len(answer) == len(expected), (len(answer), len(expected))
    for got, want in zip(answer, expected):
        assert set(got) == {"boundingBox", "embedding", "score"}
        assert got["boundingBox"] == want["box"]
        assert all(isinstance(v, int) for v in got["boundingBox"].values())
        assert abs(got["score"] - want["score"]) < 1e-6
        assert isinstance(got["embedding"], str)  # Immich stores the string as it is
        embedding = np.array(json.loads(got["embedding"]), np.float32)
        assert embedding.shape == (512,)
        np.testing.assert_allclose(embedding, want["embedding"], rtol=1e-5, atol=1e-6)
