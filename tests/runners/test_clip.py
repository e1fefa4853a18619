from __future__ import annotations

import pytest

import runners.clip as clip_runner


@pytest.mark.parametrize(
    ("setting", "providers", "expected"),
    [
        ("auto", "auto", False),  # this machine (and CI) has no CUDA: fp32 on CPU
        ("true", "auto", True),
        ("false", "auto", False),
    ],
)
def test_fp16_towers_run_on_cuda_only_unless_told(monkeypatch, setting, providers, expected):
    monkeypatch.setattr(clip_runner.settings, "clip_fp16", setting)
    monkeypatch.setattr(clip_runner.settings, "onnx_providers", providers)
    monkeypatch.setattr(clip_runner, "choose_providers", lambda _: ["CPUExecutionProvider"])
    assert clip_runner.use_fp16() is expected


def test_auto_picks_fp16_when_cuda_comes_first(monkeypatch):
    monkeypatch.setattr(clip_runner.settings, "clip_fp16", "auto")
    monkeypatch.setattr(clip_runner, "choose_providers", lambda _: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert clip_runner.use_fp16() is True
