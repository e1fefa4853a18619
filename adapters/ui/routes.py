"""The page's routes: its static files and its status JSON. Light to import (every process of
the Bento imports the app); the status itself is built in ``adapters.ui.status``."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


async def status(request: Request) -> Response:
    return await request.app.state.ui_status.answer()


def routes() -> list[BaseRoute]:
    return [
        Route("/ui/api/status", status, methods=["GET"]),
        Mount("/ui", app=StaticFiles(directory=STATIC, html=True), name="ui"),
    ]
