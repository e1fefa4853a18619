"""runners.openvino: an ONNX model compiled by OpenVINO answers as ONNX Runtime's session does
(same outputs, same order, free batch axes), at fp32 and, where the CPU has it, at bf16."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from runners import cpu
from tests.support.fake_faces import build_detector, build_recognizer

openvino = pytest.importorskip("runners.openvino")

BF16 = "BF16" in (cpu.openvino_capabilities() or ())
needs_bf16 = pytest.mark.skipif(not BF16, reason="this CPU has no bf16 (OpenVINO's CPU device does not list BF16)")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ov-models")
    return {"detector": build_detector(folder / "det.onnx", batched=True),
            "recogniser": build_recognizer(folder / "rec.onnx")}


def reference(path: Path, batch: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: batch})


def blobs(count: int, side: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (count, 3, side, side)).astype(np.float32)


def test_fp32_gives_onnxruntimes_outputs_in_its_order(models, tmp_path):
    session = openvino.create_session(models["detector"], "fp32", 0, tmp_path)
    batch = blobs(1, 320)
    want = reference(models["detector"], batch)
    got = session.run(None, {session.get_inputs()[0].name: batch})
    assert [g.shape for g in got] == [w.shape for w in want]  # score_8 .. kps_32, in the graph's order
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)
    assert session.get_providers() == ["OpenVINO CPU fp32"]


def test_inputs_and_outputs_read_as_onnxruntime_describes_them(models, tmp_path):
    session = openvino.create_session(models["recogniser"], "fp32", 0, tmp_path)
    [value] = session.get_inputs()
    assert value.shape[1:] == [3, 112, 112] and isinstance(value.shape[0], str)  # a free batch axis
    assert len(session.get_outputs()) == 1
    names = [value.name for value in session.get_outputs()]
    assert session.run(names, {value.name: blobs(3, 112)})[0].shape == (3, 512)


def test_passes_from_many_threads_each_get_their_own_answer(models, tmp_path):
    session = openvino.create_session(models["recogniser"], "fp32", 0, tmp_path)
    name = session.get_inputs()[0].name
    inputs = [blobs(1, 112, seed) for seed in range(8)]
    alone = [session.run(None, {name: x})[0] for x in inputs]
    got: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        for _ in range(5):
            got[i] = session.run(None, {name: inputs[i]})[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i in range(8):
        np.testing.assert_array_equal(got[i], alone[i])


def test_outputs_are_copies_the_next_pass_does_not_overwrite(models, tmp_path):
    session = openvino.create_session(models["recogniser"], "fp32", 0, tmp_path)
    name = session.get_inputs()[0].name
    first = session.run(None, {name: blobs(1, 112, 1)})[0]
    kept = first.copy()
    session.run(None, {name: blobs(1, 112, 2)})
    np.testing.assert_array_equal(first, kept)


@needs_bf16
def test_bf16_runs_from_an_fp16_ir_made_once_and_stays_close_to_fp32(models, tmp_path):
    session = openvino.create_session(models["recogniser"], "bf16", 0, tmp_path)
    [ir] = list(tmp_path.rglob("rec.openvino-fp16.xml"))
    assert ir.with_suffix(".bin").exists()
    batch = blobs(4, 112)
    got = session.run(None, {session.get_inputs()[0].name: batch})[0]
    want = reference(models["recogniser"], batch)[0]
    cosines = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cosines.min() >= 0.999, cosines
    assert not np.array_equal(got, want)  # it is bf16 arithmetic, not fp32 under another name
    assert session.get_providers() == ["OpenVINO CPU bf16"]
    stamp = ir.stat().st_mtime_ns
    openvino.create_session(models["recogniser"], "bf16", 0, tmp_path)
    assert ir.stat().st_mtime_ns == stamp  # the second load reuses the IR


def test_threads_setting_reaches_openvino():
    assert openvino.compile_options("bf16", 3)["INFERENCE_NUM_THREADS"] == 3
    assert "INFERENCE_NUM_THREADS" not in openvino.compile_options("fp32", 0)  # 0: OpenVINO's own choice


@needs_bf16
def test_the_weight_files_mapping_is_let_go_after_the_first_pass(tmp_path):
    from tests.runners.test_memory import _mapped_rss
    from tests.support.fake_faces import build_recognizer as build

    session = openvino.create_session(build(tmp_path / "big.onnx", dim=16384), "bf16", 0, tmp_path)
    [weights] = [path.resolve() for path in tmp_path.rglob("big.openvino-fp16.bin")]
    name = session.get_inputs()[0].name
    first = session.run(None, {name: blobs(2, 112)})[0]
    assert _mapped_rss(weights) < 128  # KiB of a 520 KiB file: its pages went after the first pass
    np.testing.assert_array_equal(session.run(None, {name: blobs(2, 112)})[0], first)
