"""The seam between the HTTP contract and the model runners.

A ``LocalModel`` serves one (task, type) of one model name inside the entry service. It does
the pre- and post-processing and calls a runner (a BentoML dependency) for the forward pass.
It never sees HTTP: it gets decoded inputs and the entry's options, and returns the value that
goes under the task's key in Immich's JSON answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from PIL import Image

from adapters.errors import RequestError
from runners.batching import Failure

#: (task, type, model name) as a local model is registered, e.g. ("ocr", "detection", "PP-OCRv5_mobile").
ModelKey = tuple[str, str, str]


@dataclass(frozen=True)
class Inputs:
    """What a request carries: a decoded image or a text (Immich sends exactly one)."""

    image: Image.Image | None = None
    text: str | None = None


@dataclass(frozen=True)
class TaskOutput:
    """A task's answer with top-level keys beside its own.

    Most answers are just the value under the task's key; the seed fork's older OCR answer
    also has a top-level ``result``.
    """

    value: Any
    extra: Mapping[str, Any]


class LocalModel(Protocol):
    async def predict(self, inputs: Inputs, options: Mapping[str, Any], previous: Any) -> Any:
        """Run on ``inputs``. ``previous`` is the output of the type this one depends on
        (see ``adapters.pipeline.DEPENDS_ON``), or None for a type that depends on nothing."""
        ...

    # A model may also have ``async def preload(self) -> None``, which has its runner load its
    # files now (``adapters.preload``); one without it loads on first use only.


LocalModels = Mapping[ModelKey, LocalModel]


def runner_results(results: list[Any]) -> list[Any]:
    """A runner's results for one request, or the 500 its failure deserves."""
    for result in results:
        if isinstance(result, Failure):
            raise RequestError(500, f"the model runner failed: {result.message}")
    return results
