"""runners.precision: which runtime and precision each setting gives, on every kind of host."""

from __future__ import annotations

import pytest

from runners.precision import (
    CONVOLUTIONAL, FP32_CHOICE, ONNXRUNTIME, OPENVINO, TEXT, TRANSFORMER, Host, Plan, plan,
)

BF16_CPU = Host(cuda=False, openvino=True, bf16=True)
OLDER_CPU = Host(cuda=False, openvino=True, bf16=False)
NO_OPENVINO = Host(cuda=False, openvino=False, bf16=False)
GPU = Host(cuda=True, openvino=True, bf16=True)


@pytest.mark.parametrize("kind", [TRANSFORMER, CONVOLUTIONAL])
def test_auto_is_openvino_bf16_where_the_cpu_has_it(kind):
    assert plan("auto", "auto", BF16_CPU, kind) == Plan(OPENVINO, "bf16")


@pytest.mark.parametrize("kind", [TRANSFORMER, CONVOLUTIONAL, TEXT])
def test_auto_elsewhere_is_the_faster_fp32_backend_for_the_kind_without_a_warning(kind):
    assert plan("auto", "auto", OLDER_CPU, kind) == Plan(FP32_CHOICE[kind], "fp32")
    assert plan("auto", "auto", NO_OPENVINO, kind) == Plan(ONNXRUNTIME, "fp32")


def test_ocr_runs_on_openvino_at_fp32_the_clip_and_face_models_on_onnxruntime_at_fp32():
    assert FP32_CHOICE == {TEXT: OPENVINO, TRANSFORMER: ONNXRUNTIME, CONVOLUTIONAL: ONNXRUNTIME}


@pytest.mark.parametrize("host", [BF16_CPU, OLDER_CPU, NO_OPENVINO])
def test_fp32_is_onnxruntime_exactly_as_before(host):
    assert plan("auto", "fp32", host, TRANSFORMER) == Plan(ONNXRUNTIME, "fp32")
    assert plan("onnxruntime", "fp32", host, CONVOLUTIONAL) == Plan(ONNXRUNTIME, "fp32")


def test_openvino_by_name_runs_fp32_on_openvino():
    assert plan("openvino", "fp32", OLDER_CPU, CONVOLUTIONAL) == Plan(OPENVINO, "fp32")
    assert plan("openvino", "auto", OLDER_CPU, CONVOLUTIONAL) == Plan(OPENVINO, "fp32")


def test_onnxruntime_by_name_keeps_auto_at_fp32():
    assert plan("onnxruntime", "auto", BF16_CPU, TRANSFORMER) == Plan(ONNXRUNTIME, "fp32")


def test_bf16_on_a_cpu_without_it_says_so_and_runs_fp32():
    got = plan("auto", "bf16", OLDER_CPU, TRANSFORMER)
    assert (got.backend, got.precision) == (ONNXRUNTIME, "fp32") and "no bf16" in got.note
    assert plan("auto", "bf16", OLDER_CPU, TEXT).backend == OPENVINO


def test_bf16_without_openvino_installed_says_so():
    got = plan("auto", "bf16", NO_OPENVINO, CONVOLUTIONAL)
    assert (got.backend, got.precision) == (ONNXRUNTIME, "fp32") and "openvino package is not installed" in got.note


def test_bf16_with_onnxruntime_by_name_says_it_needs_openvino():
    got = plan("onnxruntime", "bf16", BF16_CPU, CONVOLUTIONAL)
    assert (got.backend, got.precision) == (ONNXRUNTIME, "fp32") and "bf16 runs on OpenVINO" in got.note


def test_openvino_by_name_but_not_installed_falls_back_with_a_note():
    got = plan("openvino", "fp32", NO_OPENVINO, CONVOLUTIONAL)
    assert (got.backend, got.precision) == (ONNXRUNTIME, "fp32") and got.note


def test_int8_quantises_the_clip_towers_on_onnxruntime():
    assert plan("auto", "int8", BF16_CPU, TRANSFORMER) == Plan(ONNXRUNTIME, "int8")
    assert plan("auto", "int8", OLDER_CPU, TRANSFORMER) == Plan(ONNXRUNTIME, "int8")
    assert "ONNX Runtime" in plan("openvino", "int8", BF16_CPU, TRANSFORMER).note


def test_int8_leaves_convolutional_models_at_the_best_precision_and_says_so():
    on_bf16 = plan("auto", "int8", BF16_CPU, CONVOLUTIONAL)
    assert (on_bf16.backend, on_bf16.precision) == (OPENVINO, "bf16") and "CLIP towers only" in on_bf16.note
    elsewhere = plan("auto", "int8", OLDER_CPU, CONVOLUTIONAL)
    assert (elsewhere.backend, elsewhere.precision) == (ONNXRUNTIME, "fp32") and elsewhere.note


@pytest.mark.parametrize("precision", ["auto", "fp32"])
def test_cuda_runs_as_before_without_a_note(precision):
    assert plan("auto", precision, GPU, TRANSFORMER) == Plan(ONNXRUNTIME, "fp32", "cuda")


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_cpu_precisions_on_cuda_say_they_apply_to_cpus(precision):
    got = plan("auto", precision, GPU, CONVOLUTIONAL)
    assert (got.backend, got.device) == (ONNXRUNTIME, "cuda") and "applies to CPUs" in got.note


def test_openvino_by_name_on_a_gpu_host_runs_on_the_cpu():
    assert plan("openvino", "auto", GPU, CONVOLUTIONAL) == Plan(OPENVINO, "bf16")


def test_plans_read_as_the_log_says_them():
    assert str(Plan(OPENVINO, "bf16")) == "OpenVINO CPU bf16"
    assert str(Plan(ONNXRUNTIME, "fp32", "cuda")) == "ONNX Runtime CUDA fp32"


def test_ocr_stays_at_fp32_on_openvino_where_the_rest_run_bf16():
    assert plan("auto", "auto", BF16_CPU, TEXT) == Plan(OPENVINO, "fp32")  # auto: no warning
    explicit = plan("auto", "bf16", BF16_CPU, TEXT)
    assert (explicit.backend, explicit.precision) == (OPENVINO, "fp32") and "OCR stays at fp32" in explicit.note
    assert plan("auto", "int8", BF16_CPU, TEXT).precision == "fp32"
    assert plan("auto", "fp32", BF16_CPU, TEXT) == Plan(ONNXRUNTIME, "fp32")
    assert plan("auto", "auto", OLDER_CPU, TEXT) == Plan(OPENVINO, "fp32")
    assert plan("onnxruntime", "auto", BF16_CPU, TEXT) == Plan(ONNXRUNTIME, "fp32")
