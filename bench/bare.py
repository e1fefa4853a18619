"""The models alone: ONNX Runtime with its default options, batch 1, no HTTP, no decoding.

This is the physical bound the service is measured against. For the pipelines (faces, OCR) the
bound is the sum of the forward passes one image needs: the detector on the image's detector
input, then the recogniser once per face or text line, each at batch 1. Inputs are the ones the
service itself makes from the benchmark's images, so the shapes (and the work) are the same.
"""

from __future__ import annotations

import io
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class Pipeline:
    """The forward passes one request needs."""

    name: str
    stages: list[Stage]


def time_stage(stage: Stage, rounds: int) -> float:
    """Median seconds of one pass."""
    session = ort.InferenceSession(str(stage.path), providers=["CPUExecutionProvider"])
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


def measure(pipeline: Pipeline, rounds: int) -> dict:
    """{seconds, req_s, gflops, stages: {name: ms}} of one request's passes, one after another."""
    cache: dict[tuple[Path, tuple[int, ...]], tuple[float, float]] = {}
    seconds = work = 0.0
    stages: dict[str, float] = {}
    for stage in pipeline.stages:
        key = (stage.path, stage.shape)
        if key not in cache:
            cache[key] = (time_stage(stage, rounds), gflops(stage.path, stage.shape))
        took, flops = cache[key]
        seconds += took
        work += flops
        stages[stage.name] = round(stages.get(stage.name, 0.0) + took * 1000, 1)
    return {"seconds": seconds, "req_s": 1 / seconds, "gflops": work, "stages_ms": stages}


def clip_pipelines(folder: Path) -> list[Pipeline]:
    return [Pipeline("clip image", [Stage("visual", folder / "visual.onnx", (1, 3, 224, 224))]),
            Pipeline("clip text", [Stage("textual", folder / "textual.onnx", (1, 52), np.int64)])]


def face_pipeline(folder: Path, faces: int) -> Pipeline:
    return Pipeline("faces", [Stage("detector", folder / "detector.onnx", (1, 3, 640, 640)),
                              *[Stage("recogniser", folder / "recognizer.onnx", (1, 3, 112, 112))] * faces])


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
    return Pipeline("ocr", [Stage("detector", det, tensor.shape),
                            *[Stage("recogniser", rec, (1, *shape)) for shape in widths]])
