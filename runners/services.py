"""The runner services: one process for every model family, or one per family.

A home server runs ``ModelRunner``: every model in one process, whose forward passes take
turns (``runners.turns``), one at a time, each with all of ONNX Runtime's threads. Three runner
processes would each carry a Python interpreter, BentoML and ONNX Runtime (about 120 MiB apiece)
and would run their passes at once, their threads fighting over the same cores. When one machine
is not enough, ``IMMICH_CN_ML_RUNNERS=split`` makes one service per family (``ClipRunner``,
``OcrRunner``, ``FaceRunner``), which BentoCloud or Kubernetes scale out separately. Both
layouts offer the same APIs under the same names, so the entry service calls either alike.
Each runner service can also be served alone (``bentoml serve runners.services:ClipRunner``)
on another host, for an entry service that names its URL (``config.remote_runners``).

Runner processes import what a forward pass needs (ONNX Runtime, numpy) and nothing of the
pre- and post-processing libraries, which load in the entry service only.
"""

from __future__ import annotations

import asyncio
import logging
from math import prod
from pathlib import Path
from typing import Any, Callable

import bentoml

from config import process
from config.bento import runner_service_config
from config.connection_turnover import ConnectionTurnover
from config.settings import get_settings
from config.workers import start_afresh
from runners import memory
from runners.clip import ClipApis, ClipModels, use_fp16
from runners.face import FaceApis, FaceModels
from runners.models import clip as clip_models
from runners.models import face as face_models
from runners.models import ocr as ocr_models
from runners.models import store
from runners.ocr import OcrApis, OcrModels
from runners.precision import CONVOLUTIONAL, TEXT, TRANSFORMER
from runners.sessions import Janitor, Sessions

log = logging.getLogger(__name__)
settings = get_settings()
process.set_up(settings)

#: API name -> (family attribute, kind): which model file a job of that API runs.
API_FILES = {
    "clip_image": ("clip", "image"), "clip_text": ("clip", "text"),
    "ocr_detect": ("ocr", "det"), "ocr_recognize": ("ocr", "rec"),
    "face_detect": ("faces", "det"), "face_embed": ("faces", "rec"),
}


class _Runner:
    """What every runner service has: the sessions, their lifecycle, and the families it serves."""

    families: tuple[str, ...] = ()
    service_name = ""  # its BentoML name, which the entry service knows it by

    def __init__(self) -> None:
        from runners.engines import Engines
        from runners.onnx import CPU, CUDA

        memory.keep_freed_memory()
        self.engines = Engines(settings)
        metric = _loaded_metric()

        def on_change(path: Path, loaded: bool) -> None:
            metric(path, loaded)
            if not loaded:
                self.engines.forget(path)

        self.sessions = Sessions(self.engines.create, on_change=on_change)
        first = self.engines.providers[0]
        def max_items(kind: str) -> Callable[[tuple[int, ...]], int] | None:
            if first != CPU:
                return None
            bf16 = self.engines.plan(kind).precision == "bf16"
            return _pass_limit(settings.cpu_pass_values * (BF16_PASS_SCALE if bf16 else 1))

        if "clip" in self.families:
            self.clip = ClipModels(self.sessions, use_fp16(first), max_items(TRANSFORMER))
        if "ocr" in self.families:
            self.ocr = OcrModels(self.sessions, max_items(TEXT))
        if "faces" in self.families:
            self.faces = FaceModels(self.sessions, max_items(CONVOLUTIONAL))
        self.device = "cuda" if first == CUDA else "cpu"
        self.janitor = Janitor(self.sessions, settings.model_ttl, settings.model_ttl_poll,
                               when_all_unloaded=_start_afresh).start()
        runtime = self.engines.describe()
        where = f"GPU {settings.device_id} (CUDA), " if first == CUDA else ""
        log.info("runner for %s on %sCPU %s (%s); backend %s, precision %s: %s; models unload after %s",
                 ", ".join(self.families), where, runtime["cpu"], ", ".join(runtime["cpu_features"]) or "no AVX2",
                 settings.backend, settings.precision,
                 "; ".join(f"{kind} on {how}" for kind, how in runtime["plans"].items()),
                 f"{settings.model_ttl:g} s unused" if settings.model_ttl > 0 else "never (MODEL_TTL=0)")

    @bentoml.api
    def load(self, models: list[list[str]]) -> list[str]:
        """Load the files that jobs ``[api, model]`` run (preloading); the files loaded, as jobs
        name them (``store.reference``)."""
        paths = [(self._path(api, model), api) for api, model in models]
        for path, api in paths:
            self.sessions.load(path, api)
        return [store.reference(path) for path, _ in paths]

    # The two APIs below are async: they run on the worker's event loop, never waiting for one
    # of the threads that forward passes hold.
    @bentoml.api
    async def about(self) -> dict[str, Any]:
        """Which runner service this is (``service``: "clip-runner" ...), what it runs on
        (``device``: "cuda" or "cpu"; ``runtime``: the CPU, the
        backend and precision settings, and how each kind of model runs), the files it has
        loaded, and what each of those runs on (``engines``: file -> e.g. "OpenVINO CPU bf16")."""
        # Files as jobs name them (``store.reference``), which the entry service compares.
        loaded = sorted(store.reference(path) for path in self.sessions.loaded())
        labels = {store.reference(path): label for path, label in dict(self.engines.labels).items()}
        return {"service": self.service_name, "device": self.device, "loaded": loaded,
                "runtime": self.engines.describe(), "engines": {path: labels[path] for path in loaded if path in labels}}

    @bentoml.api
    async def unload_idle(self, idle_seconds: float) -> list[str]:
        """Unload now the models unused for ``idle_seconds`` or more (none in a pass), as
        ``MODEL_TTL`` would later; the files unloaded. With ``MODEL_TTL=0`` (keep models
        loaded) nothing is unloaded."""
        if settings.model_ttl <= 0:
            return []
        # On a thread: freeing a session (GPU memory, large buffers) takes a while.
        dropped = await asyncio.to_thread(self.sessions.drop_idle, max(0.0, idle_seconds))
        for path in dropped:
            log.info("unloaded %s on request (unused for %.0f s or more)", path, idle_seconds)
        if dropped:
            await asyncio.to_thread(memory.trim)
        return [store.reference(path) for path in dropped]

    def _path(self, api: str, model: str) -> Path:
        family, kind = API_FILES.get(api, (None, None))
        if family is None or not hasattr(self, family):
            raise ValueError(f"this runner has no API {api!r}")
        return getattr(self, family).path(kind, model)


def _start_afresh() -> None:
    """Once MODEL_TTL has unloaded every model (measured before this: the tree 24 % over its
    idle-after-start memory after a 10 s TTL, the runner 90 MiB of it)."""
    start_afresh("runner", "every model was unloaded (MODEL_TTL)")


def _loaded_metric() -> Callable[[Path, bool], None]:
    """``immich_cn_ml_model_loaded{model="<file>"}``: 1 while a model file is loaded, 0 after it
    is unloaded, in the service's /metrics. (prometheus_client is imported here, in the worker,
    once BentoML has set it up for several processes.)"""
    from prometheus_client import Gauge

    gauge = Gauge("immich_cn_ml_model_loaded", "Whether a model file is loaded in a runner (1) or not (0)",
                  ["model"], multiprocess_mode="livemax")
    return lambda path, loaded: gauge.labels(model=str(path)).set(1 if loaded else 0)


#: How many times ``CPU_PASS_VALUES`` a pass of a model on OpenVINO at bf16 may take (with the
#: default: four CLIP images, 19 faces). ONNX Runtime at fp32 gains nothing from batching on a
#: CPU; OpenVINO's bf16 kernels do: the CLIP image tower took 60 ms an image alone, 47 in fours,
#: the face recogniser 17.7 and 15.5 ms a face.
BF16_PASS_SCALE = 5


def _pass_limit(values: int) -> Callable[[tuple[int, ...]], int] | None:
    """On CPU, split a batch into passes of at most ``values`` input values: a pass's working
    memory grows with its batch, and at fp32 batching gains nothing there."""
    return (lambda shape: values // max(1, prod(shape))) if values > 0 else None


def _service(cls: type, name: str, families: tuple[str, ...]) -> Any:
    cls.families, cls.service_name = families, name
    for family in families:  # imported models travel with the Bento (bentoml build)
        store.declare_models(cls, _STORE_FAMILY[family])
    service = bentoml.service(**runner_service_config(name, settings))(cls)
    # Served alone behind a Service or balancer: calls spread over its replicas.
    service.add_asgi_middleware(ConnectionTurnover, requests=settings.runner_connection_requests)
    settle_media_types(service)
    return service


def settle_media_types(service: Any) -> None:
    """Give each API's answer its media type once. Left unset, BentoML works it out for every
    answer again by generating the answer type's JSON schema: 0.4 ms of a runner's CPU per call
    (py-spy, a CLIP image call), the same media type each time."""
    for method in service.apis.values():
        spec = method.output_spec
        if spec.media_type is None:
            spec.media_type = spec.mime_type()


_STORE_FAMILY = {"clip": clip_models.FAMILY, "ocr": ocr_models.FAMILY, "faces": face_models.FAMILY}


class _ModelRunner(_Runner, ClipApis, OcrApis, FaceApis):
    pass


class _ClipRunner(_Runner, ClipApis):
    pass


class _OcrRunner(_Runner, OcrApis):
    pass


class _FaceRunner(_Runner, FaceApis):
    pass


# Every runner service, whichever layout the entry service uses: each is also a target of its
# own for `bentoml serve runners.services:ClipRunner` on another host (config.remote_runners).
ModelRunner = _service(_ModelRunner, "model-runner", ("clip", "ocr", "faces"))
ClipRunner = _service(_ClipRunner, "clip-runner", ("clip",))
OcrRunner = _service(_OcrRunner, "ocr-runner", ("ocr",))
FaceRunner = _service(_FaceRunner, "face-runner", ("faces",))

#: The runner services of the layout the settings choose, by the entry service attribute that
#: holds each (``service.py``), and which attribute serves each family.
if settings.runners == "split":
    RUNNERS = {"clip": ClipRunner, "ocr": OcrRunner, "faces": FaceRunner}
    ATTRIBUTE_OF = {"clip": "clip", "ocr": "ocr", "faces": "faces"}
else:
    RUNNERS = {"models": ModelRunner}
    ATTRIBUTE_OF = {"clip": "models", "ocr": "models", "faces": "models"}
