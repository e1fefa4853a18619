"""Give freed memory back to the system: glibc's allocator, tuned for large, short-lived tensors.

ONNX Runtime's own CPU arena keeps every buffer it ever grew to, per session, for good; with it
off (the default here, as in stock Immich), tensors come from malloc. What glibc does with them
by default costs twice: blocks over its (adaptive) mmap threshold get fresh pages on every pass,
and what it frees in the heap stays resident until something trims it (a loaded recogniser kept
twice its weights; a busy runner held 400-500 MB of free heap).

So these processes (``keep_freed_memory``) use one heap for all threads, keep free memory for
the next pass, and trim it themselves (``trim``) when idle and every few seconds while busy.
Blocks of 32 MiB and more (the activations of a whole pass: 150 MB for the OCR detector) get a
mapping of their own, returned when freed: reused heap space for them fragmented the heap by
hundreds of megabytes under mixed load. Mapping them anew costs page faults, which transparent
huge pages make cheap (81 instead of 111 ms for the OCR detector): ``HUGE_PAGES`` is the glibc
tunable that asks for them; it works only when set before a process starts, so ``service.py``
sets it for the processes BentoML starts. Elsewhere (musl, macOS) all of this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
#: The largest mmap threshold glibc accepts on 64-bit systems (half its heap size).
MMAP_THRESHOLD = 32 * 2**20
#: glibc tunable: madvise(MADV_HUGEPAGE) the blocks it maps (for THP in "madvise" mode).
HUGE_PAGES = "glibc.malloc.hugetlb=1"

_libc = None
_name = ctypes.util.find_library("c")
if _name:
    try:
        _candidate = ctypes.CDLL(_name)
        if hasattr(_candidate, "mallopt") and hasattr(_candidate, "malloc_trim"):
            _libc = _candidate
    except OSError:  # pragma: no cover - no C library to load
        _libc = None


def available() -> bool:
    """Whether this process runs on glibc's allocator (the tuning applies)."""
    return _libc is not None


def keep_freed_memory() -> None:
    """Let free memory stay until ``trim``; map blocks of ``MMAP_THRESHOLD`` and more apart.

    One arena: ONNX Runtime allocates on whichever thread runs a pass, and a heap per thread
    would keep as many copies of the same free space (the heavy mix's peak grew by 300 MB more
    with two).
    """
    if _libc is None:
        return
    for parameter, value in ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, 2**31 - 1), (_M_ARENA_MAX, 1)):
        if _libc.mallopt(parameter, value) != 1:
            log.warning("mallopt(%d, %d) was refused; freed memory may stay resident", parameter, value)


def with_huge_pages(tunables: str | None) -> str:
    """A ``GLIBC_TUNABLES`` value with ``HUGE_PAGES`` added to what is set already."""
    kept = [t for t in (tunables or "").split(":") if t and not t.startswith("glibc.malloc.hugetlb=")]
    return ":".join([*kept, HUGE_PAGES])


def trim() -> None:
    """Return every free page of the heap to the system."""
    if _libc is not None:
        _libc.malloc_trim(0)


#: madvise advice: the pages may go; a later read of a file-backed page reads it again.
_MADV_DONTNEED = 4


def drop_file_pages(path: str) -> int:
    """Let the pages of this process's mappings of ``path`` go (they stay in the page cache, and
    a later read maps them again); the bytes of mapping they covered.

    OpenVINO maps a model's weight file and, once a pass has put the weights into its own
    layout, reads the mapping no more; its pages would otherwise stay in the process's resident
    memory for as long as the model is loaded (the CLIP image tower's: 164 MiB). Linux only;
    elsewhere nothing happens."""
    if _libc is None or not hasattr(_libc, "madvise"):
        return 0
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            # A file deleted since it was mapped (a temporary IR) is named "... (deleted)".
            ranges = [line.split()[0] for line in maps
                      if line.rstrip("\n").removesuffix(" (deleted)").endswith(" " + path)]
    except OSError:
        return 0
    dropped = 0
    for span in ranges:
        start, end = (int(value, 16) for value in span.split("-"))
        if _libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_DONTNEED) == 0:
            dropped += end - start
    return dropped

