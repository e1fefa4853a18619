"""The stored file's batch axis says whether a batch comes out as its items would alone."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto
from onnx import helper as h

from runners.models.batch_axis import settle_batch_axis
from tests.support.fake_faces import build_detector, build_recognizer
from tests.support.fake_faces import random_blob as blob


def first_dim(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0].shape[0]


@pytest.mark.parametrize(
    ("options", "batches"),
    [
        ({}, True),  # stock SCRFD's shape: batch 1 declared, rows [B*n, C] in fact
        ({"batched": True}, True),  # [B, n, C]
        ({"batched": True, "fixed_batch_reshape": True}, False),  # a Reshape that names batch 1
    ],
    ids=["rows", "batch-axis", "fixed-reshape"],
)
def test_detectors_declare_a_free_axis_only_when_a_batch_splits_back(tmp_path, options, batches):
    source = build_detector(tmp_path / "det.onnx", **options)
    assert first_dim(source) == 1
    dest = tmp_path / "settled.onnx"
    assert settle_batch_axis(source, dest, blob((3, 640, 640))) is batches
    assert (first_dim(dest) != 1) is batches
    onnx.checker.check_model(onnx.load(str(dest)))
    if batches:  # the freed graph gives each image what it gives it alone
        session = ort.InferenceSession(str(dest), providers=["CPUExecutionProvider"])
        items = [blob((3, 640, 640))(seed) for seed in (5, 6, 7)]
        stacked = session.run(None, {"input.1": np.stack(items)})
        alone = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
        for index, item in enumerate(items):
            single = alone.run(None, {"input.1": item[None]})
            for got, want in zip(stacked, single):
                rows = got.shape[0] // 3
                part = got[index : index + 1] if got.ndim == 3 else got[index * rows : (index + 1) * rows]
                assert np.array_equal(part, want)


def test_a_free_axis_that_mixes_items_is_fixed_to_one(tmp_path):
    # Declares a free batch but sums over it: every item's output depends on the others.
    x = h.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = h.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    graph = h.make_graph([h.make_node("ReduceSum", ["x"], ["s"], keepdims=1, axes=[0]),
                          h.make_node("Add", ["x", "s"], ["y"])], "mixer", [x], [y])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 12)])
    model.ir_version = 8
    source = tmp_path / "mixer.onnx"
    onnx.save(model, str(source))
    dest = tmp_path / "settled.onnx"
    assert settle_batch_axis(source, dest, blob((4,))) is False
    assert first_dim(dest) == 1


def test_a_recogniser_with_a_free_batch_keeps_it(tmp_path):
    source = build_recognizer(tmp_path / "rec.onnx")
    dest = tmp_path / "settled.onnx"
    assert settle_batch_axis(source, dest, blob((3, 112, 112))) is True
    assert first_dim(dest) == "N"


def test_a_model_that_does_not_run_is_refused(tmp_path):
    source = build_recognizer(tmp_path / "rec.onnx")
    with pytest.raises(ValueError, match="does not run on an input of shape"):
        settle_batch_axis(source, tmp_path / "settled.onnx", blob((3, 64, 64)))
