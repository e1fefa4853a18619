"""An entry service with a fake local runner, to drive the runner seam over real HTTP.

It is the real ``adapters.app`` with the real settings, plus one test double: ``FakeFaceRunner``,
a BentoML service with a batchable API standing in for a model runner (which can also fail as
real runners fail, see ``BUSY_WIDTH``), behind local models for
``facial-recognition`` detection and recognition under the name ``fake-faces``. Detection
"finds" one face covering the image; recognition turns each face into a short embedding made
from its box, so a test can tell that recognition ran on detection's output.
"""

from __future__ import annotations

import json
import os
from http import HTTPStatus
from typing import Any, Mapping

import bentoml
from bentoml.exceptions import BentoMLException, ServiceUnavailable

from adapters.app import create_app
from adapters.errors import RequestError
from adapters.local import Inputs, LocalModels
from adapters.runner_link import RunnerLink
from config.bento import entry_service_config
from config.logs import configure_logging
from config.settings import get_settings

MODEL = "fake-faces"


#: Image widths at which the fake runner fails as a real one can: busy (its 503), too slow (a
#: 504), or its process gone (the connection drops; BentoML's arbiter starts it again).
BUSY_WIDTH, SLOW_WIDTH, DYING_WIDTH = 503, 504, 599


@bentoml.service(name="fake-face-runner")
class FakeFaceRunner:
    @bentoml.api(batchable=True, max_batch_size=8, max_latency_ms=1000)
    def embed(self, boxes: list[list[int]]) -> list[list[float]]:
        widths = {box[2] - box[0] for box in boxes}
        if BUSY_WIDTH in widths:
            raise ServiceUnavailable("the fake runner is busy")
        if SLOW_WIDTH in widths:
            raise BentoMLException("the fake runner took too long", error_code=HTTPStatus.GATEWAY_TIMEOUT)
        if DYING_WIDTH in widths:
            os._exit(1)
        return [[float(sum(box)), float(box[2] - box[0])] for box in boxes]


class FakeDetection:
    async def predict(self, inputs: Inputs, options: Mapping[str, Any], previous: Any) -> Any:
        if inputs.image is None:
            raise RequestError(400, "face detection needs an image")
        return [{"x1": 0, "y1": 0, "x2": inputs.image.width, "y2": inputs.image.height, "score": options.get("minScore", 1.0)}]


class FakeRecognition:
    def __init__(self, runner: Any) -> None:
        self.runner = runner

    async def predict(self, inputs: Inputs, options: Mapping[str, Any], previous: Any) -> Any:
        boxes = [[face["x1"], face["y1"], face["x2"], face["y2"]] for face in previous]
        embeddings = await self.runner.to_async.embed(boxes)
        return [
            {
                "boundingBox": {k: face[k] for k in ("x1", "y1", "x2", "y2")},
                "embedding": json.dumps(list(embedding)),
                "score": face["score"],
            }
            for face, embedding in zip(previous, embeddings)
        ]


settings = get_settings()
configure_logging(settings)


def local_models() -> LocalModels:
    service = bentoml.get_current_service()
    return {
        ("facial-recognition", "detection", MODEL): FakeDetection(),
        ("facial-recognition", "recognition", MODEL): FakeRecognition(RunnerLink(service.faces)),
    }


app = create_app(settings, local_models)


@bentoml.service(**{**entry_service_config(settings), "name": "fake-entry"})
@bentoml.asgi_app(app, path="/")
class FakeEntry:
    faces = bentoml.depends(FakeFaceRunner)
