"""OpenVINO on the CPU: a stored ONNX model compiled at bf16 or fp32, behind the slice of ONNX
Runtime's ``InferenceSession`` that the runners use (``get_inputs``, ``get_outputs``,
``get_providers``, ``run``), so ``runners.sessions`` holds either alike.

Memory: compiled straight from an ONNX file, OpenVINO's CPU plugin keeps the file's fp32
weights beside its own bf16 copies (the CLIP ViT-B-16 image tower: 750 MiB against ONNX
Runtime's 420). For bf16 the model is first saved as OpenVINO IR with fp16 weights
(``runners.derived`` keeps it) and compiled from that file, which OpenVINO maps rather than
reads; it puts the weights into its own layout during the first pass and reads the mapping no
more, so after that pass the mapping's pages are let go (``runners.memory.drop_file_pages``):
the tower then holds 210 MiB, half of ONNX Runtime's, runs as fast, and gives the same answers
(fp16 keeps more of each weight than the bf16 the passes compute in).

Imported by runner processes only, and only when a model runs on OpenVINO.
"""

from __future__ import annotations

import functools
import logging
import queue
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import openvino as ov

from runners import derived, memory

log = logging.getLogger(__name__)

#: OpenVINO's names for the precisions of ``runners.precision``.
HINTS = {"bf16": "bf16", "fp32": "f32"}


@dataclass(frozen=True)
class _Value:
    """A model input or output as ONNX Runtime describes one: a name, and a shape whose
    unknown dimensions are strings."""

    name: str
    shape: list[int | str]


@functools.cache
def core() -> ov.Core:
    return ov.Core()


def maker() -> str:
    """What makes this module's derived files, for their stamps."""
    return f"openvino {ov.get_version()}"


def compile_options(precision: str, threads: int) -> dict[str, Any]:
    options: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": HINTS[precision],
        # One pass at a time (the runner's passes take turns), each with every core.
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
        # Pinned threads would keep their cores when the entry service's decoding needs them.
        "ENABLE_CPU_PINNING": False,
    }
    if threads > 0:
        options["INFERENCE_NUM_THREADS"] = threads
    return options


def save_fp16_ir(source: Path, target: Path) -> None:
    """``source`` (ONNX) as OpenVINO IR (``target``.xml and .bin) with its weights in fp16."""
    ov.save_model(core().read_model(str(source)), str(target), compress_to_fp16=True)


class OpenVinoSession:
    """A model compiled for OpenVINO's CPU device. Thread-safe: each pass takes an infer request
    of its own from a pool (one is enough while passes take turns)."""

    def __init__(self, compiled: Any, label: str, weights: Path | None = None) -> None:
        self._compiled = compiled
        self._label = label
        self._weights = weights  # the mapped weight file whose pages go after the first pass
        self._inputs = [_Value(port.any_name, _dims(port.get_partial_shape())) for port in compiled.inputs]
        self._outputs = [_Value(port.any_name, _dims(port.get_partial_shape())) for port in compiled.outputs]
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def get_inputs(self) -> list[_Value]:
        return list(self._inputs)

    def get_outputs(self) -> list[_Value]:
        return list(self._outputs)

    def get_providers(self) -> list[str]:
        return [self._label]

    def release_memory(self) -> None:
        """Free the intermediate buffers of the passes run so far (the next pass makes them anew)."""
        self._compiled.release_memory()

    def run(self, output_names: Sequence[str] | None, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        try:
            request = self._idle.get_nowait()
        except queue.Empty:
            request = self._compiled.create_infer_request()
        try:
            # share_outputs=False (the default) copies each output out of the request's buffers,
            # which the next pass overwrites.
            results = request.infer(dict(feed))
            names = output_names or [value.name for value in self._outputs]
            outputs = [np.asarray(results[name]) for name in names]
        finally:
            self._idle.put(request)
        if self._weights is not None:
            weights, self._weights = self._weights, None
            dropped = memory.drop_file_pages(str(weights))
            log.debug("let go of %.0f MiB of %s's mapping", dropped / 2**20, weights)
        return outputs


def create_session(path: Path, precision: str, threads: int, fallback_root: Path | None) -> OpenVinoSession:
    """``path`` compiled for the CPU at ``precision`` ("bf16" or "fp32")."""
    started = time.monotonic()
    made = None
    source = path
    if precision == "bf16":
        made = derived.derive(path, "openvino-fp16", ".xml", maker(), save_fp16_ir, fallback_root)
        source = made.path
    try:
        compiled = core().compile_model(str(source), "CPU", compile_options(precision, threads))
    finally:
        if made is not None:
            made.discard()  # a temporary IR: the compiled model no longer needs the file
    label = f"OpenVINO CPU {precision}"
    log.info("loaded %s on %s in %.1f s", path, label, time.monotonic() - started)
    return OpenVinoSession(compiled, label, _weight_file(source))


def _weight_file(source: Path) -> Path:
    """The file OpenVINO maps for a model's weights: an IR's .bin, an ONNX model's external
    .data, or the ONNX file itself."""
    if source.suffix == ".xml":
        return source.with_suffix(".bin").resolve()
    data = source.with_name(source.name + ".data")
    return (data if data.exists() else source).resolve()


def _dims(shape: Any) -> list[int | str]:
    return [dim.get_length() if dim.is_static else "?" for dim in shape]
