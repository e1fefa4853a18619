"""Freed memory stays for reuse until ``trim`` gives it back (checked in a fresh process: the
tuning is process-wide)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from runners import memory

SCRIPT = """
import numpy as np, psutil
from runners import memory
memory.keep_freed_memory()
rss = lambda: psutil.Process().memory_info().rss / 2**20
base = rss()
blocks = [np.ones(2**20) for _ in range(200)]  # 200 blocks of 8 MiB: 1.6 GiB
del blocks
kept = rss()
memory.trim()
print(round(kept - base), round(rss() - base))
"""


@pytest.mark.skipif(not memory.available(), reason="not glibc's allocator")
def test_freed_blocks_stay_until_trimmed():
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    kept, after = map(int, run.stdout.split())
    assert kept > 1000  # served from the heap and kept: the next pass reuses the pages
    assert after < 100  # given back


def test_trim_without_glibc_is_a_no_op(monkeypatch):
    monkeypatch.setattr(memory, "_libc", None)
    memory.keep_freed_memory()
    memory.trim()


def test_huge_pages_join_the_tunables_already_set():
    assert memory.with_huge_pages(None) == "glibc.malloc.hugetlb=1"
    assert memory.with_huge_pages("glibc.malloc.arena_max=4") == "glibc.malloc.arena_max=4:glibc.malloc.hugetlb=1"
    assert memory.with_huge_pages("glibc.malloc.hugetlb=0:x.y=1") == "x.y=1:glibc.malloc.hugetlb=1"


def _mapped_rss(path) -> int:
    """Resident KiB of this process's mappings of ``path`` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in open("/proc/self/smaps", encoding="utf-8"):
        first = line.split()[0]
        if "-" in first and not first.endswith(":"):
            inside = line.rstrip("\n").endswith(" " + str(path))
        elif inside and first == "Rss:":
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not memory.available(), reason="not glibc's C library")
def test_a_mapped_files_pages_are_let_go_and_read_again_when_needed(tmp_path):
    import mmap

    path = tmp_path / "weights.bin"
    path.write_bytes(bytes(range(256)) * 4096 * 16)  # 16 MiB
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ) as mapped:
        checksum = sum(mapped[i] for i in range(0, len(mapped), 4096))  # touch every page
        assert _mapped_rss(path) >= 15 * 1024
        assert memory.drop_file_pages(str(path)) == 16 * 2**20
        assert _mapped_rss(path) < 1024
        assert sum(mapped[i] for i in range(0, len(mapped), 4096)) == checksum  # read again from the file
    assert memory.drop_file_pages(str(tmp_path / "not-mapped.bin")) == 0
