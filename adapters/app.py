"""The ASGI app mounted into the BentoML entry service: Immich's ``/``, ``/ping``, ``/predict``,
and MT Photos' routes (``adapters.mt_photos``) on the same models.

``@bentoml.api`` cannot express the ``/predict`` contract (its form parsing JSON-decodes fields
and fetches strings in file fields as URLs), so this plain Starlette app reads the form itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.middleware import Middleware
from starlette.routing import Route

from adapters import shown
from adapters.admission import Admission
from adapters.errors import RequestError, error_response
from adapters.images import ImageLimits
from adapters.local import LocalModels
from adapters.mt_photos import routes as mt_photos
from adapters.overload import InFlightLimit
from adapters.predict import Predictor
from adapters.preload import Readiness, preload
from adapters.routing import Router
from adapters.runner_control import RunnerControl
from adapters.ui import routes as ui
from adapters.upstream import Upstream
from config.bento import SERVICE_NAME
from config.settings import Settings
from config.workers import start_afresh as end_worker

log = logging.getLogger(__name__)


async def root(request: Request) -> Response:
    """Immich's JSON; a browser (which asks for HTML) goes to the status and try-it page."""
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse("/ui/", status_code=302)
    return JSONResponse({"message": "Immich ML"})


async def ping(_: Request) -> Response:
    return PlainTextResponse("pong")


async def predict(request: Request) -> Response:
    predictor: Predictor = request.app.state.predictor
    try:
        return await predictor.handle(request)
    except RequestError as exc:
        # BentoML's access log has the status; this line has the reason.
        log.log(logging.WARNING if exc.status >= 500 else logging.INFO, "/predict %s: %s", exc.status, exc.detail)
        return error_response(exc)
    except ClientDisconnect:
        log.info("/predict: the client went away before sending its whole request")
        return Response(status_code=400)
    except Exception as exc:  # a bug of ours: still answer JSON, and log the traceback
        log.exception("unexpected error while answering /predict")
        return JSONResponse(
            {"detail": f"internal error ({type(exc).__name__}); see the immich-cn-ml log"}, status_code=500
        )


def create_app(
    settings: Settings, local_models: Callable[[], LocalModels],
    runner_control: Callable[[], RunnerControl] = lambda: RunnerControl([]),
) -> Starlette:
    """Build the app. ``local_models`` and ``runner_control`` are called once per worker at
    start-up, when the BentoML service instance (and so its runner dependencies) exists.
    ``app.state.readiness`` says whether the preloads are in (the entry service's
    ``__is_ready__`` reads it)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        upstream = None
        if settings.upstream_url:
            upstream = Upstream(
                settings.upstream_url,
                connect_timeout=settings.upstream_connect_timeout,
                timeout=settings.upstream_timeout,
                max_connections=settings.upstream_max_connections,
            )
        router = Router(local_models(), settings.model_aliases)
        # Idle as long as the runner waits before it unloads a model (it starts afresh then too).
        # Preloads are loaded when a worker starts: one that started afresh would load them again,
        # and MODEL_TTL unload them again, for ever. So with preloads, entry workers stay.
        afresh = 0.0
        if settings.model_ttl > 0 and not any(settings.preloads.values()):
            afresh = settings.model_ttl + settings.model_ttl_poll
        admission = Admission(settings.active_requests, start_afresh_after=afresh,
                              start_afresh=lambda: end_worker("entry worker", "idle since MODEL_TTL"))
        limits = ImageLimits(max_pixels=settings.max_image_pixels, max_side=settings.max_image_side)
        app.state.predictor = Predictor(router, upstream, limits, settings.max_request_bytes, admission)
        # The models' libraries: imported in the entry workers only.
        from adapters.mt_photos.handlers import MtPhotos
        from adapters.ui.status import Status

        runners = runner_control()
        app.state.mt_photos = MtPhotos(settings, router, admission, limits, settings.max_request_bytes, runners)
        app.state.ui_status = Status(router, runners, upstream, app.state.mt_photos, SERVICE_NAME)
        log.info(
            "serving locally: %s; upstream: %s",
            ", ".join("/".join(key) for key in router.local_keys) or "nothing yet",
            shown.url(settings.upstream_url) if settings.upstream_url else "none (unserved tasks get 501)",
        )
        log.info("MT Photos routes: %s", app.state.mt_photos.describe())
        log.info("model runners: %s", runners.describe())
        background = [asyncio.create_task(preload(router, settings.preloads, app.state.readiness)),
                      asyncio.create_task(admission.give_back_memory()),
                      asyncio.create_task(admission.follow_device(runners.about, settings.active_requests_on))]
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            if upstream is not None:
                await upstream.aclose()

    routes = [
        Route("/", root, methods=["GET"]),
        Route("/ping", ping, methods=["GET"]),
        Route("/predict", predict, methods=["POST"]),
        *mt_photos.routes(),
        *ui.routes(),
    ]
    # Outermost: a request past the ceiling is refused before anything reads its body.
    middleware = [Middleware(InFlightLimit, limit=settings.requests_in_flight)]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.readiness = Readiness()
    return app
