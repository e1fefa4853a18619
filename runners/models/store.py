"""Where imported models live: BentoML's model store, and the cache folder when one is set.

BentoML's store (``$BENTOML_HOME/models``; inside a Bento, the models packed into it) is what
`bentoml build` packs into a Bento and `bentoml containerize` into an image. The cache folder
(``MACHINE_LEARNING_CACHE_FOLDER``) is a second store of the same layout, for an image whose
models live on a volume, as the stock image's ``model-cache:/cache``: imports go there when it
is set, and serving looks in both, taking the newer import of a model found in each.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import bentoml
from bentoml.exceptions import NotFound

from config.settings import get_settings


# BentoML has no public API for a second model store; its ModelStore class and the container
# holding the default store are internal (bentoml 1.4), and tests/runners/models/test_cli.py
# drives both stores through the import command, so an upgrade that moves them fails there.


def _bentoml_store() -> Any:
    from bentoml._internal.configuration.containers import BentoMLContainer

    return BentoMLContainer.model_store.get()


def _cache_store() -> Any | None:
    """The cache folder's store, or None when no cache folder is set."""
    folder = get_settings().cache_folder
    if folder is None:
        return None
    from bentoml._internal.models.model import ModelStore

    return ModelStore(folder)


def _stores(packed_only: bool = False) -> list[Any]:
    """Where to look for models: the cache folder first (unless ``packed_only``), then BentoML's."""
    cache = None if packed_only else _cache_store()
    return [_bentoml_store()] if cache is None else [cache, _bentoml_store()]


def _models(store: Any) -> list[bentoml.Model]:
    try:
        return store.list()
    except (FileNotFoundError, NotFound):  # a cache folder nothing was imported into yet
        return []


def where_imports_go() -> Path:
    """The folder ``save`` writes to: the cache folder when set, else BentoML's store."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    cache = get_settings().cache_folder
    return Path(cache) if cache is not None else Path(BentoMLContainer.model_store_dir.get())


def store_name(family: str, model_name: str) -> str:
    """A BentoML model name for ``family``/``model_name`` (lower case, [a-z0-9._-])."""
    return f"{family}-" + re.sub(r"[^a-z0-9._-]+", "-", model_name.lower()).strip("-.")


def get(family: str, model_name: str) -> bentoml.Model | None:
    """The newest stored version in either store, or None."""
    found = []
    for store in _stores():
        try:
            found.append(bentoml.models.get(f"{store_name(family, model_name)}:latest", _model_store=store))
        except (FileNotFoundError, NotFound):
            continue
    return max(found, key=lambda model: model.info.creation_time, default=None)


def find(family: str, model_name: str) -> Path | None:
    """The folder of the newest stored version, or None."""
    model = get(family, model_name)
    return None if model is None else Path(model.path)


def newest(family: str, packed_only: bool = False) -> list[tuple[str, str]]:
    """(model name, tag) of the newest stored version of every model of ``family``, in either
    store (``packed_only``: in BentoML's store alone)."""
    found: dict[str, tuple[str, str]] = {}
    every = [model for store in _stores(packed_only) for model in _models(store)]
    for model in sorted(every, key=lambda m: m.info.creation_time):
        labels = model.info.labels
        if labels.get("family") == family and "model" in labels:
            found[model.tag.name] = (model.info.metadata.get("name", labels["model"]), str(model.tag))
    return sorted(found.values())


def declare_models(service_class: type, family: str) -> None:
    """Make every stored model of ``family`` a model of the BentoML service class (call before
    ``@bentoml.service``), so that `bentoml build` packs them into the Bento and
    `bentoml containerize` into the image. Models in the cache folder are not packed: BentoML
    resolves declared models from its own store alone."""
    for index, (_, tag) in enumerate(newest(family, packed_only=True)):
        setattr(service_class, f"stored_{family}_model_{index}", bentoml.models.BentoModel(tag))


def save(family: str, model_name: str, files: dict[str, Path], metadata: dict[str, Any]) -> str:
    """Copy ``files`` (name in the store -> source) into a new version, in the cache folder
    when one is set, else in BentoML's store; return its tag."""
    labels = {"family": family, "model": re.sub(r"[^A-Za-z0-9._-]", "_", model_name)}
    store = _cache_store()
    if store is None:
        store = _bentoml_store()
    where_imports_go().mkdir(parents=True, exist_ok=True)
    with bentoml.models.create(store_name(family, model_name), labels=labels, metadata=metadata,
                               _model_store=store) as model:
        for name, source in files.items():
            shutil.copyfile(source, Path(model.path) / name)
    return str(model.tag)
