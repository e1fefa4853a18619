"""Immich's ``facial-recognition`` task: detection, then recognition on its faces.

Detection option: ``minScore`` (faces scoring below it are dropped; default 0.7, the Immich
server's and the reference service's). The answer is Immich's: one item per face,
``{"boundingBox": {x1, y1, x2, y2}, "embedding": "<JSON array>", "score"}``, boxes in pixels of
the image sent, rounded to integers; embeddings raw, as the recogniser gives them.

insightface's detection and alignment code runs on threads of this module's own pool, and
calls the runner from there (``adapters.aio``); a thread waiting on the runner costs no CPU.
How many image requests are worked on at once is ``adapters.admission``'s to say.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping

import numpy as np
from PIL import Image

from adapters import shown
from adapters.aio import in_thread, wait_for
from adapters.errors import RequestError
from adapters.local import Inputs, LocalModels, runner_results
from adapters.vectors import vector_string
from runners import face_steps
from runners.face_steps import Faces
from runners.models import store
from runners.models.face import FaceFiles
from runners.pixels import flatten, to_bgr

log = logging.getLogger(__name__)

DETECTION_MIN_SCORE = 0.7
#: Faces answered per image at most (``IMMICH_CN_ML_MAX_FACES``'s default).
MAX_FACES = 256

# A ceiling well above IMMICH_CN_ML_MAX_ACTIVE_REQUESTS' usual values (admission decides); the
# threads mostly wait for the runner.
_POOL = ThreadPoolExecutor(max_workers=64, thread_name_prefix="faces")


class FaceDetection:
    def __init__(self, runner: Any, files: FaceFiles, max_faces: int = MAX_FACES) -> None:
        self.runner = runner
        self.max_faces = max_faces
        self.path = str(files.detector)  # the file
        self.job = store.reference(files.detector)  # how runner jobs name it
        self.model = face_steps.detector(files.io("detector"), self._forward)

    def _forward(self, blob: np.ndarray) -> list[np.ndarray]:
        # On a pool thread, inside insightface's detect(): one image, (1, 3, H, W).
        [outputs] = runner_results(wait_for(self.runner.to_async.face_detect([(self.job, blob[0])])))
        return outputs

    async def predict(self, inputs: Inputs, options: Mapping[str, Any], previous: Any) -> Faces:
        if inputs.image is None:
            raise RequestError(400, "facial-recognition needs an image")
        return await self.faces(inputs.image, _min_score(options))

    async def faces(self, image: Image.Image, min_score: float) -> Faces:
        """The faces of ``image`` scoring at least ``min_score``, in insightface's order (highest
        score first), at most ``max_faces`` of them."""
        faces = await in_thread(_POOL, _detect, self.model, image, min_score)
        if len(faces.boxes) <= self.max_faces:
            return faces
        # A low minScore (0 passes every anchor NMS leaves) can give thousands of "faces".
        log.info("found %d faces at minScore %g; kept the %d scoring highest (IMMICH_CN_ML_MAX_FACES)",
                 len(faces.boxes), min_score, self.max_faces)
        return Faces(faces.image, faces.boxes[: self.max_faces], faces.landmarks[: self.max_faces])

    async def preload(self) -> None:
        await self.runner.to_async.load(models=[["face_detect", self.job]])


class FaceRecognition:
    def __init__(self, runner: Any, files: FaceFiles) -> None:
        self.runner = runner
        self.path = str(files.recognizer)
        self.job = store.reference(files.recognizer)
        self.model = face_steps.recognizer(files.recognizer, files.io("recognizer"), self._forward)

    def _forward(self, blob: np.ndarray) -> list[np.ndarray]:
        # On a pool thread, inside insightface's get_feat(): every face of one image, (N, 3, 112, 112).
        embeddings = runner_results(wait_for(self.runner.to_async.face_embed([(self.job, crop) for crop in blob])))
        return [np.stack(embeddings)]

    async def predict(self, inputs: Inputs, options: Mapping[str, Any], previous: Faces) -> list[dict[str, Any]]:
        if len(previous.boxes) == 0:
            return []
        return _immich_answer(previous, await self.embeddings(previous))

    async def embeddings(self, faces: Faces) -> np.ndarray:
        """(N, D) raw embeddings of ``faces``, in their order, as insightface's ``Face.embedding``."""
        if len(faces.boxes) == 0:
            return np.zeros((0, 0), np.float32)
        return await in_thread(_POOL, face_steps.embed_faces, self.model, faces)

    async def preload(self) -> None:
        await self.runner.to_async.load(models=[["face_embed", self.job]])


def face_local_models(runner: Any, packs: list[FaceFiles], max_faces: int = MAX_FACES) -> LocalModels:
    """The router's entries for every imported pack (a broken one is logged and left out)."""
    table: dict[tuple[str, str, str], Any] = {}
    for files in packs:
        try:
            detection, recognition = FaceDetection(runner, files, max_faces), FaceRecognition(runner, files)
        except Exception as exc:  # e.g. a recogniser file gone from the store
            log.error("face pack %s (%s) is not served: %s: %s", files.name, files.folder, type(exc).__name__, exc)
            continue
        table[("facial-recognition", "detection", files.name)] = detection
        table[("facial-recognition", "recognition", files.name)] = recognition
    return table


def _detect(model: Any, image: Any, min_score: float) -> Faces:
    return face_steps.find_faces(model, to_bgr(flatten(image)), min_score)


def _immich_answer(faces: Faces, embeddings: np.ndarray) -> list[dict[str, Any]]:
    boxes = faces.boxes[:, :4].round().astype(np.int64)
    return [
        {
            "boundingBox": {"x1": int(x1), "y1": int(y1), "x2": int(x2), "y2": int(y2)},
            "embedding": vector_string(embedding, False, "face recognition"),
            "score": float(score),
        }
        for (x1, y1, x2, y2), embedding, score in zip(boxes, embeddings, faces.boxes[:, 4])
    ]


def _min_score(options: Mapping[str, Any]) -> float:
    value = options.get("minScore", DETECTION_MIN_SCORE)
    if value is None:
        return DETECTION_MIN_SCORE
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise RequestError(400, f"facial-recognition option minScore must be a number from 0 to 1, got {shown.value(value)}")
    return float(value)
