"""Which runtime and precision run a model: the settings, read against what this host can do.

Two CPU runtimes read the same ONNX files: ONNX Runtime (the exact fp32 answers, and CUDA) and
OpenVINO, whose CPU plugin runs a model in bf16 where the processor has bf16 instructions
(AMD Zen 4/5, Intel Xeon with AMX). Measured on this project's machine (bench/BENCHMARKS.md,
"Precision"), bf16 halves the passes of every model family at embeddings within cos 0.9999 of
fp32; forced to fp32, OpenVINO is no leaner and not reliably faster than ONNX Runtime. Dynamic
int8 (ONNX Runtime's) makes the transformer towers of CLIP 2-3x faster, and the convolutional
models slower and wrong, so int8 applies to CLIP towers alone.

``plan`` is a pure function of the settings, the host and the kind of model, so every rule
below is tested without the hardware it describes.
"""

from __future__ import annotations

from dataclasses import dataclass

ONNXRUNTIME, OPENVINO = "onnxruntime", "openvino"
#: Kinds of model. Dynamic int8 suits the CLIP towers (matrix products); the rest are conv
#: nets. OCR's two are conv nets too, but bf16 changes what they read: on the OCR test images
#: (25, real PP-OCRv5 mobile and PP-OCRv6 small weights) one of 25 gained or lost a space
#: between Chinese and digits, whichever of the two ran at bf16, where OpenVINO at fp32 read
#: every image exactly as ONNX Runtime does. So OCR stays at fp32, on OpenVINO, which runs it
#: faster (bench/BENCHMARKS.md, "Precision").
TRANSFORMER, CONVOLUTIONAL, TEXT = "transformer", "convolutional", "text"
#: The fp32 runtime ``auto`` picks on a CPU without bf16. ONNX Runtime: OpenVINO at fp32 was
#: within the machine's drift of it on the CLIP towers and face recogniser (bench/BENCHMARKS.md),
#: and holds the weights twice (its own layout beside the file's), where ONNX Runtime holds them
#: once.
FP32_BACKEND = ONNXRUNTIME


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
    """The runtime and precision for a model of ``kind`` (``TRANSFORMER`` or ``CONVOLUTIONAL``),
    given the ``IMMICH_CN_ML_BACKEND`` and ``IMMICH_CN_ML_PRECISION`` settings."""
    if host.cuda and backend != OPENVINO:
        # The GPU path is as it was (fp16 CLIP towers, fp32 for the rest): these settings are
        # about CPUs.
        note = "" if precision in ("auto", "fp32") else (
            f"IMMICH_CN_ML_PRECISION={precision} applies to CPUs; on CUDA the models run as before")
        return Plan(ONNXRUNTIME, "fp32", "cuda", note)
    if precision == "int8":
        if kind == TRANSFORMER:
            note = "int8 runs on ONNX Runtime (OpenVINO ran these int8 towers slower)" if backend == OPENVINO else ""
            return Plan(ONNXRUNTIME, "int8", note=note)
        best = _cpu_plan(backend, "auto", host)
        why = "int8 applies to the CLIP towers only: dynamic int8 slows convolutional models and changes their answers"
        return _keep_text(Plan(best.backend, best.precision, note=why), kind, precision)
    return _keep_text(_cpu_plan(backend, precision, host), kind, precision)


def _keep_text(chosen: Plan, kind: str, precision: str) -> Plan:
    """OCR at fp32 where the others run bf16 (on OpenVINO, which runs it faster at fp32 than
    ONNX Runtime does, and reads the same text)."""
    if kind != TEXT or chosen.precision != "bf16":
        return chosen
    note = chosen.note if precision == "auto" else (
        "OCR stays at fp32: at bf16 it read text differently (spaces) on the OCR test images")
    return Plan(OPENVINO, "fp32", note=note)


def _cpu_plan(backend: str, precision: str, host: Host) -> Plan:
    if precision == "auto":
        if backend != ONNXRUNTIME and host.openvino and host.bf16:
            return Plan(OPENVINO, "bf16")
        if backend == OPENVINO and not host.openvino:
            return Plan(ONNXRUNTIME, "fp32", note=_NO_OPENVINO)
        return Plan(OPENVINO if backend == OPENVINO else FP32_BACKEND, "fp32")
    if precision == "bf16":
        if not host.openvino:
            return Plan(ONNXRUNTIME, "fp32", note=f"bf16 runs on OpenVINO, and {_NO_OPENVINO}")
        if not host.bf16:
            return Plan(OPENVINO if backend == OPENVINO else ONNXRUNTIME, "fp32",
                        note="this CPU has no bf16 (OpenVINO's CPU device does not list BF16): fp32 instead")
        if backend == ONNXRUNTIME:
            return Plan(ONNXRUNTIME, "fp32", note="bf16 runs on OpenVINO, and IMMICH_CN_ML_BACKEND=onnxruntime: fp32")
        return Plan(OPENVINO, "bf16")
    # fp32: ONNX Runtime's exact answers, unless OpenVINO is asked for by name.
    if backend == OPENVINO:
        return Plan(OPENVINO, "fp32") if host.openvino else Plan(ONNXRUNTIME, "fp32", note=_NO_OPENVINO)
    return Plan(ONNXRUNTIME, "fp32")


_NO_OPENVINO = "the openvino package is not installed: ONNX Runtime instead"
