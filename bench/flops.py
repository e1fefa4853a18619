"""Floating-point operations of one forward pass of an ONNX model, counted from its graph.

Convolutions, matrix products and Gemm carry nearly all of a vision or text model's work; each
counts 2 x its multiply-accumulates (output elements x the reduced length). Shapes come from
ONNX shape inference with the input's dynamic axes fixed, so one count holds for one input
shape (an OCR detector's work grows with the image it is given).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import shape_inference


def gflops(path: Path, input_shape: tuple[int, ...]) -> float:
    model = onnx.load(str(path), load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    first = next(value for value in model.graph.input if value.name not in initializers)
    for dim, size in zip(first.type.tensor_type.shape.dim, input_shape):
        dim.Clear()
        dim.dim_value = size
    del model.graph.value_info[:]
    for output in model.graph.output:  # stale output dims would contradict the new input's
        output.type.tensor_type.ClearField("shape")
    inferred = shape_inference.infer_shapes(model, data_prop=True)
    shapes = {value.name: [d.dim_value if d.HasField("dim_value") else None
                           for d in value.type.tensor_type.shape.dim]
              for value in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    shapes.update({init.name: list(init.dims) for init in model.graph.initializer})

    total = 0.0
    for node in inferred.graph.node:
        out = shapes.get(node.output[0])
        if not out or None in out:
            continue
        if node.op_type == "Conv":
            weight = shapes[node.input[1]]  # (C_out, C_in / groups, kh, kw)
            total += 2 * np.prod(out) * np.prod(weight[1:])
        elif node.op_type in ("MatMul", "Gemm"):
            a = shapes.get(node.input[0])
            if not a or a[-1] is None:
                continue
            transposed = node.op_type == "Gemm" and any(attr.name == "transA" and attr.i for attr in node.attribute)
            total += 2 * np.prod(out) * (a[-2] if transposed else a[-1])
    return float(total) / 1e9
