"""``POST /predict``: Immich's request in, Immich's answer out.

Order of checks follows the reference service: the form and its ``entries`` (422), then the
inputs (400), then the image limits (400/413). Then the router splits the entries: a request
served wholly upstream is forwarded byte for byte; otherwise the local half runs here while
the upstream half (its entries re-encoded, the image bytes unchanged) runs concurrently, and
the answers are merged.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.admission import Admission
from adapters.aio import concurrently, to_thread
from adapters.entries import Entry, entries_to_wire, parse_entries
from adapters.errors import RequestError
from adapters.images import ImageLimits, decode_image, open_image
from adapters.local import Inputs
from adapters.multipart import file_field, parse_form, read_body, text_field
from adapters.pipeline import run_local
from adapters.routing import Plan, Router
from adapters.upstream import Upstream

log = logging.getLogger(__name__)


class Predictor:
    def __init__(
        self, router: Router, upstream: Upstream | None, limits: ImageLimits, max_request_bytes: int,
        admission: Admission,
    ) -> None:
        self.router = router
        self.upstream = upstream
        self.limits = limits
        self.max_request_bytes = max_request_bytes
        self.admission = admission

    async def handle(self, request: Request) -> Response:
        body = await read_body(request, self.max_request_bytes)
        form = await parse_form(request, body)
        try:
            return await self._answer(request, body, form)
        finally:
            await form.close()  # an upload over 1 MB spools to a temporary file: gone now, not at GC

    async def _answer(self, request: Request, body: bytes, form: FormData) -> Response:
        entries = parse_entries(text_field(form, "entries"))

        upload = file_field(form, "image")
        text = text_field(form, "text")
        image_bytes: bytes | None = None
        size = (0, 0)
        if upload is not None:
            image_bytes = await upload.read()
            size = open_image(image_bytes, self.limits).size  # header only: cheap, and refuses bombs early
        elif text is None:
            raise RequestError(400, "Either image or text must be provided")

        plan = self.router.plan(entries)
        if plan.upstream and self.upstream is None:
            raise RequestError(501, _unserved(plan.upstream))
        if not plan.local:
            assert self.upstream is not None
            answer = await self.upstream.forward(body, request.headers.get("content-type", ""))
            # As a header, not media_type: Starlette would append "; charset=utf-8" to text types.
            headers = {"content-type": answer.content_type} if answer.content_type else None
            return Response(answer.content, answer.status, headers=headers)

        if image_bytes is None:
            return JSONResponse(await self._split(plan, form, upload, image_bytes, text, size))
        async with self.admission.slot():
            return JSONResponse(await self._split(plan, form, upload, image_bytes, text, size))

    async def _split(
        self, plan: Plan, form: FormData, upload: UploadFile | None, image_bytes: bytes | None, text: str | None,
        size: tuple[int, int],
    ) -> dict[str, Any]:
        image = None
        if image_bytes is not None:
            image = await to_thread(decode_image, image_bytes, self.limits, _reduce_to(plan))
        work = [run_local(plan.local, Inputs(image=image, text=None if image is not None else text))]
        if plan.upstream:
            assert self.upstream is not None
            data, files = _upstream_form(form, plan.upstream, upload, image_bytes)
            work.append(self.upstream.predict(data, files))
        local, *upstream = await concurrently(*work)

        answer: dict[str, Any] = upstream[0] if upstream else {}
        answer.update(local)
        if image is not None:  # the image as sent, whatever size it was decoded at
            answer["imageHeight"], answer["imageWidth"] = size[1], size[0]
        return answer


def _reduce_to(plan: Plan) -> int | None:
    """The least side every local model of the request can read its image from, when each
    says one (``reduce_to``: CLIP's towers, where reduced decoding is on); else None: the image
    is decoded whole (faces and OCR read every pixel)."""
    sides = [getattr(model, "reduce_to", None) for _, model in plan.local]
    return max(sides) if sides and None not in sides else None


def _upstream_form(
    form: FormData, entries: list[Entry], upload: UploadFile | None, image_bytes: bytes | None
) -> tuple[dict[str, str], dict[str, tuple[str, bytes, str]]]:
    """The request as the upstream should see it: only its entries, every other field kept."""
    data = {key: value for key, value in form.multi_items() if isinstance(value, str)}
    data["entries"] = entries_to_wire(entries)
    files = {}
    if upload is not None and image_bytes is not None:
        files["image"] = (upload.filename or "blob", image_bytes, upload.content_type or "application/octet-stream")
    return data, files


def _unserved(entries: list[Entry]) -> str:
    names = "; ".join(entry.describe() for entry in entries)
    return (
        f"No local model serves {names}, and no upstream is set "
        "(set IMMICH_CN_ML_UPSTREAM_URL to a stock Immich ML server to pass such requests on)"
    )
