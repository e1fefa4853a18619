"""Asking every runner service of the layout at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from adapters.runner_control import Runner, RunnerControl


class FakeRunner:
    def __init__(self, device: str, idle: list[str], hangs: bool = False, fails: bool = False,
                 service: str | None = None) -> None:
        self.device, self.idle, self.asked, self.hangs, self.fails = device, idle, [], hangs, fails
        self.service = service  # the name it gives itself (None: an older runner, which gives none)
        self.to_async = self

    async def about(self) -> dict[str, Any]:
        if self.hangs:
            await asyncio.sleep(3600)
        if self.fails:
            raise ConnectionError("runner down")
        about = {"device": self.device, "loaded": []}
        return {**about, "service": self.service} if self.service else about

    async def unload_idle(self, idle_seconds: float) -> list[str]:
        self.asked.append(idle_seconds)
        return list(self.idle)


def control(*fakes: FakeRunner, timeout: float = 5.0) -> RunnerControl:
    """The fakes as runner services named r0, r1 ..., the second one elsewhere (at a URL)."""
    return RunnerControl([Runner(f"r{i}", "http://gpu-box:3003" if i == 1 else None, fake)
                          for i, fake in enumerate(fakes)], timeout=timeout)


def test_the_device_is_cuda_when_any_runner_runs_on_a_gpu():
    assert asyncio.run(control(FakeRunner("cpu", []), FakeRunner("cpu", [])).device()) == "cpu"
    assert asyncio.run(control(FakeRunner("cpu", []), FakeRunner("cuda", [])).device()) == "cuda"
    assert asyncio.run(control().device()) == "cpu"


def test_every_runner_unloads_its_idle_models():
    runners = [FakeRunner("cpu", ["/m/clip/textual.onnx"]), FakeRunner("cpu", []), FakeRunner("cpu", ["/m/ocr/det.onnx"])]
    assert asyncio.run(control(*runners).unload_idle(5.0)) == ["/m/clip/textual.onnx", "/m/ocr/det.onnx"]
    assert [runner.asked for runner in runners] == [[5.0], [5.0], [5.0]]


def test_a_runner_that_hangs_or_fails_does_not_hide_the_others():
    runners = control(FakeRunner("cpu", [], hangs=True), FakeRunner("cuda", []), FakeRunner("cpu", [], fails=True),
                      timeout=0.2)
    about = asyncio.run(runners.about())
    assert about["device"] == "cuda"
    # Each runner: where it runs and whether it answered, for the status page.
    assert about["runners"] == [
        {"name": "r0", "url": None, "answers": False, "device": None},
        {"name": "r1", "url": "http://gpu-box:3003", "answers": True, "device": "cuda"},
        {"name": "r2", "url": None, "answers": False, "device": None},
    ]


def test_when_no_runner_answers_the_failure_is_raised():
    runners = control(FakeRunner("cpu", [], hangs=True), FakeRunner("cpu", [], fails=True), timeout=0.2)
    with pytest.raises((ConnectionError, asyncio.TimeoutError)):
        asyncio.run(runners.device())
    assert [runner["answers"] for runner in runners.silent()] == [False, False]
    assert runners.describe() == "r0 here, r1 at http://gpu-box:3003"


def test_a_url_where_another_runner_answers_is_shown_as_the_wrong_one():
    # RUNNER_URL__FACES copied from the CLIP runner's: r1's URL answers as "clip-runner".
    runners = control(FakeRunner("cpu", [], service="r0"), FakeRunner("cuda", [], service="clip-runner"))
    about = asyncio.run(runners.about())
    assert about["runners"] == [
        {"name": "r0", "url": None, "answers": True, "device": "cpu"},
        {"name": "r1", "url": "http://gpu-box:3003", "answers": False, "device": None,
         "problem": "clip-runner answers at this URL, not r1: is it the right runner's URL?"},
    ]
    assert about["device"] == "cpu"  # what answers there is no runner of this entry's
