"""The one exception type the HTTP layer turns into a JSON ``{"detail": ...}`` answer."""

from __future__ import annotations


class RequestError(Exception):
    """A request we answer with ``status`` and ``{"detail": detail}``.

    Raised anywhere below the HTTP layer; the app's exception handler shapes the response, so
    no adapter needs to know about Starlette.
    """

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail

    def __repr__(self) -> str:
        return f"RequestError({self.status}, {self.detail!r})"
