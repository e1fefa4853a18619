"""Asking every runner service of the layout at once."""

from __future__ import annotations

import asyncio
from typing import Any

from adapters.runner_control import RunnerControl


class FakeRunner:
    def __init__(self, device: str, idle: list[str]) -> None:
        self.device, self.idle, self.asked = device, idle, []
        self.to_async = self

    async def about(self) -> dict[str, Any]:
        return {"device": self.device, "loaded": []}

    async def unload_idle(self, idle_seconds: float) -> list[str]:
        self.asked.append(idle_seconds)
        return list(self.idle)


def test_the_device_is_cuda_when_any_runner_runs_on_a_gpu():
    assert asyncio.run(RunnerControl([FakeRunner("cpu", []), FakeRunner("cpu", [])]).device()) == "cpu"
    assert asyncio.run(RunnerControl([FakeRunner("cpu", []), FakeRunner("cuda", [])]).device()) == "cuda"
    assert asyncio.run(RunnerControl([]).device()) == "cpu"


def test_every_runner_unloads_its_idle_models():
    runners = [FakeRunner("cpu", ["/m/clip/textual.onnx"]), FakeRunner("cpu", []), FakeRunner("cpu", ["/m/ocr/det.onnx"])]
    assert asyncio.run(RunnerControl(runners).unload_idle(5.0)) == ["/m/clip/textual.onnx", "/m/ocr/det.onnx"]
    assert [runner.asked for runner in runners] == [[5.0], [5.0], [5.0]]
