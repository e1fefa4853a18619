"""runners.engines: each model file gets the runtime and precision its plan names, the CLIP
towers their int8 form when asked, and a setting that cannot be had here is said once."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from onnx import helper as h
from onnx import numpy_helper as nh

from config.settings import Settings
from runners import cpu
from runners.engines import Engines, kind_of
from runners.precision import CONVOLUTIONAL, TEXT, TRANSFORMER
from tests.support.fake_faces import build_recognizer

BF16 = "BF16" in (cpu.openvino_capabilities() or ())


def matmul_tower(path: Path, seed: int = 0) -> Path:
    """A "tower" of two matrix products (what dynamic int8 quantises), named as a CLIP tower."""
    rng = np.random.default_rng(seed)
    weights = [nh.from_array(rng.normal(0, 0.1, shape).astype(np.float32), name)
               for name, shape in (("w1", (64, 128)), ("w2", (128, 32)))]
    nodes = [h.make_node("MatMul", ["x", "w1"], ["hidden"]), h.make_node("Relu", ["hidden"], ["relu"]),
             h.make_node("MatMul", ["relu", "w2"], ["y"])]
    graph = h.make_graph(nodes, "tower", [h.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
                         [h.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 32])], weights)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / "model.yaml").write_text("name: test\n")  # a version folder of the store
    onnx.save(model, str(path))
    return path


def engines(monkeypatch, tmp_path, **env: str) -> Engines:
    for name in ("BACKEND", "PRECISION"):
        monkeypatch.delenv(f"IMMICH_CN_ML_{name}", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(f"IMMICH_CN_ML_{name}", value)
    monkeypatch.setenv("IMMICH_CN_ML_DERIVED_FOLDER", str(tmp_path / "derived"))
    monkeypatch.setenv("IMMICH_CN_ML_ONNX_PROVIDERS", "CPUExecutionProvider")
    return Engines(Settings())


def run(session, batch: np.ndarray) -> np.ndarray:
    return session.run(None, {session.get_inputs()[0].name: batch})[0]


def test_clip_towers_are_transformers_ocr_apart_and_faces_convolutional():
    assert kind_of(Path("m/visual.onnx"), "clip_image") == kind_of(Path("m/textual.fp16.onnx"), "") == TRANSFORMER
    assert kind_of(Path("site/rec.onnx"), "ocr_recognize") == kind_of(Path("site/det.onnx"), "ocr_detect") == TEXT
    assert kind_of(Path("m/detector.onnx"), "face_detect") == CONVOLUTIONAL
    assert kind_of(Path("m/recognizer.onnx"), "face_embed") == CONVOLUTIONAL


def test_fp32_runs_on_onnxruntime_and_says_so(monkeypatch, tmp_path):
    chosen = engines(monkeypatch, tmp_path, PRECISION="fp32")
    path = build_recognizer(tmp_path / "rec.onnx")
    session = chosen.create(path)
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert chosen.labels == {path: "ONNX Runtime CPU fp32"}
    chosen.forget(path)
    assert chosen.labels == {}


@pytest.mark.skipif(not BF16, reason="this CPU has no bf16 (OpenVINO's CPU device does not list BF16)")
def test_auto_runs_openvino_bf16_where_the_cpu_has_it(monkeypatch, tmp_path):
    chosen = engines(monkeypatch, tmp_path)
    path = build_recognizer(tmp_path / "rec.onnx")
    assert chosen.create(path).get_providers() == ["OpenVINO CPU bf16"]
    assert chosen.labels[path] == "OpenVINO CPU bf16"
    described = chosen.describe()
    assert described["plans"] == {"clip": "OpenVINO CPU bf16", "faces": "OpenVINO CPU bf16",
                                  "ocr": "OpenVINO CPU fp32"}
    assert "avx512_bf16" in described["cpu_features"]


def test_int8_quantises_a_clip_tower_once_and_stays_close(monkeypatch, tmp_path):
    chosen = engines(monkeypatch, tmp_path, PRECISION="int8")
    path = matmul_tower(tmp_path / "store" / "clip" / "v1" / "visual.onnx")
    session = chosen.create(path)
    assert chosen.labels[path] == "ONNX Runtime CPU int8"
    int8 = path.parent / "derived" / "visual.int8.onnx"
    assert int8.exists() and int8.stat().st_size < path.stat().st_size / 2
    batch = np.random.default_rng(1).normal(0, 1, (8, 64)).astype(np.float32)
    fp32 = run(engines(monkeypatch, tmp_path, PRECISION="fp32").create(path), batch)
    got = run(session, batch)
    cosines = (got * fp32).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(fp32, axis=1)
    assert cosines.min() >= 0.99 and not np.array_equal(got, fp32)
    made = int8.stat().st_mtime_ns
    chosen.create(path)
    assert int8.stat().st_mtime_ns == made


def test_int8_leaves_other_models_alone_and_says_so_once(monkeypatch, tmp_path, caplog):
    chosen = engines(monkeypatch, tmp_path, PRECISION="int8")
    caplog.set_level(logging.WARNING, logger="runners.engines")
    for index in range(2):
        path = build_recognizer(tmp_path / f"rec{index}.onnx")
        chosen.create(path)
        assert chosen.labels[path] == ("OpenVINO CPU bf16" if BF16 else "ONNX Runtime CPU fp32")
    warnings = [r.getMessage() for r in caplog.records if "CLIP towers only" in r.getMessage()]
    assert len(warnings) == 1, warnings


def test_bf16_on_onnxruntime_by_name_is_said_and_runs_fp32(monkeypatch, tmp_path, caplog):
    chosen = engines(monkeypatch, tmp_path, PRECISION="bf16", BACKEND="onnxruntime")
    caplog.set_level(logging.WARNING, logger="runners.engines")
    path = build_recognizer(tmp_path / "rec.onnx")
    chosen.create(path)
    assert chosen.labels[path] == "ONNX Runtime CPU fp32"
    assert any("bf16 runs on OpenVINO" in r.getMessage() for r in caplog.records)


def test_an_unknown_setting_is_refused_at_start(monkeypatch):
    monkeypatch.setenv("IMMICH_CN_ML_PRECISION", "fp8")
    with pytest.raises(ValueError, match="IMMICH_CN_ML_PRECISION"):
        Settings()


def test_openvino_is_not_even_imported_where_no_model_may_run_on_it(monkeypatch, tmp_path):
    from runners import engines as engines_module

    asked = []
    monkeypatch.setattr(engines_module.cpu, "openvino_capabilities", lambda: asked.append(1) or ("BF16",))
    assert engines(monkeypatch, tmp_path, BACKEND="onnxruntime").host.openvino is False
    monkeypatch.setattr(engines_module, "usable_providers", lambda *_: ("CUDAExecutionProvider", "CPUExecutionProvider"))
    assert engines(monkeypatch, tmp_path).host == engines_module.Host(cuda=True, openvino=False, bf16=False)
    assert asked == []
    assert engines(monkeypatch, tmp_path, BACKEND="openvino").host.openvino is True  # asked for by name
