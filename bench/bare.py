"""The models alone: batch 1, no HTTP, no decoding.

The bound the service is measured against is ONNX Runtime at fp32 with its default options
(what stock Immich runs). The bound of the runtime in use (``measure(create=...)``: OpenVINO at
bf16, say) is measured beside it, with the sessions the runner itself makes. For the pipelines
(faces, OCR) a bound is the sum of the forward passes one image needs: the detector on the
image's detector input, then the recogniser once per face or text line, each at batch 1. Inputs
are the ones the service itself makes from the benchmark's images, so the shapes (and the work)
are the same.
"""

from __future__ import annotations

import io
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnxruntime as ort
from PIL import Image

from bench.flops import gflops


@dataclass(frozen=True)
class Stage:
    name: str
    path: Path
    shape: tuple[int, ...]
    dtype: type = np.float32
    api: str = ""  # the runner API that runs it (what kind of model it is to runners.engines)


#: (model file, runner API) -> a session; None: ONNX Runtime at fp32 with its defaults.
Create = Callable[[Path, str], Any]


@dataclass(frozen=True)
class Pipeline:
    """The forward passes one request needs."""

    name: str
    stages: list[Stage]


def time_stage(stage: Stage, rounds: int, create: Create | None = None) -> float:
    """Median seconds of one pass."""
    if create is None:
        session = ort.InferenceSession(str(stage.path), providers=["CPUExecutionProvider"])
    else:
        session = create(stage.path, stage.api)
    rng = np.random.default_rng(0)
    data = rng.integers(1, 100, stage.shape) if stage.dtype == np.int64 else rng.uniform(-1, 1, stage.shape)
    feed = {session.get_inputs()[0].name: data.astype(stage.dtype)}
    for _ in range(2):
        session.run(None, feed)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(pipeline: Pipeline, rounds: int, create: Create | None = None) -> dict:
    """{seconds, req_s, gflops, stages: {name: ms}} of one request's passes, one after another
    (``create``: the runtime; None: ONNX Runtime at fp32 with its defaults)."""
    cache: dict[tuple[Path, tuple[int, ...]], tuple[float, float]] = {}
    seconds = work = 0.0
    stages: dict[str, float] = {}
    for stage in pipeline.stages:
        key = (stage.path, stage.shape)
        if key not in cache:
            cache[key] = (time_stage(stage, rounds, create), gflops(stage.path, stage.shape))
        took, flops = cache[key]
        seconds += took
        work += flops
        stages[stage.name] = round(stages.get(stage.name, 0.0) + took * 1000, 1)
    return {"seconds": seconds, "req_s": 1 / seconds, "gflops": work, "stages_ms": stages}


def clip_pipelines(folder: Path) -> list[Pipeline]:
    return [Pipeline("clip image", [Stage("visual", folder / "visual.onnx", (1, 3, 224, 224), api="clip_image")]),
            Pipeline("clip text", [Stage("textual", folder / "textual.onnx", (1, 52), np.int64, "clip_text")])]


def face_pipeline(folder: Path, faces: int) -> Pipeline:
    return Pipeline("faces", [Stage("detector", folder / "detector.onnx", (1, 3, 640, 640), api="face_detect"),
                              *[Stage("recogniser", folder / "recognizer.onnx", (1, 3, 112, 112), api="face_embed")]
                              * faces])


def ocr_pipeline(det: Path, rec: Path, jpeg: bytes) -> Pipeline:
    """The OCR passes for ``jpeg`` with Immich's default options: the detector input the service
    makes, then one recogniser pass per line it finds, at the width the service pads it to."""
    from runners.ocr import detector_tensor
    from runners.ocr_steps import detector_input, find_lines, line_crops, recogniser_input
    from runners.pixels import flatten, to_bgr

    bgr = to_bgr(flatten(Image.open(io.BytesIO(jpeg))))
    tensor = detector_tensor(detector_input(bgr, 736)[None])
    session = ort.InferenceSession(str(det), providers=["CPUExecutionProvider"])
    probability = session.run(None, {session.get_inputs()[0].name: tensor})[0][0, 0]
    lines = find_lines(probability, bgr, 0.5)
    widths = [recogniser_input(crop).shape for crop in line_crops(lines)]
    return Pipeline("ocr", [Stage("detector", det, tensor.shape, api="ocr_detect"),
                            *[Stage("recogniser", rec, (1, *shape), api="ocr_recognize") for shape in widths]])
