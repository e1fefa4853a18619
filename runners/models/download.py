"""Download a file: a progress bar, resuming after a dropped connection, its size and checksum
checked, or a fast failure that says what to change.

A download is written to a partial file in the downloads folder (``downloads`` in BentoML's
home), named for its URL. When the connection drops, it goes on from where it stopped: a few
times in the same run, and again from the same place when the command runs again. The file
reaches the caller only once complete and checked: its size against what the source published
(or announced for the response), its SHA-256 where the source publishes one (passed in, or
Hugging Face's ``X-Linked-Etag``, which its mirrors send too). A file that fails a check is
deleted, so the next try starts clean.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from tqdm import tqdm

from runners.models.disk import DiskFull, full_message, is_full, need_room

log = logging.getLogger(__name__)

# Short connect timeout: an offline machine must hear "no" in seconds, not hang.
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
#: Connections a download may lose (and resume after) in one run.
ATTEMPTS = 5
CHUNK = 1 << 20


class DownloadError(RuntimeError):
    pass


@dataclass(frozen=True)
class Remote:
    """A file to download, with what its source publishes about it, and what the user can
    change when the source cannot be reached (a setting, another source)."""

    url: str
    sha256: str | None = None
    size: int | None = None
    hint: str = ""


def download(remote: Remote | str, dest: Path, sha256: str | None = None) -> Path:
    """Fetch ``remote`` into ``dest`` (which appears only once complete and checked)."""
    if isinstance(remote, str):
        remote = Remote(remote, sha256)
    partial = _partial(remote.url, dest.name)
    published = _Published(remote.sha256, remote.size)
    for attempt in range(1, ATTEMPTS + 1):
        try:
            if _fetch(remote, partial, dest.name, published):
                break
        except httpx.HTTPError as exc:
            done = partial.stat().st_size if partial.exists() else 0
            # Nothing at all on the first try is a source that cannot be reached: say so now.
            if (attempt == ATTEMPTS or (done == 0 and isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)))):
                raise DownloadError(_failed(remote, f"{type(exc).__name__}: {exc or 'no answer'}", done)) from exc
            log.warning("the connection to %s dropped at %d bytes (%s); resuming", remote.url, done, type(exc).__name__)
            time.sleep(min(2.0, 0.25 * attempt))
    else:  # pragma: no cover - _fetch returns True or raises on the last attempt
        raise DownloadError(_failed(remote, "it did not complete", partial.stat().st_size))
    _check(remote, partial, published)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(partial, dest)
    return dest


@dataclass
class _Published:
    sha256: str | None
    size: int | None


def _fetch(remote: Remote, partial: Path, name: str, published: _Published) -> bool:
    """Fetch what is missing of ``partial``; True once it is whole."""
    offset = partial.stat().st_size if partial.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    timeout = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
    with httpx.stream("GET", remote.url, headers=headers, timeout=timeout, follow_redirects=True) as response:
        _learn(response, published)
        if response.status_code == 416 and offset and offset == published.size:
            return True  # the partial file is whole already
        if response.status_code not in (200, 206):
            partial.unlink(missing_ok=True)
            raise DownloadError(_failed(remote, f"it answered HTTP {response.status_code}", offset))
        if response.status_code == 200 and offset:
            offset = 0  # the server sends the whole file again: start over
        total = _total(response, offset)
        if published.size is not None and total is not None and total != published.size:
            partial.unlink(missing_ok=True)
            raise DownloadError(f"{remote.url}: the server sends {total} bytes, but the source publishes "
                                f"{published.size}; nothing was stored{_hint(remote)}")
        if total is not None:  # fail before the first byte rather than with the disk full
            need_room(partial.parent, total - offset, f"downloading {name} ({remote.url})")
        try:
            with partial.open("r+b" if offset else "wb") as out, \
                    tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=name, file=sys.stderr) as bar:
                out.seek(offset)
                out.truncate()
                for chunk in response.iter_bytes():  # as they arrive: a drop keeps all but the last
                    out.write(chunk)
                    bar.update(len(chunk))
        except OSError as exc:  # the room went to something else meanwhile
            if not is_full(exc):
                raise
            raise DiskFull(full_message(exc, f"downloading {name}",
                                        f"the part downloaded is kept in {partial} and the next run goes on from "
                                        "there (delete it to get its space back)", partial.parent)) from exc
        if published.size is None and total is not None:
            published.size = total
    return True


def _learn(response: httpx.Response, published: _Published) -> None:
    """What Hugging Face (and its mirrors) publish about a file, in the headers of its resolve
    URL's answer: the LFS object's SHA-256 and size."""
    for hop in [*response.history, response]:
        etag = hop.headers.get("x-linked-etag", "").strip('"').lower()
        if published.sha256 is None and re.fullmatch(r"[0-9a-f]{64}", etag):
            published.sha256 = etag
        linked = hop.headers.get("x-linked-size")
        if published.size is None and linked and linked.isdigit():
            published.size = int(linked)


def _total(response: httpx.Response, offset: int) -> int | None:
    """The whole file's size, as the answer says it (Content-Range, or Content-Length)."""
    match = re.match(r"bytes \d+-\d+/(\d+)", response.headers.get("content-range", ""))
    if match:
        return int(match.group(1))
    length = response.headers.get("content-length")
    return int(length) + (offset if response.status_code == 206 else 0) if length and length.isdigit() else None


def _check(remote: Remote, partial: Path, published: _Published) -> None:
    size = partial.stat().st_size
    if published.size is not None and size != published.size:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"{remote.url}: got {size} bytes, expected {published.size}; nothing was stored "
                            "(run the command again to download it anew)")
    if published.sha256:
        digest = hashlib.sha256()
        with partial.open("rb") as file:
            for block in iter(lambda: file.read(CHUNK), b""):
                digest.update(block)
        if digest.hexdigest() != published.sha256.lower():
            partial.unlink(missing_ok=True)
            raise DownloadError(f"{remote.url}: SHA-256 is {digest.hexdigest()}, expected {published.sha256}; "
                                f"nothing was stored{_hint(remote)}")


def downloads_folder() -> Path:
    """Where partial downloads wait to be resumed: ``downloads`` in BentoML's home."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    return Path(BentoMLContainer.bentoml_home.get()) / "downloads"


def _partial(url: str, name: str) -> Path:
    folder = downloads_folder()
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{name}.part"


def _failed(remote: Remote, why: str, done: int) -> str:
    kept = f" ({done} bytes kept: the next run goes on from there)" if done else ""
    return f"could not download {remote.url}: {why}{kept}{_hint(remote)}"


def _hint(remote: Remote) -> str:
    return f"\n{remote.hint}" if remote.hint else ""
