"""Immich's ``clip`` task: ``visual`` embeds the image, ``textual`` the search text.

The answer is the embedding as a string holding a JSON array, which the Immich server stores
as it is in a pgvector column. The ``language`` option Immich sends with text is accepted;
Chinese-CLIP reads Chinese and English alike, so it changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Mapping

import numpy as np
from PIL import Image

from adapters.aio import to_thread
from adapters.errors import RequestError
from adapters.local import Inputs, LocalModels, runner_results
from adapters.vectors import vector_string
from runners.clip_steps import Tokenizer, image_pixels
from runners.models import store
from runners.models.clip import ClipFiles

log = logging.getLogger(__name__)


class ClipVisual:
    def __init__(self, runner: Any, files: ClipFiles, normalize: bool, reduced_decoding: bool = False) -> None:
        self.runner, self.files, self.normalize = runner, files, normalize
        self.job = store.reference(files.folder)  # how runner jobs name the model
        #: The side an image for this tower may be decoded down to (``adapters.images.load_pixels``).
        self.reduce_to = files.image_size if reduced_decoding else None

    async def predict(self, inputs: Inputs, options: Mapping[str, Any], previous: Any) -> str:
        if inputs.image is None:
            raise RequestError(400, "clip visual needs an image")
        return vector_string(await self.features(inputs.image), self.normalize, "CLIP")

    async def features(self, image: Image.Image) -> np.ndarray:
        """The image tower's output for ``image``, as cn-clip's ``encode_image`` gives it."""
        pixels = await to_thread(image_pixels, image, self.files.image_size, self.files.resize)
        [features] = runner_results(await self.runner.to_async.clip_image([(self.job, pixels)]))
        return features

    async def preload(self) -> None:
        await self.runner.to_async.load(models=[["clip_image", self.job]])


class ClipTextual:
    def __init__(self, runner: Any, files: ClipFiles, normalize: bool) -> None:
        self.runner, self.files, self.normalize = runner, files, normalize
        self.job = store.reference(files.folder)  # how runner jobs name the model
        self.tokenizer = Tokenizer(files.vocab)

    async def predict(self, inputs: Inputs, options: Mapping[str, Any], previous: Any) -> str:
        if inputs.text is None:
            raise RequestError(400, "clip textual needs text")
        return vector_string(await self.features(inputs.text), self.normalize, "CLIP")

    async def features(self, text: str) -> np.ndarray:
        """The text tower's output for ``text``, as cn-clip's ``encode_text`` gives it."""
        tokens = await asyncio.to_thread(self.tokenizer, text)  # long texts take a while
        [features] = runner_results(await self.runner.to_async.clip_text([(self.job, tokens)]))
        return features

    async def preload(self) -> None:
        await self.runner.to_async.load(models=[["clip_text", self.job]])


def clip_local_models(runner: Any, models: list[ClipFiles], normalize: bool, reduced_decoding: bool = False) -> LocalModels:
    """The router's entries for every imported model (a broken one is logged and left out);
    ``reduced_decoding``: JPEGs for the image towers may be decoded at a reduced size."""
    table: dict[tuple[str, str, str], Any] = {}
    for files in models:
        try:
            _ = files.image_size, files.dim, files.resize  # read now: a damaged preprocess.json fails here
            visual = ClipVisual(runner, files, normalize, reduced_decoding)
            textual = ClipTextual(runner, files, normalize)
        except Exception as exc:  # e.g. its vocabulary unreadable or gone
            log.error("CLIP model %s (%s) is not served: %s: %s", files.name, files.folder, type(exc).__name__, exc)
            continue
        table[("clip", "visual", files.name)] = visual
        table[("clip", "textual", files.name)] = textual
    return table
