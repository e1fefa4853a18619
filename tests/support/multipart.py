"""Build multipart bodies by hand (so a test knows every byte) and read them back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartParser


@dataclass(frozen=True)
class FilePart:
    filename: str
    content: bytes
    content_type: str = "application/octet-stream"


def build(fields: dict[str, str | FilePart], boundary: str = "test-boundary-0123456789") -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data request with these parts, in order."""
    out = bytearray()
    for name, value in fields.items():
        out += f"--{boundary}\r\n".encode()
        if isinstance(value, FilePart):
            out += f'Content-Disposition: form-data; name="{name}"; filename="{value.filename}"\r\n'.encode()
            out += f"Content-Type: {value.content_type}\r\n\r\n".encode()
            out += value.content
        else:
            out += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            out += value.encode()
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def parse(body: bytes, content_type: str) -> dict[str, str | FilePart]:
    """The parts of a multipart body, by name (what an upstream stand-in received)."""

    async def stream():
        yield body

    async def run() -> dict[str, str | FilePart]:
        form = await MultiPartParser(Headers({"content-type": content_type}), stream()).parse()
        parts: dict[str, str | FilePart] = {}
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                parts[name] = FilePart(value.filename or "", await value.read(), value.content_type or "")
            else:
                parts[name] = value
        return parts

    return asyncio.run(run())
