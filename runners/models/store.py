"""Where imported models live: BentoML's model store, and the cache folder when one is set.

BentoML's store (``$BENTOML_HOME/models``; inside a Bento, the models packed into it) is what
`bentoml build` packs into a Bento and `bentoml containerize` into an image. The cache folder
(``MACHINE_LEARNING_CACHE_FOLDER``) is a second store of the same layout, for an image whose
models live on a volume, as the stock image's ``model-cache:/cache``: imports go there when it
is set, and serving looks in both, taking the newer import of a model found in each.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Any

import bentoml

from config.settings import get_settings
from runners.models.disk import DiskFull, full_message, is_full, need_room

log = logging.getLogger(__name__)

#: Metadata of every version ``save`` writes: the size of each of its files.
FILE_SIZES = "file_sizes"

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


def _models(store: Any, name: str | None = None) -> list[bentoml.Model]:
    """The whole versions in ``store`` (of the model ``name``, or of every model).

    Looked at version by version, where BentoML's own listing stops at the first folder it
    cannot read: a version left by an import killed while BentoML copied it into the store (no
    model.yaml yet, or files shorter than their recorded ``FILE_SIZES``) is skipped with a
    warning, and the other models, and the model's older versions, stay served.
    """
    root = Path(store._path)
    names = [name] if name is not None else (sorted(d.name for d in root.iterdir()) if root.is_dir() else [])
    found = []
    for model_name in names:
        folder = root / model_name
        if not folder.is_dir():
            continue
        for version in sorted(v for v in folder.iterdir() if v.is_dir()):
            try:
                model = store.get(f"{model_name}:{version.name}")
            except Exception as exc:  # BentoML's exceptions for a folder it cannot read vary
                _skip(version, f"{type(exc).__name__}: {exc}")
                continue
            short = [file for file, size in model.info.metadata.get(FILE_SIZES, {}).items()
                     if not (version / file).is_file() or (version / file).stat().st_size < size]
            if short:
                _skip(version, f"{', '.join(short)} cut short")
                continue
            found.append(model)
    return found


_skipped: set[Path] = set()


def _skip(version: Path, why: str) -> None:
    if version not in _skipped:  # once per process: listing runs at every start and import
        _skipped.add(version)
        log.warning("skipping %s, an incomplete import (%s); import the model again, and delete the folder",
                    version, why)


def where_imports_go() -> Path:
    """The folder ``save`` writes to: the cache folder when set, else BentoML's store."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    cache = get_settings().cache_folder
    return Path(cache) if cache is not None else Path(BentoMLContainer.model_store_dir.get())


def _roots() -> list[Path]:
    """The stores' folders, in ``_stores``'s order."""
    return [Path(store._path) for store in _stores()]


def reference(path: Path) -> str:
    """How a runner job names a stored model's file or folder: relative to the store that holds
    it (``clip-cn-clip-vit-b-16__openai/<version>``), so a runner that keeps its stores
    elsewhere (another host, another mount) finds the same version in its own (``resolve``).
    A file outside the stores (an OCR model in rapidocr's wheel) is named by its absolute path."""
    for root in _roots():
        if path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    return str(path)


def resolve(name: str) -> Path:
    """The file or folder a job's ``name`` (``reference``) is in this process's stores: the
    first store holding it. A version's folder name is unique, so every store that holds it
    holds the same files. Not found: the first store's path, whose loading then fails naming it."""
    path = Path(name)
    if path.is_absolute():
        return path
    if ".." in path.parts:
        raise ValueError(f"a model reference must stay inside the model stores, got {name!r}")
    roots = _roots()
    return next((root / path for root in roots if (root / path).exists()), roots[0] / path)


def store_name(family: str, model_name: str) -> str:
    """A BentoML model name for ``family``/``model_name`` (lower case, [a-z0-9._-])."""
    return f"{family}-" + re.sub(r"[^a-z0-9._-]+", "-", model_name.lower()).strip("-.")


def get(family: str, model_name: str) -> bentoml.Model | None:
    """The newest stored version in either store, or None."""
    # By creation time, not BentoML's ``latest`` pointer, which a full disk can leave empty.
    found = [model for store in _stores() for model in _models(store, store_name(family, model_name))]
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
    folder = where_imports_go()
    folder.mkdir(parents=True, exist_ok=True)
    sizes = {name: source.stat().st_size for name, source in files.items()}
    what = f"storing {family} model {model_name}"
    need_room(folder, sum(sizes.values()), what)
    # The sizes let a version whose files were cut short (the import killed while BentoML
    # copied it into the store) be told from a whole one: ``_models`` skips it.
    metadata = {**metadata, FILE_SIZES: sizes}
    try:
        with bentoml.models.create(store_name(family, model_name), labels=labels, metadata=metadata,
                                   _model_store=store) as model:
            for name, source in files.items():
                shutil.copyfile(source, Path(model.path) / name)
    except OSError as exc:  # BentoML removes the version it was writing
        if is_full(exc):
            raise DiskFull(full_message(exc, what, "nothing of it was stored, the models there are unchanged")) from exc
        raise
    return str(model.tag)
