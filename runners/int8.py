"""CLIP towers in int8: ONNX Runtime's dynamic quantisation, made once per tower.

Dynamic quantisation stores every MatMul's weights as int8 and quantises activations on the
fly, per pass: nothing to calibrate, and the transformer towers run 2-3x faster wherever the
CPU has int8 dot products (VNNI). It suits matrix products only: the convolutional models
(faces, OCR) ran slower and read wrong text with it, so ``runners.precision`` never sends them
here. The tolerance it is held to (cos >= 0.99 to fp32, and a gallery's nearest neighbours
90 % the same) is tested in tests/runners/test_int8.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort

from runners import derived

log = logging.getLogger(__name__)


def maker() -> str:
    return f"onnxruntime {ort.__version__} quantize_dynamic QInt8 MatMul per-channel"


def quantise(source: Path, target: Path) -> None:
    """``source``'s MatMuls with int8 weights, written to ``target``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # MatMul only: the image tower's one convolution (its patch embedding) gains nothing, and
    # the text tower's embedding tables are looked up, not multiplied. A scale per output
    # channel keeps more of each weight matrix at no cost in speed (ViT-B-16's image tower: cos
    # 0.99983 against 0.99980 per tensor, 43 ms either way).
    quantize_dynamic(source, target, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                     per_channel=True)


def tower(path: Path, fallback_root: Path | None) -> derived.Made:
    """The int8 form of the CLIP tower at ``path``, made if need be."""
    return derived.derive(path, "int8", ".onnx", maker(), quantise, fallback_root)
