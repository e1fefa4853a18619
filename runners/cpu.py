"""What this machine's CPU can do for inference: its name, the instruction sets that decide what
bf16 and int8 gain, and whether OpenVINO's CPU device runs bf16.

Read once per runner process; the log's start line and the status page show them.
"""

from __future__ import annotations

import functools
import logging
import platform
from pathlib import Path

log = logging.getLogger(__name__)

#: The /proc/cpuinfo flags that matter here: bf16 (AVX-512 BF16, AMX), int8 dot products (VNNI),
#: and the vector widths beneath them.
FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni", "avx_vnni")


@functools.cache
def name() -> str:
    for line in _cpuinfo().splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


@functools.cache
def features() -> tuple[str, ...]:
    """The flags of ``FLAGS_OF_INTEREST`` this CPU has, in that order."""
    flags: set[str] = set()
    for line in _cpuinfo().splitlines():
        if line.lower().startswith(("flags", "features")):
            flags.update(line.split(":", 1)[1].split())
            break
    return tuple(flag for flag in FLAGS_OF_INTEREST if flag in flags)


@functools.cache
def openvino_capabilities() -> tuple[str, ...] | None:
    """OpenVINO's CPU device's optimisation capabilities (e.g. "BF16", "INT8", "FP32"), or None
    when the openvino package is not installed or has no CPU device."""
    try:
        import openvino
    except ImportError:
        return None
    try:
        return tuple(openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception as exc:  # a broken install, or a CPU its plugin does not support
        log.warning("OpenVINO's CPU device cannot be used: %s: %s", type(exc).__name__, exc)
        return None


def summary() -> str:
    """One line for logs: the CPU's name and the flags that matter."""
    return f"{name()} ({', '.join(features()) or 'no AVX2'})"


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:  # not Linux
        return ""
