from __future__ import annotations

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
