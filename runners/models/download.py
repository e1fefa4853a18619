"""Download a file with a progress bar and a checksum, or fail fast with a clear message."""

from __future__ import annotations

import hashlib
import logging
import sys
import tempfile
from pathlib import Path

import httpx
from tqdm import tqdm

log = logging.getLogger(__name__)

# Short connect timeout: an offline machine must hear "no" in seconds, not hang.
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0


class DownloadError(RuntimeError):
    pass


def download(url: str, dest: Path, sha256: str | None = None) -> Path:
    """Fetch ``url`` into ``dest`` (written only once complete and verified)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    timeout = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
            if response.status_code != 200:
                raise DownloadError(f"{url} answered HTTP {response.status_code}")
            total = int(response.headers.get("content-length", 0)) or None
            with (
                tempfile.NamedTemporaryFile(dir=dest.parent, prefix=f".{dest.name}.", delete=False) as tmp,
                tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, file=sys.stderr) as bar,
            ):
                for chunk in response.iter_bytes(1 << 20):
                    tmp.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except httpx.HTTPError as exc:
        raise DownloadError(f"could not download {url}: {type(exc).__name__}: {exc or 'no answer'}") from exc

    partial = Path(tmp.name)
    if sha256 and digest.hexdigest() != sha256.lower():
        partial.unlink(missing_ok=True)
        raise DownloadError(f"{url}: SHA-256 is {digest.hexdigest()}, expected {sha256}")
    partial.replace(dest)
    return dest
