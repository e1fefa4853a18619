"""The BentoML model store: imported models live there, so `bentoml build` can package them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import bentoml
from bentoml.exceptions import NotFound


def store_name(family: str, model_name: str) -> str:
    """A BentoML model name for ``family``/``model_name`` (lower case, [a-z0-9._-])."""
    return f"{family}-" + re.sub(r"[^a-z0-9._-]+", "-", model_name.lower()).strip("-.")


def get(family: str, model_name: str) -> bentoml.Model | None:
    """The newest stored version, or None."""
    try:
        return bentoml.models.get(f"{store_name(family, model_name)}:latest")
    except NotFound:
        return None


def find(family: str, model_name: str) -> Path | None:
    """The folder of the newest stored version, or None."""
    model = get(family, model_name)
    return None if model is None else Path(model.path)


def newest(family: str) -> list[tuple[str, str]]:
    """(model name, tag) of the newest stored version of every model of ``family``."""
    found: dict[str, tuple[str, str]] = {}
    for model in sorted(bentoml.models.list(), key=lambda m: m.info.creation_time):
        labels = model.info.labels
        if labels.get("family") == family and "model" in labels:
            found[model.tag.name] = (model.info.metadata.get("name", labels["model"]), str(model.tag))
    return sorted(found.values())


def declare_models(service_class: type, family: str) -> None:
    """Make every stored model of ``family`` a model of the BentoML service class (call before
    ``@bentoml.service``), so that `bentoml build` packs them into the Bento and
    `bentoml containerize` into the image."""
    for index, (_, tag) in enumerate(newest(family)):
        setattr(service_class, f"stored_{family}_model_{index}", bentoml.models.BentoModel(tag))


def save(family: str, model_name: str, files: dict[str, Path], metadata: dict[str, Any]) -> str:
    """Copy ``files`` (name in the store -> source) into a new version; return its tag."""
    labels = {"family": family, "model": re.sub(r"[^A-Za-z0-9._-]", "_", model_name)}
    with bentoml.models.create(store_name(family, model_name), labels=labels, metadata=metadata) as model:
        for name, source in files.items():
            shutil.copyfile(source, Path(model.path) / name)
    return str(model.tag)
