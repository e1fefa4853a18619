"""ONNX Runtime sessions, with providers and threads from the settings."""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort

from config.settings import Settings

log = logging.getLogger(__name__)

_GPU_FIRST = ("CUDAExecutionProvider", "CPUExecutionProvider")


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


def create_session(path: Path, settings: Settings) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = settings.inter_op_threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = choose_providers(settings.onnx_providers)
    session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    log.info("loaded %s on %s", path.name, ", ".join(session.get_providers()))
    return session


def read_metadata(path: Path) -> dict[str, str]:
    """An ONNX file's custom metadata (PaddleOCR recognisers carry their alphabet there)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)
