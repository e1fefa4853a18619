"""MT Photos' routes. Each calls the ``MtPhotos`` (``adapters.mt_photos.handlers``) in
``app.state.mt_photos``, which the app makes at start-up in the entry service's workers: this
module stays light, because every process of the Bento imports the app (``service.py``), while
the handlers import the models' pre- and post-processing libraries."""

from __future__ import annotations

from typing import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def routes() -> list[Route]:
    """The routes, each calling the ``MtPhotos`` in ``app.state.mt_photos``."""

    def call(name: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await getattr(request.app.state.mt_photos, name)(request)
        return endpoint

    return [
        Route("/check", call("check"), methods=["POST"]),
        Route("/ocr", call("ocr"), methods=["POST"]),
        Route("/clip/img", call("clip_image"), methods=["POST"]),
        Route("/clip/txt", call("clip_text"), methods=["POST"]),
        Route("/represent", call("represent"), methods=["POST"]),
        Route("/restart", call("restart"), methods=["POST"]),
        Route("/restart_v2", call("restart"), methods=["POST"]),
    ]
