"""Which runtime and precision run a model: the settings, read against what this host can do.

Two CPU runtimes read the same ONNX files: ONNX Runtime (the exact fp32 answers, and CUDA) and
OpenVINO, whose CPU plugin runs a model in bf16 where the processor has bf16 instructions
(AMD Zen 4/5, Intel Xeon with AMX). Measured on this project's machine (bench/BENCHMARKS.md,
"Precision"), bf16 makes the CLIP and face passes up to twice as fast at embeddings within cos
0.9999 of fp32; at fp32, OpenVINO is faster than ONNX Runtime for OCR's detector only, and holds
the weights twice. Dynamic int8 (ONNX Runtime's) makes the transformer towers of CLIP 2-3x
faster, and the convolutional models slower and wrong, so int8 applies to CLIP towers alone.

``plan`` is a pure function of the settings, the host and the kind of model, so every rule
below is tested without the hardware it describes.
"""

from __future__ import annotations

from dataclasses import dataclass

ONNXRUNTIME, OPENVINO = "onnxruntime", "openvino"
#: Kinds of model. Dynamic int8 suits the CLIP towers (matrix products); the rest are conv
#: nets. OCR's two are conv nets too, but bf16 changes what they read: on the OCR test images
#: (26, real PP-OCRv5 mobile and PP-OCRv6 small weights) one gained a space between Chinese and
#: digits with either of the two at bf16, where OpenVINO at fp32 read every image exactly as
#: ONNX Runtime does. So OCR stays at fp32.
TRANSFORMER, CONVOLUTIONAL, TEXT = "transformer", "convolutional", "text"
#: The fp32 runtime ``auto`` picks for each kind where bf16 is not to be had (or not wanted).
#: Measured alike on this project's machine (bench/BENCHMARKS.md, "Precision"): OpenVINO at
#: fp32 ran the OCR detector 25-40 % faster than ONNX Runtime and reads the same text, for a few
#: MB more; for the CLIP towers and the face models it was 0-20 % faster or slower by the model,
#: and holds each model's weights twice (its own layout beside the file's: +340 MiB for the CLIP
#: image tower), so ONNX Runtime, which also gives the exact answers, keeps those.
FP32_CHOICE = {TRANSFORMER: ONNXRUNTIME, CONVOLUTIONAL: ONNXRUNTIME, TEXT: OPENVINO}


@dataclass(frozen=True)
class Host:
    """What this machine offers the runners."""

    cuda: bool  # ONNX Runtime runs on a GPU here
    openvino: bool  # the openvino package imports
    bf16: bool  # OpenVINO's CPU device lists BF16 among its optimisation capabilities


@dataclass(frozen=True)
class Plan:
    """How one model runs: ``backend`` at ``precision`` on ``device``; ``note`` says why that is
    not what the settings asked for (empty when it is)."""

    backend: str
    precision: str  # "fp32", "bf16" or "int8" ("fp16" files on CUDA keep their own label)
    device: str = "cpu"
    note: str = ""

    def __str__(self) -> str:
        runtime = "ONNX Runtime" if self.backend == ONNXRUNTIME else "OpenVINO"
        return f"{runtime} {self.device.upper()} {self.precision}"


def plan(backend: str, precision: str, host: Host, kind: str) -> Plan:
    """The runtime and precision for a model of ``kind`` (``TRANSFORMER``, ``CONVOLUTIONAL`` or
    ``TEXT``), given the ``IMMICH_CN_ML_BACKEND`` and ``IMMICH_CN_ML_PRECISION`` settings."""
    if host.cuda and backend != OPENVINO:
        # The GPU path is as it was (fp16 CLIP towers, fp32 for the rest): these settings are
        # about CPUs.
        note = "" if precision in ("auto", "fp32") else (
            f"IMMICH_CN_ML_PRECISION={precision} applies to CPUs; on CUDA the models run as before")
        return Plan(ONNXRUNTIME, "fp32", "cuda", note)
    if backend == OPENVINO and not host.openvino:
        return Plan(ONNXRUNTIME, "fp32", note=_NO_OPENVINO)
    if precision == "fp32":
        return Plan(OPENVINO if backend == OPENVINO else ONNXRUNTIME, "fp32")
    if precision == "int8":
        if kind == TRANSFORMER:
            note = "int8 runs on ONNX Runtime (OpenVINO ran these int8 towers slower)" if backend == OPENVINO else ""
            return Plan(ONNXRUNTIME, "int8", note=note)
        best = plan(backend, "auto", host, kind)
        why = "int8 applies to the CLIP towers only: dynamic int8 slows convolutional models and changes their answers"
        return Plan(best.backend, best.precision, note=why)
    if precision == "bf16":
        if not host.openvino:
            return Plan(ONNXRUNTIME, "fp32", note=f"bf16 runs on OpenVINO, and {_NO_OPENVINO}")
        if backend == ONNXRUNTIME:
            return Plan(ONNXRUNTIME, "fp32", note="bf16 runs on OpenVINO, and IMMICH_CN_ML_BACKEND=onnxruntime: fp32")
        if not host.bf16:
            fallback = _fp32(backend, host, kind)
            return Plan(fallback.backend, "fp32",
                        note="this CPU has no bf16 (OpenVINO's CPU device does not list BF16): fp32 instead")
        if kind == TEXT:
            return Plan(OPENVINO, "fp32", note="OCR stays at fp32: at bf16 it read text differently (spaces) "
                                               "on the OCR test images")
        return Plan(OPENVINO, "bf16")
    # auto
    if backend != ONNXRUNTIME and host.openvino and host.bf16 and kind != TEXT:
        return Plan(OPENVINO, "bf16")
    return _fp32(backend, host, kind)


def _fp32(backend: str, host: Host, kind: str) -> Plan:
    """The fp32 runtime for ``kind``: the one named by the setting, else ``FP32_CHOICE``'s."""
    if backend == OPENVINO:
        return Plan(OPENVINO, "fp32")
    if backend == ONNXRUNTIME or not host.openvino:
        return Plan(ONNXRUNTIME, "fp32")
    return Plan(FP32_CHOICE[kind], "fp32")


_NO_OPENVINO = "the openvino package is not installed: ONNX Runtime instead"
