"""ONNX Runtime sessions, with providers and threads from the settings."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
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


class Sessions:
    """One ONNX Runtime session per model file, loaded on first use, shared by a runner's APIs.

    Runner jobs name the file itself (resolved once by the entry service), so a model imported
    again while serving cannot mix one version's files with another's.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._sessions: dict[Path, ort.InferenceSession] = {}
        self._lock = threading.Lock()

    def get(self, path: Path) -> ort.InferenceSession:
        with self._lock:
            session = self._sessions.get(path)
            if session is None:
                session = self._sessions[path] = create_session(path, self._settings)
        return session

    def takes_batches(self, path: Path) -> bool:
        """Whether the model's first input leaves its batch axis free (``runners.models.batch_axis``
        settles that at import); one that declares 1 must get one item at a time."""
        return self.get(path).get_inputs()[0].shape[0] != 1

    def run_all(self, path: Path, batch: np.ndarray) -> list[np.ndarray]:
        """Every output of the model at ``path`` on ``batch``, in the graph's order."""
        session = self.get(path)
        return session.run(None, {session.get_inputs()[0].name: batch})

    def run(self, path: Path, batch: np.ndarray) -> np.ndarray:
        """The first output of the model at ``path`` on ``batch``."""
        return self.run_all(path, batch)[0]


def read_metadata(path: Path) -> dict[str, str]:
    """An ONNX file's custom metadata (PaddleOCR recognisers carry their alphabet there)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)
