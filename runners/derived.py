"""Files a runtime derives from a stored ONNX model (OpenVINO's IR with fp16 weights, a CLIP
tower quantised to int8): made on first load, kept, and made again when the model changes.

The ONNX file in the store stays the model; nothing derived is ever imported or served under a
model's name. A derived file sits beside what it came from, in a ``derived`` folder inside the
model's version folder of the store, so it goes when that version goes. Where that folder
cannot be written (a read-only volume, models shipped in a wheel), it goes to
``IMMICH_CN_ML_DERIVED_FOLDER`` when set, else to BentoML's home, else to a temporary folder
used for this load only. A stamp beside each file names the source's size and modification
time and the maker's version: when any differs, the file is made again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

#: The file BentoML writes in every model version folder: what marks a folder as the store's.
STORE_MARK = "model.yaml"


@dataclass(frozen=True)
class Made:
    """A derived file, and whether its folder is temporary (to delete once the file is loaded)."""

    path: Path
    temporary: bool = False

    def discard(self) -> None:
        if self.temporary:
            shutil.rmtree(self.path.parent, ignore_errors=True)


def derive(source: Path, kind: str, suffix: str, maker: str, make: Callable[[Path, Path], None],
           fallback_root: Path | None = None) -> Made:
    """``source``'s derived file of ``kind`` (e.g. "openvino-bf16"), named ``<stem>.<kind><suffix>``.

    ``make(source, target)`` writes it (and any files beside it); ``maker`` names the tool and
    version that does, so a new version makes it again. ``fallback_root``: where to keep it when
    the model's own folder cannot be written.
    """
    name = f"{source.stem}.{kind}{suffix}"
    identity = {"source": source.name, "files": _identity(source), "maker": maker}
    for folder in _folders(source, fallback_root):
        target = folder / name
        stamp = folder / f"{name}.json"
        if _stamp(stamp) == identity and target.exists():
            return Made(target)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _make_into(folder, name, source, make)
            stamp.write_text(json.dumps(identity), encoding="utf-8")
            return Made(target)
        except PermissionError:
            continue  # a read-only store: the next place
        except OSError as exc:
            if exc.errno not in (30, 13):  # EROFS, EACCES: the next place; anything else is real
                raise
    folder = Path(tempfile.mkdtemp(prefix="immich-cn-ml-derived-"))
    log.warning("no writable place to keep %s's %s form; it is made again at every load", source, kind)
    _make_into(folder, name, source, make)
    return Made(folder / name, temporary=True)


def _folders(source: Path, fallback_root: Path | None) -> list[Path]:
    key = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:16]
    folders = []
    if (source.parent / STORE_MARK).exists():
        folders.append(source.parent / "derived")
    if fallback_root is not None:
        folders.append(fallback_root / f"{source.parent.name}-{key}")
    return folders


def _make_into(folder: Path, name: str, source: Path, make: Callable[[Path, Path], None]) -> None:
    """Make in a scratch folder beside ``folder``, then move every file made into place, the
    named one last: a load that breaks off never leaves a half-written file under its name."""
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix=".making-", dir=folder))
    try:
        make(source, scratch / name)
        made = sorted(scratch.iterdir(), key=lambda path: path.name == name)
        for path in made:
            os.replace(path, folder / path.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info("made %s from %s in %.1f s", folder / name, source, time.monotonic() - started)


def _identity(source: Path) -> list[list[object]]:
    """Size and modification time of the model file and its external weights, if any."""
    files = [source, source.with_name(source.name + ".data")]
    return [[path.name, stat.st_size, stat.st_mtime_ns] for path in files if (stat := _stat(path)) is not None]


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def _stamp(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
