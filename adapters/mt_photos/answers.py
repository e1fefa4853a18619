"""MT Photos' answers, formatted as the reference services format them (CONTRACTS.md §3).

Numbers are strings where the reference sends strings: OCR scores ``"%.2f"``, OCR box values
``str(round(v, 2))`` (so ``"4.0"``, not ``"4.00"``), CLIP vectors ``"%.16f"``. A failure is
HTTP 200 with ``{"result": [], "msg": reason}``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def failure(reason: str) -> dict[str, Any]:
    return {"result": [], "msg": reason}


def validation_error(kind: str, location: list[Any], message: str, given: Any = None) -> dict[str, Any]:
    """A 422 body in FastAPI's shape, which the reference services answer bad requests with."""
    return {"detail": [{"type": kind, "loc": location, "msg": message, "input": given}]}


def _fixed(value: float) -> str:
    return str(round(float(value), 2))


def ocr_result(quadrilaterals: np.ndarray, texts: Sequence[str], scores: Sequence[float]) -> dict[str, Any]:
    """``/ocr``'s answer: per line its text, its score, and the axis-aligned box of its
    quadrilateral ((N, 4, 2) pixel points), x/y the box's top-left corner."""
    boxes = []
    for points in np.asarray(quadrilaterals, np.float32).reshape(-1, 4, 2):
        (left, top), (right, bottom) = points.min(axis=0), points.max(axis=0)
        boxes.append({"x": _fixed(left), "y": _fixed(top), "width": _fixed(right - left), "height": _fixed(bottom - top)})
    return {"result": {"texts": list(texts), "scores": [f"{float(s):.2f}" for s in scores], "boxes": boxes}}


def vector_result(features: np.ndarray) -> dict[str, Any]:
    """``/clip/img`` and ``/clip/txt``'s answer: the vector as the model gave it (float32, not
    normalised), each value with 16 decimals."""
    return {"result": [f"{float(value):.16f}" for value in np.asarray(features, np.float32).reshape(-1)]}


def represent_result(pack: str, boxes: np.ndarray, embeddings: np.ndarray) -> dict[str, Any]:
    """``/represent``'s answer. ``boxes`` (N, 5) float32: x1, y1, x2, y2, score, as insightface's
    detector gives them; ``embeddings`` (N, D) raw. Each face's embedding is L2-normalised (as
    insightface's ``normed_embedding``) and its area is ints, truncated as the reference
    truncates them (``int(x2 - x1)``, not ``int(x2) - int(x1)``)."""
    faces = []
    for box, embedding in zip(np.asarray(boxes, np.float32), np.asarray(embeddings, np.float32)):
        x1, y1, x2, y2, score = box
        normed = embedding / np.linalg.norm(embedding)
        faces.append({
            "embedding": normed.astype(np.float64).tolist(),
            "facial_area": {"x": int(x1), "y": int(y1), "w": int(x2 - x1), "h": int(y2 - y1)},
            "face_confidence": float(score),
        })
    return {"detector_backend": "insightface", "recognition_model": pack, "result": faces}
