"""MT Photos' routes' work, on the local models the Immich routes use.

Each route finds its model in the same router as ``/predict`` (names from the settings), so
MT's requests and Immich's share the runners, their batches and the admission of image work.
Order of checks follows the reference: the key (422/401), the form (422), then the image and
the model, whose failures are answered the reference's way, HTTP 200 with ``msg``. Only a busy
or timed-out service (503, 504) keeps its status, so a client can tell "try again" from "this
image cannot be read". A body over the size limit or not a form keeps its status too (413, 400).

Differences from the references, on purpose (README "MT Photos"): nothing restarts (the
``restart`` routes unload idle models instead); images are turned upright by their EXIF
orientation, as the references' OpenCV decoding does, on every route; OCR runs the configured
model (Immich's PP-OCRv5 mobile by default, where the reference runs PP-OCRv4) without the
reference's text-direction classifier.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable

from PIL import Image, ImageOps
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from adapters.admission import Admission
from adapters.aio import to_thread
from adapters.clip import ClipTextual, ClipVisual
from adapters.entries import Entry
from adapters.errors import RequestError, error_response
from adapters.face import FaceDetection, FaceRecognition
from adapters.images import ImageLimits, check_limits, identify, load_pixels
from adapters.local import Inputs
from adapters.mt_photos.answers import failure, ocr_result, represent_result, validation_error, vector_result
from adapters.mt_photos.auth import key_refusal
from adapters.ocr import LEGACY_MIN_SCORE, OcrDetection, OcrRecognition
from adapters.multipart import parse_form, read_body
from adapters.routing import Router
from adapters.runner_control import RunnerControl
from adapters.vectors import checked
from config.settings import Settings
from runners.models import clip as clip_models

log = logging.getLogger(__name__)

#: The reference refuses images larger than this on a side, with ``OUT_OF_RANGE``.
MAX_SIDE = 10_000
OUT_OF_RANGE = "height or width out of range"
#: rapidocr's own text score threshold, which the reference's RapidOCR applies.
OCR_MIN_SCORE = LEGACY_MIN_SCORE
#: ``/restart`` and ``/restart_v2`` unload models unused this long (or ``MODEL_TTL``, if shorter).
#: MT Photos calls ``/restart`` in the middle of an OCR run, and Immich shares the models: a
#: model used within the last minute is likely used again soon, and stays loaded.
RESTART_IDLE_SECONDS = 60.0
#: The face service's recommendation to the app: faces nearer than this (cosine distance) are
#: one person (the reference's value for buffalo_l).
FACIAL_MAX_DISTANCE = 0.5
#: Statuses that keep their meaning for MT Photos (busy, too slow); other failures are ``msg``.
_KEPT_STATUSES = {503, 504}

Work = Callable[[Image.Image], Awaitable[dict[str, Any]]]


class MtPhotos:
    def __init__(
        self, settings: Settings, router: Router, admission: Admission, limits: ImageLimits,
        max_request_bytes: int, runners: RunnerControl,
    ) -> None:
        self.key = settings.mt_api_key
        self.router, self.admission, self.limits = router, admission, limits
        self.max_request_bytes, self.runners = max_request_bytes, runners
        self.face_threshold = settings.mt_face_threshold
        self.restart_idle = min(RESTART_IDLE_SECONDS, settings.model_ttl)  # MODEL_TTL=0: runners keep all
        # cn-clip's architecture names (the reference's CLIP_MODEL) stand for the names they are served under.
        arch = clip_models.ARCHS.get(settings.mt_clip_model)
        self.names = {
            "ocr": settings.mt_ocr_model,
            "clip": arch.served_name if arch is not None else settings.mt_clip_model,
            "facial-recognition": settings.mt_face_model,
        }

    # --- what is served ------------------------------------------------------------------

    _TYPES = {
        "ocr": (("detection", OcrDetection), ("recognition", OcrRecognition)),
        "clip": (("visual", ClipVisual), ("textual", ClipTextual)),
        "facial-recognition": (("detection", FaceDetection), ("recognition", FaceRecognition)),
    }

    def _models(self, task: str, hint: bool = True) -> list[Any]:
        """The task's local models (one per type), or a failure naming what is missing; with
        ``hint``, the log says (once) the command that imports a missing one."""
        found = []
        for type_, kind in self._TYPES[task]:
            entry = Entry(task, type_, self.names[task])
            model = self.router.resolve(entry)
            if not isinstance(model, kind):
                if hint:
                    self.router.hint_import(entry)
                raise RequestError(400, f"{task} model '{self.names[task]}' is not served here (see the service's log)")
            found.append(model)
        return found

    def served(self) -> dict[str, bool]:
        """Which of MT's tasks have their model here. Says nothing in the log: a user of Immich
        alone may well leave a model to the upstream."""
        served = {}
        for task in self._TYPES:
            try:
                self._models(task, hint=False)
                served[task] = True
            except RequestError:
                served[task] = False
        return served

    def describe(self) -> str:
        served = self.served()
        return ", ".join(f"{task} {self.names[task]} ({'served' if served[task] else 'NOT served here'})"
                         for task in self._TYPES)

    # --- routes --------------------------------------------------------------------------

    async def check(self, request: Request) -> Response:
        if (refused := key_refusal(request.headers, self.key)) is not None:
            return refused
        try:
            device = await self.runners.device()
        except Exception as exc:  # the runner not up (yet): the connection test still passes
            log.warning("MT Photos /check: could not ask the runners their device: %s: %s", type(exc).__name__, exc)
            device = "cpu"
        return JSONResponse({
            "result": "pass",
            "title": "mt-photos-ai服务",
            "help": "https://mtmt.tech/docs/advanced/ocr_api",
            "device": device,
            # The face service's /check fields, which the app reads when this URL serves faces too.
            "detector_backend": "insightface",
            "recognition_model": self.names["facial-recognition"],
            "facial_min_score": self.face_threshold,
            "facial_max_distance": FACIAL_MAX_DISTANCE,
            "served": {"ocr": (s := self.served())["ocr"], "clip": s["clip"], "represent": s["facial-recognition"]},
        })

    async def restart(self, request: Request) -> Response:
        """``/restart`` and ``/restart_v2``: never restart; unload the models idle a while."""
        if (refused := key_refusal(request.headers, self.key)) is not None:
            return refused
        try:
            unloaded = await self.runners.unload_idle(self.restart_idle)
            log.info("MT Photos %s: unloaded %d idle model file(s) instead of restarting",
                     request.url.path, len(unloaded))
        except Exception as exc:  # nothing to free is no failure for the client
            log.warning("MT Photos %s: could not unload idle models: %s: %s", request.url.path, type(exc).__name__, exc)
        return JSONResponse({"result": "pass"})

    async def ocr(self, request: Request) -> Response:
        async def work(image: Image.Image) -> dict[str, Any]:
            detection, recognition = self._models("ocr")
            lines = await detection.predict(Inputs(image=image), {}, None)
            kept, texts, scores = await recognition.read(lines, OCR_MIN_SCORE)
            return ocr_result(kept.boxes, texts, scores)

        return await self._image_route(request, "ocr", work)

    async def clip_image(self, request: Request) -> Response:
        async def work(image: Image.Image) -> dict[str, Any]:
            visual, _ = self._models("clip")
            return vector_result(checked(await visual.features(image), "CLIP"))

        return await self._image_route(request, "clip", work)

    async def represent(self, request: Request) -> Response:
        async def work(image: Image.Image) -> dict[str, Any]:
            detection, recognition = self._models("facial-recognition")
            faces = await detection.faces(image, self.face_threshold)
            embeddings = await recognition.embeddings(faces)
            for embedding in embeddings:
                checked(embedding, "face recognition")
            return represent_result(self.names["facial-recognition"], faces.boxes, embeddings)

        return await self._image_route(request, "facial-recognition", work)

    async def clip_text(self, request: Request) -> Response:
        if (refused := key_refusal(request.headers, self.key)) is not None:
            return refused
        try:
            body = await read_body(request, self.max_request_bytes)
        except RequestError as exc:
            return error_response(exc)
        except ClientDisconnect:
            log.info("MT Photos /clip/txt: the client went away before sending its whole request")
            return Response(status_code=400)
        text, problem = _text_of(body)
        del body
        if problem is not None:
            return JSONResponse(problem, status_code=422)

        async def work() -> dict[str, Any]:
            _, textual = self._models("clip")
            return vector_result(checked(await textual.features(text), "CLIP"))

        return await self._answered("/clip/txt", work)

    # --- the shared steps ------------------------------------------------------------------

    async def _image_route(self, request: Request, task: str, work: Work) -> Response:
        if (refused := key_refusal(request.headers, self.key)) is not None:
            return refused
        try:
            body = await read_body(request, self.max_request_bytes)
            form = await parse_form(request, body)
            del body  # the form holds the upload: a request waiting for its turn keeps one copy
        except RequestError as exc:
            return error_response(exc)
        except ClientDisconnect:
            log.info("MT Photos %s: the client went away before sending its whole request", request.url.path)
            return Response(status_code=400)
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                # FastAPI's answer to a missing (or non-file) ``file: UploadFile = File(...)``.
                return JSONResponse(validation_error("missing", ["body", "file"], "Field required: send the image "
                                                     "as a multipart file part named 'file'"), status_code=422)
            data = await upload.read()
        finally:
            await form.close()  # a large upload spools to a temporary file: remove it now

        async def on_image() -> dict[str, Any]:
            models = self._models(task)  # a missing model fails before any pixel is decoded
            image = identify(data)
            if max(image.size) > MAX_SIDE:
                raise RequestError(400, OUT_OF_RANGE)
            check_limits(image, self.limits)
            reduce_to = getattr(models[0], "reduce_to", None)  # CLIP's image tower, where reduced decoding is on
            async with self.admission.slot():
                return await work(await to_thread(_upright, image, reduce_to))

        return await self._answered(request.url.path, on_image)

    async def _answered(self, path: str, work: Callable[[], Awaitable[dict[str, Any]]]) -> Response:
        """``work()``'s answer, or its failure the reference's way (HTTP 200 with ``msg``)."""
        try:
            return JSONResponse(await work())
        except RequestError as exc:
            log.log(logging.WARNING if exc.status >= 500 else logging.INFO, "MT Photos %s: %s", path, exc.detail)
            return error_response(exc) if exc.status in _KEPT_STATUSES else JSONResponse(failure(exc.detail))
        except Exception as exc:  # a bug of ours: still MT's answer, and the traceback in the log
            log.exception("unexpected error while answering MT Photos %s", path)
            return JSONResponse(failure(f"internal error ({type(exc).__name__}); see the immich-cn-ml log"))


def _text_of(body: bytes) -> tuple[str, None] | tuple[None, dict[str, Any]]:
    """``/clip/txt``'s ``{"text": ...}``, or the 422 body FastAPI would give for it."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        position = getattr(exc, "pos", 0)
        return None, validation_error("json_invalid", ["body", position], "JSON decode error: send {\"text\": \"...\"}")
    if not isinstance(payload, dict):
        return None, validation_error("model_attributes_type", ["body"], "Input should be an object: {\"text\": \"...\"}")
    if "text" not in payload:
        return None, validation_error("missing", ["body", "text"], "Field required")
    if not isinstance(payload["text"], str):
        return None, validation_error("string_type", ["body", "text"], "Input should be a valid string")
    return payload["text"], None


def _upright(image: Image.Image, reduce_to: int | None = None) -> Image.Image:
    """Decode every pixel (``reduce_to``: see ``adapters.images.load_pixels``), then turn the
    image upright by its EXIF orientation, as OpenCV's ``imdecode`` (the references' decoder)
    does: coordinates in answers are the upright image's."""
    load_pixels(image, reduce_to)
    try:
        orientation = image.getexif().get(0x0112, 1)
        return ImageOps.exif_transpose(image) if orientation != 1 else image
    except Exception:  # EXIF that cannot be read: OpenCV, too, then keeps the image as stored
        return image
