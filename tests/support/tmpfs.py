"""A small tmpfs mounted for a test: a disk that fills up, for real ENOSPC errors.

Mounting needs root (CAP_SYS_ADMIN), which this project's machines and CI have; elsewhere the
test that asks for one is skipped, saying why.
"""

from __future__ import annotations

import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


@contextmanager
def small_disk(folder: Path, mib: int) -> Iterator[Path]:
    """``folder`` as a tmpfs of ``mib`` MiB while the block runs."""
    folder.mkdir(parents=True, exist_ok=True)
    run = _mount("-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(folder))
    if run.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {run.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def grow(folder: Path, mib: int) -> None:
    """Make the tmpfs at ``folder`` ``mib`` MiB (the files on it stay)."""
    run = _mount("-o", f"remount,size={mib}m", str(folder))
    assert run.returncode == 0, run.stderr
