"""Room on the disk an import writes to: looked at before writing, and a full disk said plainly.

An import writes twice: the download's partial file (in BentoML's home) and the model's new
version in the store (BentoML's, or the cache folder). Either may be a small volume. Running
out of room part-way is an ``OSError`` (ENOSPC, or EDQUOT over a quota) from deep inside a copy;
``DiskFull`` turns it into a sentence that names the folder, what it needed and what is free.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

MIB = 2**20
#: Room kept beyond the bytes an import writes: BentoML's model.yaml, the `latest` pointer, and
#: the file system's own blocks. A store left with no byte free breaks more than the import.
MARGIN = 4 * MIB


class DiskFull(RuntimeError):
    """There is not room enough where an import writes; nothing of it was stored."""


_FULL = (errno.ENOSPC, errno.EDQUOT)


def is_full(exc: BaseException) -> bool:
    """Whether ``exc`` is the file system saying it has no room (or no quota) left, also from
    inside ``shutil.copytree`` (BentoML's copy into the store), whose error lists each file's."""
    if isinstance(exc, shutil.Error):
        return any(f"[Errno {number}]" in str(why) for _, _, why in _copy_errors(exc) for number in _FULL)
    return isinstance(exc, OSError) and exc.errno in _FULL


def _copy_errors(exc: shutil.Error) -> list[tuple[str, str, str]]:
    errors = exc.args[0] if exc.args and isinstance(exc.args[0], list) else []
    return [entry for entry in errors if isinstance(entry, tuple) and len(entry) == 3]


def _written(exc: OSError) -> str | None:
    """The file that was being written when ``exc`` happened."""
    if isinstance(exc, shutil.Error):
        return next((destination for _, destination, _ in _copy_errors(exc)), None)
    return exc.filename2 or exc.filename


def free_bytes(folder: Path) -> int:
    """Bytes free on the file system holding ``folder`` (or its nearest existing parent)."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free
    return shutil.disk_usage(Path.cwd()).free  # pragma: no cover - "/" always exists


def need_room(folder: Path, size: int, what: str) -> None:
    """Raise ``DiskFull`` unless ``size`` bytes (and ``MARGIN``) fit in ``folder`` now."""
    free = free_bytes(folder)
    if size + MARGIN > free:
        raise DiskFull(f"{what} needs {_mib(size + MARGIN)} in {folder}, and its disk has {_mib(free)} free. "
                       "Free some space there (or point the setting at a larger volume) and run the import again")


def full_message(exc: OSError, what: str, kept: str = "nothing of it was stored", folder: Path | None = None) -> str:
    """The sentence for a disk that filled up part-way through ``what`` (writing into
    ``folder``, when the error does not name the file)."""
    written = _written(exc)
    where = Path(written).parent if written else folder
    disk = f"the disk holding {where} ({_mib(free_bytes(where))} free now)" if where is not None else "a disk"
    return f"{what} stopped: {disk} is full; {kept}. Free some space there and run the import again"


def _mib(size: int) -> str:
    return f"{size / MIB:.1f} MiB"
