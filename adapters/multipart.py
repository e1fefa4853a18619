"""Read a request body within a size limit, and parse it as a form.

The body is read once into memory: the upstream proxy forwards exactly those bytes, and the
form is parsed from them too, so nothing is read twice and nothing is re-encoded.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from adapters.errors import RequestError


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def parse_form(request: Request, body: bytes) -> FormData:
    """Parse ``body`` (already read from ``request``) as multipart or urlencoded form data."""
    replayed = False

    async def receive() -> dict[str, Any]:
        nonlocal replayed
        if replayed:
            return {"type": "http.disconnect"}
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        return await Request(request.scope, receive).form(max_files=8, max_fields=64)
    except (MultiPartException, HTTPException) as exc:
        reason = getattr(exc, "detail", None) or getattr(exc, "message", str(exc))
        raise RequestError(400, f"malformed form body: {reason}") from exc


def text_field(form: FormData, name: str) -> str | None:
    """A plain form field; a file part under that name does not count."""
    value = form.get(name)
    return value if isinstance(value, str) else None


def file_field(form: FormData, name: str) -> UploadFile | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, UploadFile):
        raise RequestError(400, f"'{name}' must be a file part (with a filename), not a text field")
    return value
