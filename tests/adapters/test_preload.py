"""Preloads: every named model that is served here is loaded before the service says ready."""

from __future__ import annotations

import asyncio
import itertools

from bentoml.exceptions import InternalServerError, ServiceUnavailable

import adapters.preload as preload_module
from adapters.preload import Readiness, preload
from adapters.routing import Router
from adapters.runner_link import RunnerLink


class Model:
    def __init__(self, failures: list[Exception] | None = None) -> None:
        self.loads = 0
        self.failures = list(failures or [])

    async def predict(self, inputs, options, previous):  # pragma: no cover - never run here
        raise AssertionError

    async def preload(self) -> None:
        self.loads += 1
        if self.failures:
            raise self.failures.pop(0)


def run(router: Router, preloads) -> Readiness:
    readiness = Readiness()
    assert not readiness.ready
    asyncio.run(preload(router, preloads, readiness))
    return readiness


def test_named_models_load_and_the_service_becomes_ready():
    visual, det, rec = Model(), Model(), Model()
    router = Router({("clip", "visual", "cn-clip/ViT-B-16__openai"): visual,
                     ("ocr", "detection", "PP-OCRv5_mobile"): det, ("ocr", "recognition", "PP-OCRv5_mobile"): rec}, {})
    readiness = run(router, {("clip", "visual"): ["cn-clip/ViT-B-16__openai"],
                             ("ocr", "detection"): ["immich-app/PP-OCRv5_mobile"]})
    assert readiness.ready and readiness.failed == []
    assert (visual.loads, det.loads, rec.loads) == (1, 1, 0)


def test_no_preloads_is_ready_at_once():
    assert run(Router({}, {}), {}).ready


def test_a_model_not_served_here_is_left_to_the_upstream(caplog):
    readiness = run(Router({}, {}), {("clip", "visual"): ["ViT-B-32__openai"]})
    assert readiness.ready
    assert "not served here" in caplog.text


def test_a_runner_still_starting_is_asked_again(monkeypatch):
    monkeypatch.setattr(preload_module.asyncio, "sleep", _no_sleep)
    model = Model([ServiceUnavailable("not ready"), ConnectionRefusedError("refused")])
    readiness = run(Router({("ocr", "detection", "m"): model}, {}), {("ocr", "detection"): ["m"]})
    assert readiness.ready and model.loads == 3


def test_a_runner_elsewhere_is_waited_for_past_the_local_wait(monkeypatch, caplog):
    # The local wait is over at once (a clock that jumps): a runner of this server that is not
    # up is given up on, while one elsewhere that comes up after the tenth try still gets its
    # preload. Both in one layout (split, one family's runner elsewhere).
    clock = itertools.count(0, 1000)
    monkeypatch.setattr(preload_module.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(preload_module.asyncio, "sleep", _no_sleep)
    down = [ConnectionRefusedError("refused")] * 10
    here, elsewhere = Model(down), Model(down)
    here.runner, elsewhere.runner = RunnerLink(None), RunnerLink(None, elsewhere=True)
    router = Router({("ocr", "detection", "m"): here, ("clip", "visual", "c"): elsewhere}, {})
    readiness = run(router, {("ocr", "detection"): ["m"], ("clip", "visual"): ["c"]})
    assert here.loads == 1 and elsewhere.loads == 11
    assert not readiness.ready and len(readiness.failed) == 1 and "ocr" in readiness.failed[0]
    assert "waits for its runner elsewhere, until it answers" in caplog.text


def test_a_model_that_fails_to_load_keeps_the_service_unready(caplog):
    model = Model([InternalServerError("InvalidProtobuf: broken.onnx")])
    readiness = run(Router({("ocr", "detection", "m"): model}, {}), {("ocr", "detection"): ["m"]})
    assert readiness.done and not readiness.ready
    assert "broken.onnx" in readiness.failed[0] and "broken.onnx" in caplog.text
    assert model.loads == 1


async def _no_sleep(_: float) -> None:
    return None


def test_preloading_that_breaks_off_leaves_the_service_not_ready():
    class Broken(Router):
        def resolve(self, entry):
            raise KeyError("routing table not built")

    readiness = run(Broken({}, {}), {("clip", "visual"): ["cn-clip/ViT-B-16__openai"]})
    assert not readiness.ready
    assert readiness.failed == ["preloading stopped: KeyError: 'routing table not built'"]


def test_preloading_cancelled_never_says_ready():
    started = asyncio.Event()

    class Slow(Model):
        async def preload(self) -> None:
            started.set()
            await asyncio.sleep(60)

    async def main() -> Readiness:
        readiness = Readiness()
        router = Router({("clip", "visual", "cn-clip/ViT-B-16__openai"): Slow()}, {})
        task = asyncio.ensure_future(preload(router, {("clip", "visual"): ["cn-clip/ViT-B-16__openai"]}, readiness))
        await started.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return readiness

    assert not asyncio.run(main()).done
