"""The sessions a runner makes: each model on the runtime and precision that
``runners.precision`` plans for it, on this host.

ONNX Runtime stays the runtime for CUDA and for the exact fp32 answers; OpenVINO runs bf16 (and
fp32 when asked for by name); the CLIP towers' int8 runs on ONNX Runtime from a quantised file
made once (``runners.int8``). Whatever was asked for and cannot be had here is said once, as a
warning, with what runs instead.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from config.settings import Settings
from runners import cpu
from runners.models.clip import TOWER_FILES
from runners.onnx import CUDA, create_session, usable_providers
from runners.precision import CONVOLUTIONAL, ONNXRUNTIME, TEXT, TRANSFORMER, Host, Plan, plan

log = logging.getLogger(__name__)

#: The runner APIs whose models are not plain convolutional networks (``runners.precision``).
KINDS = {"clip_image": TRANSFORMER, "clip_text": TRANSFORMER, "ocr_detect": TEXT, "ocr_recognize": TEXT}


def kind_of(path: Path, api: str) -> str:
    """What kind of model the file that ``api`` runs is (a CLIP tower file is one, whatever
    asks for it)."""
    return TRANSFORMER if path.name in TOWER_FILES else KINDS.get(api, CONVOLUTIONAL)


class Engines:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.providers = usable_providers(settings.onnx_providers, settings.device_id)
        cuda = self.providers[0] == CUDA
        # OpenVINO is imported (50 MiB) only where a model may run on it.
        wanted = settings.backend == "openvino" or (settings.backend == "auto" and not cuda)
        capabilities = cpu.openvino_capabilities() if wanted else None
        self.host = Host(cuda=cuda, openvino=capabilities is not None,
                         bf16=capabilities is not None and "BF16" in capabilities)
        self.labels: dict[Path, str] = {}  # what each loaded file runs on, e.g. "OpenVINO CPU bf16"
        self._told: set[str] = set()
        self._lock = threading.Lock()
        for kind in (TRANSFORMER, CONVOLUTIONAL, TEXT):  # said at start, not at some first request
            self._tell(self.plan(kind))

    @property
    def device(self) -> str:
        return "cuda" if self.host.cuda else "cpu"

    def plan(self, kind: str) -> Plan:
        return plan(self.settings.backend, self.settings.precision, self.host, kind)

    def describe(self) -> dict[str, Any]:
        """For the log's start line and the status page: the CPU, and how each kind of model runs."""
        return {"cpu": cpu.name(), "cpu_features": list(cpu.features()),
                "backend": self.settings.backend, "precision": self.settings.precision,
                "plans": {"clip": str(self.plan(TRANSFORMER)), "faces": str(self.plan(CONVOLUTIONAL)),
                          "ocr": str(self.plan(TEXT))}}

    def create(self, path: Path, api: str = "") -> Any:
        """A session for the model file ``path``, which the runner API ``api`` runs."""
        chosen = self.plan(kind_of(path, api))
        self._tell(chosen)
        if chosen.backend == ONNXRUNTIME:
            session, label = self._onnxruntime(path, chosen)
        else:
            from runners import openvino

            session = openvino.create_session(path, chosen.precision, self.settings.intra_op_threads,
                                              self._fallback_root())
            label = str(chosen)
        with self._lock:
            self.labels[path] = label
        return session

    def forget(self, path: Path) -> None:
        with self._lock:
            self.labels.pop(path, None)

    def _onnxruntime(self, path: Path, chosen: Plan) -> tuple[Any, str]:
        if chosen.precision != "int8":
            precision = "fp16" if ".fp16." in path.name else chosen.precision  # CLIP's CUDA towers
            return create_session(path, self.settings), f"ONNX Runtime {self.device.upper()} {precision}"
        from runners import int8

        made = int8.tower(path, self._fallback_root())
        try:
            return create_session(made.path, self.settings), str(chosen)
        finally:
            made.discard()

    def _tell(self, chosen: Plan) -> None:
        """Say once why a model does not run as the settings asked."""
        if chosen.note and chosen.note not in self._told:
            self._told.add(chosen.note)
            log.warning("%s; running %s", chosen.note, chosen)

    def _fallback_root(self) -> Path | None:
        """Where derived files go when a model's own folder cannot be written."""
        if self.settings.derived_folder is not None:
            return self.settings.derived_folder
        from bentoml._internal.configuration.containers import BentoMLContainer

        return Path(BentoMLContainer.bentoml_home.get()) / "derived"
