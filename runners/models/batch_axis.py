"""Make a model's declared batch axis tell the truth, so a runner knows whether it may stack.

Runners stack the inputs of several requests into one forward pass only when a model's first
input declares a free batch axis; a model whose first input declares 1 runs one item at a
time (``runners.onnx.takes_batches``). Exports are not always honest about this: the stock
SCRFD detectors declare batch 1 though their graph may well take more, and a graph that
declares a free axis may still mix its items up (a Reshape that names batch 1).

So at import the axis is freed, and a batch of two different inputs is run against two single
passes. The stored file declares a free axis only if each item of the batch came out as it
did alone; otherwise it declares 1.

The split (``runners.batching.unstack``) assumes every item has the same number of rows in
each output, which holds for the models this serves (SCRFD: one row per anchor; ArcFace: one
per face). A graph whose row count depends on its input (NMS inside it) is not for this.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort

from runners.batching import unstack

log = logging.getLogger(__name__)

# Batched and single passes may differ by float rounding (other kernels, other blocking);
# items mixed up differ by far more.
ATOL, RTOL = 1e-4, 1e-3


def settle_batch_axis(source: Path, dest: Path, sample: Callable[[int], np.ndarray]) -> bool:
    """Write ``source`` to ``dest`` with an honest batch axis; True if that axis is free.

    ``sample(seed)`` gives one input item (no batch axis). Raises ``ValueError`` when the model
    does not even run on one item.
    """
    items = [sample(0), sample(1)]
    original = onnx.load(str(source))
    try:
        alone = _session(original.SerializeToString())
        singles = [_run(alone, item[None]) for item in items]
    except Exception as exc:  # a model that cannot run on one input is no model to store
        raise ValueError(f"{source.name} does not run on an input of shape {[1, *items[0].shape]}: {exc}") from exc

    dims = _first_input(original).type.tensor_type.shape.dim
    if not dims:
        raise ValueError(f"{source.name} does not declare its input's shape")
    already_free = not dims[0].HasField("dim_value")
    free = onnx.ModelProto()
    free.CopyFrom(original)
    _with_first_dim(free, None)
    try:
        stacked = unstack(_run(_session(free.SerializeToString()), np.stack(items)), len(items))
        same = all(
            len(got) == len(want) and all(g.shape == w.shape and np.allclose(g, w, atol=ATOL, rtol=RTOL)
                                          for g, w in zip(got, want))
            for got, want in zip(stacked, singles)
        )
    except Exception as exc:  # the graph refuses a batch of two: it takes one at a time
        log.info("%s does not take a batch of inputs (%s: %s)", source.name, type(exc).__name__, exc)
        same = False
    if same and already_free:
        shutil.copyfile(source, dest)  # honest as it was: store it unchanged
    else:
        onnx.save(free if same else _with_first_dim(original, 1), str(dest))
    return same


def _with_first_dim(model: onnx.ModelProto, size: int | None) -> onnx.ModelProto:
    """The model with its first input's batch axis set to ``size``, or freed with None.

    Freeing also frees every output's first axis, which carries the batch (stacked, or
    flattened into rows), and drops the shapes inferred inside the graph for batch 1.
    """
    graph = model.graph
    first = _first_input(model)
    if size is not None:
        first.type.tensor_type.shape.dim[0].dim_value = size
        return model
    first.type.tensor_type.shape.dim[0].dim_param = "batch"
    for output in graph.output:
        dims = output.type.tensor_type.shape.dim
        if dims:
            dims[0].dim_param = f"{output.name}_rows"
    del graph.value_info[:]
    return model


def _first_input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    initializers = {init.name for init in model.graph.initializer}  # old exports list weights as inputs
    return next(value for value in model.graph.input if value.name not in initializers)


def _session(model: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"])


def _run(session: ort.InferenceSession, batch: np.ndarray) -> list[np.ndarray]:
    return session.run(None, {session.get_inputs()[0].name: batch})
