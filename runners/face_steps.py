"""Face pre- and post-processing: insightface's own code, run in the entry service.

insightface's ``SCRFD`` and ``ArcFaceONNX`` take an ONNX Runtime session and call its
``get_inputs``, ``get_outputs`` and ``run``. Here they get a ``RemoteSession``, whose ``run``
hands the input blob to a callable that sends it to the face runner. So the letterbox, the
input blob, the anchors, distance-to-box decoding and NMS (``SCRFD.detect``), the alignment
(``face_align.norm_crop``) and the recogniser's blob (``ArcFaceONNX.get_feat``) are exactly
insightface's, while the forward passes run in the runner, batched with other requests'.

The callables block until the runner answers, so these functions run on worker threads
(``adapters.aio.in_thread``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from insightface.model_zoo.arcface_onnx import ArcFaceONNX
from insightface.model_zoo.scrfd import SCRFD
from insightface.utils import face_align

# scikit-image 0.26 warns, on every face insightface aligns, that SimilarityTransform.estimate
# will change in 2.2; the pinned version is what the parity tests hold to.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"insightface\.utils\.face_align")

#: Immich detects at 640x640 (CONTRACTS.md §4); FaceAnalysis's det_size=(640, 640).
DET_SIZE = (640, 640)

#: Sends one blob to the runner and returns the model's outputs, in the graph's order.
Forward = Callable[[np.ndarray], Sequence[np.ndarray]]


@dataclass(frozen=True)
class _Value:
    """What insightface reads of an ONNX Runtime ``NodeArg``."""

    name: str
    shape: list[Any]
    type: str


class RemoteSession:
    """An ONNX Runtime session look-alike whose forward pass runs somewhere else.

    ``io`` is the model's inputs and outputs as recorded at import
    (``FaceFiles.io``), so the entry service loads no session of its own.
    """

    def __init__(self, io: dict[str, list[list[Any]]], forward: Forward) -> None:
        self._inputs = [_Value(name, list(shape), kind) for name, shape, kind in io["inputs"]]
        self._outputs = [_Value(name, list(shape), kind) for name, shape, kind in io["outputs"]]
        self._forward = forward

    def get_inputs(self) -> list[_Value]:
        return list(self._inputs)

    def get_outputs(self) -> list[_Value]:
        return list(self._outputs)

    def get_providers(self) -> list[str]:
        return []  # the runner's settings choose them

    def set_providers(self, providers: Any = None, provider_options: Any = None) -> None:
        """insightface's ``prepare(ctx_id < 0)`` asks for CPU; the runner decides, so ignore it."""

    def run(self, output_names: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        (blob,) = feed.values()
        outputs = list(self._forward(blob))
        if len(outputs) != len(self._outputs):
            raise RuntimeError(f"the runner gave {len(outputs)} outputs; the model has {len(self._outputs)}")
        if output_names is None:
            return outputs
        order = [value.name for value in self._outputs]
        return [outputs[order.index(name)] for name in output_names]


@dataclass(frozen=True)
class Faces:
    """The faces found in one image, as insightface's ``SCRFD.detect`` gives them."""

    image: np.ndarray  # the whole image, BGR uint8, for alignment
    boxes: np.ndarray  # (N, 5) float32: x1, y1, x2, y2 in image pixels, then the score
    landmarks: np.ndarray  # (N, 5, 2) float32: eyes, nose, mouth corners

    @classmethod
    def none(cls, image: np.ndarray) -> Faces:
        return cls(image, np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32))


def detector(io: dict[str, list[list[Any]]], forward: Forward) -> SCRFD:
    """insightface's SCRFD over a remote session, detecting at 640x640 with its own NMS
    threshold (0.4), as ``FaceAnalysis.prepare(det_size=(640, 640))`` sets it up."""
    model = SCRFD(model_file=None, session=RemoteSession(io, forward))
    model.prepare(0, input_size=DET_SIZE)
    return model


def recognizer(path: Path, io: dict[str, list[list[Any]]], forward: Forward) -> ArcFaceONNX:
    """insightface's ArcFaceONNX over a remote session. It reads ``path`` once, to tell from the
    graph's first nodes which input normalisation the model was trained with."""
    return ArcFaceONNX(model_file=str(path), session=RemoteSession(io, forward))


def find_faces(model: SCRFD, image: np.ndarray, min_score: float) -> Faces:
    """Faces of ``image`` (BGR uint8) scoring at least ``min_score``. Blocks on the runner."""
    if not _letterbox_fits(image.shape[:2], model.input_size):
        return Faces.none(image)
    boxes, landmarks = model.detect(image, det_thresh=min_score)
    return Faces(image, boxes, landmarks)


def embed_faces(model: ArcFaceONNX, faces: Faces) -> np.ndarray:
    """(N, D) raw embeddings of the faces, aligned as ``ArcFaceONNX.get`` aligns one; all of
    one image's faces go to the runner in one call. Blocks on the runner."""
    crops = [face_align.norm_crop(faces.image, landmark=points, image_size=model.input_size[0])
             for points in faces.landmarks]
    return model.get_feat(crops)


def _letterbox_fits(image_hw: tuple[int, int], input_wh: tuple[int, int]) -> bool:
    """Whether SCRFD's letterbox keeps at least a pixel of each side. It scales the image to
    fit the input and truncates, so an image thousands of times taller than wide would become
    zero pixels wide, and OpenCV's resize would fail. No face fits in such a sliver anyway."""
    (height, width), (input_w, input_h) = image_hw, input_wh
    if height / width > input_h / input_w:
        return int(input_h / (height / width)) >= 1
    return int(input_w * (height / width)) >= 1
