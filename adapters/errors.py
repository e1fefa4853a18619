"""The one exception type the HTTP layer turns into a JSON ``{"detail": ...}`` answer, and
that answer (``error_response``)."""

from __future__ import annotations

from starlette.responses import JSONResponse


class RequestError(Exception):
    """A request we answer with ``status`` and ``{"detail": detail}``.

    Raised anywhere below the HTTP layer; the routes turn it into ``error_response``, so no
    model adapter needs to know about Starlette.
    """

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail

    def __repr__(self) -> str:
        return f"RequestError({self.status}, {self.detail!r})"


#: Seconds a client is told to wait before trying a 503 again.
RETRY_AFTER = 1


def error_response(error: RequestError) -> JSONResponse:
    """``{"detail": ...}`` with the error's status; a 503 says when to try again (Retry-After)."""
    headers = {"Retry-After": str(RETRY_AFTER)} if error.status == 503 else None
    return JSONResponse({"detail": error.detail}, status_code=error.status, headers=headers)
