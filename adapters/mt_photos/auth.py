"""The ``api-key`` header every MT Photos route needs.

A wrong key gets the reference's 401 ``{"detail": "Invalid API key"}``; a missing header gets
the 422 its framework (FastAPI) answers, in that framework's validation shape, so a client that
reads one reads the other. Keys are compared in constant time: the time taken says nothing
about how much of a guess was right.
"""

from __future__ import annotations

import hmac

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from adapters.mt_photos.answers import validation_error

HEADER = "api-key"


def key_refusal(headers: Headers, key: str) -> JSONResponse | None:
    """The answer for a request without the right key, or None when its key is right."""
    given = headers.get(HEADER)
    if given is None:
        return JSONResponse(
            validation_error("missing", ["header", HEADER], "Field required: the api-key header carries the MT Photos API key"),
            status_code=422,
        )
    # Starlette decodes header bytes as latin-1: encoding back gives the bytes the client sent.
    if not hmac.compare_digest(given.encode("latin-1"), key.encode("utf-8")):
        return JSONResponse({"detail": "Invalid API key"}, status_code=401)
    return None
