"""What the status page shows: every model this service knows, whether its files are here and
loaded, the runners (where each runs, whether it answers) and their device, the upstream (its URL without credentials, and whether it answers
``/ping``) and MT Photos' routes. Request counts, batch sizes and latencies the page reads
from ``/metrics`` itself."""

from __future__ import annotations

import asyncio
import logging
from importlib import metadata
from pathlib import Path
from typing import Any

from starlette.responses import JSONResponse

from adapters.clip import ClipTextual, ClipVisual
from adapters.face import FaceDetection, FaceRecognition
from adapters.mt_photos.handlers import MtPhotos
from adapters.ocr import OcrDetection, OcrRecognition
from adapters.routing import Router
from adapters.runner_control import RunnerControl
from adapters.upstream import Upstream
from runners.models import clip as clip_models
from runners.models import face as face_models
from runners.models import ocr as ocr_models
from runners.models import store
from runners.models.hints import import_command

log = logging.getLogger(__name__)

#: The types of each task, in the order Immich runs them.
TYPES = {"clip": ("visual", "textual"), "facial-recognition": ("detection", "recognition"),
         "ocr": ("detection", "recognition")}
#: MT Photos' routes, by the task that serves them.
MT_ROUTES = {"/ocr": "ocr", "/clip/img": "clip", "/clip/txt": "clip", "/represent": "facial-recognition"}


def known_models() -> dict[str, list[str]]:
    """Every model name this project can serve, by task (imported or not)."""
    return {
        "clip": [arch.served_name for arch in clip_models.ARCHS.values()],
        "facial-recognition": list(face_models.PACKS),
        "ocr": list(ocr_models.CATALOG),
    }


def model_files(model: Any) -> list[Path]:
    """The files a served model runs on, as its runner names them when loaded."""
    if isinstance(model, (ClipVisual, ClipTextual)):
        part = "visual" if isinstance(model, ClipVisual) else "textual"
        return [model.files.tower(part, False), model.files.tower(part, True)]
    if isinstance(model, (FaceDetection, FaceRecognition)):
        return [Path(model.path)]
    if isinstance(model, OcrDetection):
        return [Path(model.detector)]
    if isinstance(model, OcrRecognition):
        return [Path(model.recogniser)]
    return []


class Status:
    def __init__(self, router: Router, runners: RunnerControl, upstream: Upstream | None, mt_photos: MtPhotos,
                 service: str) -> None:
        self.router, self.runners, self.upstream, self.mt_photos = router, runners, upstream, mt_photos
        self.service = service
        try:
            self.version = metadata.version("immich-cn-ml")
        except metadata.PackageNotFoundError:  # run from a Bento, where the project is not installed
            self.version = "unknown"

    async def answer(self) -> JSONResponse:
        about, answers = await asyncio.gather(self._about(), self._upstream_answers())
        loaded = {str(path): about.get("engines", {}).get(str(path), "") for path in about.get("loaded", [])}
        served = self.mt_photos.served()
        return JSONResponse({
            "version": self.version,
            "service": self.service,
            "device": about.get("device", "unknown"),
            # The CPU and its features, the backend and precision settings, how each kind runs.
            "runtime": about.get("runtime", {}),
            "models": self._models(loaded),
            # Each runner service: its name, its URL when it runs elsewhere (None: started by
            # this server), whether it answers, and its device.
            "runners": about.get("runners") or self.runners.silent(),
            "upstream": {"url": self.upstream.base_url if self.upstream else None, "answers": answers},
            "mt_photos": {"routes": {route: {"model": self.mt_photos.names[task], "served": served[task]}
                                     for route, task in MT_ROUTES.items()}},
        })

    def _models(self, loaded: dict[str, str]) -> list[dict[str, Any]]:
        """Every known model; ``loaded``: the loaded files as runners name them (``store.reference``),
        with what each runs on."""
        names = known_models()
        for task, _, name in self.router.local_keys:  # served but not in a catalogue (an alias, a test model)
            if task in names and name not in names[task]:
                names[task].append(name)
        rows = []
        for task, task_names in names.items():
            for name in task_names:
                for type_ in TYPES[task]:
                    model = self.router.resolve_local(task, type_, name)
                    files = model_files(model) if model is not None else []
                    runs_on = [loaded[name] for name in map(store.reference, files) if name in loaded]
                    rows.append({
                        "task": task, "type": type_, "name": name, "present": model is not None,
                        # Here: the folder its files are in; not here: the command that imports it.
                        "source": str(files[0].parent) if files else import_command(task, name),
                        "loaded": bool(runs_on),
                        # e.g. "OpenVINO CPU bf16"; empty while not loaded.
                        "runs_on": runs_on[0] if runs_on else "",
                    })
        return rows

    async def _about(self) -> dict[str, Any]:
        try:
            return await self.runners.about()
        except Exception as exc:  # a runner not up yet: the page shows what it can
            log.info("status page: the runners did not answer: %s: %s", type(exc).__name__, exc)
            return {}

    async def _upstream_answers(self) -> bool | None:
        return None if self.upstream is None else await self.upstream.ping()
