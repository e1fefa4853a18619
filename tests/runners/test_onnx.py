from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from runners.onnx import choose_providers


def test_auto_prefers_cuda_and_falls_back_to_cpu():
    providers = choose_providers("auto")
    assert providers[-1] == "CPUExecutionProvider"
    assert ("CUDAExecutionProvider" in providers) == ("CUDAExecutionProvider" in ort.get_available_providers())


def test_named_providers_are_kept_in_order():
    assert choose_providers(" CPUExecutionProvider ") == ["CPUExecutionProvider"]


def test_a_provider_this_onnxruntime_lacks_is_a_clear_error():
    if "TensorrtExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has TensorRT")
    with pytest.raises(ValueError, match="onnxruntime-gpu"):
        choose_providers("TensorrtExecutionProvider,CPUExecutionProvider")


class FakeSession:
    """Stands in for ort.InferenceSession: records what it was asked, runs on ``runs_on``."""

    asked: list = []
    runs_on: list[str] = []

    def __init__(self, model, providers=None, **_):
        FakeSession.asked = providers

    def get_providers(self):
        return FakeSession.runs_on


@pytest.fixture
def gpu_build(monkeypatch):
    """An onnxruntime-gpu: CUDA listed whether or not a GPU can be used."""
    from runners import onnx as onnx_module

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", FakeSession)
    onnx_module.usable_providers.cache_clear()
    yield onnx_module
    onnx_module.usable_providers.cache_clear()


def test_cuda_that_cannot_run_falls_back_to_cpu_and_says_so(gpu_build, caplog):
    FakeSession.runs_on = ["CPUExecutionProvider"]  # what ORT does when no GPU is visible
    with caplog.at_level("WARNING", logger="runners.onnx"):
        assert gpu_build.usable_providers("auto", 1) == ("CPUExecutionProvider",)
    assert FakeSession.asked == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    assert "every model runs on the CPU" in caplog.text and "GPU 1" in caplog.text


def test_cuda_that_runs_is_kept(gpu_build, caplog):
    FakeSession.runs_on = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with caplog.at_level("WARNING", logger="runners.onnx"):
        assert gpu_build.usable_providers("auto", 0) == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert caplog.text == ""


def test_cpu_asked_for_needs_no_probe(gpu_build):
    FakeSession.asked = None
    assert gpu_build.usable_providers("CPUExecutionProvider", 0) == ("CPUExecutionProvider",)
    assert FakeSession.asked is None


def test_the_probe_graph_runs_on_this_onnxruntime():
    from runners import onnx as onnx_module

    onnx_module.usable_providers.cache_clear()
    assert onnx_module.usable_providers("auto", 0)[-1] == "CPUExecutionProvider"
    session = ort.InferenceSession(onnx_module._identity_graph(), providers=["CPUExecutionProvider"])
    assert session.run(None, {"x": np.array([2.0], np.float32)})[0].tolist() == [2.0]
