from __future__ import annotations

import asyncio

import pytest

from adapters.entries import Entry
from adapters.errors import RequestError
from adapters.local import Inputs, TaskOutput
from adapters.pipeline import run_local


class Recorder:
    """A local model that returns a fixed value and records what it was given."""

    def __init__(self, output, calls: list):
        self.output, self.calls = output, calls

    async def predict(self, inputs, options, previous):
        self.calls.append((self.output, dict(options), previous))
        return self.output


def test_dependent_type_runs_on_its_dependency_output():
    calls: list = []
    steps = [
        # Listed dependent-first: order comes from DEPENDS_ON, not from the request.
        (Entry("ocr", "recognition", "m", {"minScore": 0.8}), Recorder("texts", calls)),
        (Entry("ocr", "detection", "m", {"minScore": 0.5}), Recorder("boxes", calls)),
    ]
    response = asyncio.run(run_local(steps, Inputs(text="x")))
    assert response == {"ocr": "texts"}
    assert calls == [("boxes", {"minScore": 0.5}, None), ("texts", {"minScore": 0.8}, "boxes")]


def test_independent_tasks_each_answer_under_their_own_key():
    calls: list = []
    steps = [
        (Entry("clip", "visual", "a"), Recorder("vector", calls)),
        (Entry("facial-recognition", "detection", "b"), Recorder("faces", calls)),
        (Entry("facial-recognition", "recognition", "b"), Recorder("embeddings", calls)),
    ]
    assert asyncio.run(run_local(steps, Inputs(text="x"))) == {"clip": "vector", "facial-recognition": "embeddings"}


def test_missing_dependency_is_400():
    with pytest.raises(RequestError) as caught:
        asyncio.run(run_local([(Entry("facial-recognition", "recognition", "m"), Recorder("t", []))], Inputs(text="x")))
    assert caught.value.status == 400


def test_ocr_recognition_may_come_alone_and_runs_without_previous_output():
    calls: list = []
    response = asyncio.run(run_local([(Entry("ocr", "recognition", "m"), Recorder("texts", calls))], Inputs(text="x")))
    assert response == {"ocr": "texts"}
    assert calls == [("texts", {}, None)]


def test_task_output_adds_top_level_keys():
    class Legacy:
        async def predict(self, inputs, options, previous):
            return TaskOutput("a b", {"result": {"texts": ["a", "b"]}})

    response = asyncio.run(run_local([(Entry("ocr", "recognition", "m"), Legacy())], Inputs(text="x")))
    assert response == {"ocr": "a b", "result": {"texts": ["a", "b"]}}
