from __future__ import annotations

import pytest

import runners.clip as clip_runner


@pytest.mark.parametrize(
    ("setting", "first_provider", "expected"),
    [
        ("auto", "CPUExecutionProvider", False),  # fp32 on CPU, where fp16 is slower
        ("auto", "CUDAExecutionProvider", True),
        ("true", "CPUExecutionProvider", True),
        ("false", "CUDAExecutionProvider", False),
    ],
)
def test_fp16_towers_run_on_cuda_only_unless_told(monkeypatch, setting, first_provider, expected):
    monkeypatch.setattr(clip_runner.settings, "clip_fp16", setting)
    assert clip_runner.use_fp16(first_provider) is expected
