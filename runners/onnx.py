"""ONNX Runtime: providers, session options and sessions, all from the settings.

Imported by runner processes only (and by import commands): the entry service and
`bentoml serve`'s own process never load onnxruntime.
"""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path

import onnxruntime as ort

from config.settings import Settings

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
_GPU_FIRST = (CUDA, CPU)


def choose_providers(setting: str) -> list[str]:
    """The providers to ask for: those named by the setting that this onnxruntime has."""
    available = ort.get_available_providers()
    if setting.strip().lower() == "auto":
        return [p for p in _GPU_FIRST if p in available]
    wanted = [p.strip() for p in setting.split(",") if p.strip()]
    missing = [p for p in wanted if p not in available]
    if missing:
        raise ValueError(
            f"ONNX Runtime providers {missing} are not available here (available: {available}); "
            "install onnxruntime-gpu for CUDA, or set IMMICH_CN_ML_ONNX_PROVIDERS=auto"
        )
    return wanted


def session_options(settings: Settings) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = settings.inter_op_threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The arena keeps each session's largest working set for good (and grows with every new
    # batch shape); without it, memory goes back to the allocator (runners.memory).
    options.enable_cpu_mem_arena = settings.onnx_arena
    # Spinning threads wait for the next parallel section on a busy core: the time they burn
    # is taken from the other models and from the entry service's pre-processing.
    spin = "1" if settings.onnx_spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    options.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return options


@functools.cache
def usable_providers(setting: str, device_id: int = 0) -> tuple[str, ...]:
    """``choose_providers``, less CUDA when it cannot run here: onnxruntime-gpu lists CUDA
    wherever it is installed, and a session asked for it on a machine with no GPU (or none
    visible to the container) quietly runs on the CPU. A one-node graph tells which, once per
    process; the fallback is said in the log, loudly, since every model then runs at CPU speed."""
    chosen = choose_providers(setting)
    if CUDA not in chosen:
        return tuple(chosen)
    _load_cuda_libraries()
    probe = ort.InferenceSession(_identity_graph(), providers=with_options(chosen, device_id))
    if CUDA in probe.get_providers():
        return tuple(chosen)
    log.warning(
        "ONNX Runtime has CUDA, but GPU %d cannot be used (none visible, or its CUDA/cuDNN libraries "
        "are missing; ONNX Runtime's own log above says which): every model runs on the CPU. "
        "Check the GPU is passed to the container, or set IMMICH_CN_ML_ONNX_PROVIDERS=CPUExecutionProvider.",
        device_id,
    )
    fallback = [p for p in chosen if p != CUDA]
    return tuple(fallback or [CPU])


def _load_cuda_libraries() -> None:
    """Load the CUDA and cuDNN libraries that pip wheels installed (the CUDA image's, see
    requirements/serve-cuda.txt): they are not on the loader's path, and onnxruntime-gpu finds
    them only through its ``preload_dlls``. Libraries installed system-wide need nothing."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    try:
        preload()
    except Exception as exc:  # the probe that follows says whether CUDA works after all
        log.info("onnxruntime.preload_dlls: %s: %s", type(exc).__name__, exc)


def with_options(providers: list[str] | tuple[str, ...], device_id: int) -> list[str | tuple[str, dict]]:
    """Providers as ONNX Runtime takes them, CUDA on ``device_id``."""
    return [(p, {"device_id": device_id}) if p == CUDA else p for p in providers]


def _identity_graph() -> bytes:
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [value], [out])
    # An IR version every ONNX Runtime the images carry reads (the onnx library's newest is not:
    # onnxruntime-gpu 1.31 stops at IR 13).
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8).SerializeToString()


def create_session(path: Path, settings: Settings) -> ort.InferenceSession:
    providers = with_options(usable_providers(settings.onnx_providers, settings.device_id), settings.device_id)
    started = time.monotonic()
    session = ort.InferenceSession(str(path), sess_options=session_options(settings), providers=providers)
    log.info("loaded %s on %s in %.1f s", path, ", ".join(session.get_providers()), time.monotonic() - started)
    return session


def read_metadata(path: Path) -> dict[str, str]:
    """An ONNX file's custom metadata (PaddleOCR recognisers carry their alphabet there)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), sess_options=options, providers=[CPU])
    return dict(session.get_modelmeta().custom_metadata_map)
