"""A file host on 127.0.0.1 standing in for Hugging Face, ModelScope and GitHub's release
downloads, as the import command calls them: it serves byte ranges (so downloads can resume),
can drop a connection part-way, can publish a wrong size or checksum, and records every request.

- Hugging Face: ``/<org>/<repo>/resolve/main/<file>`` answers 302 to ``/lfs/<sha256>`` with the
  ``X-Linked-Etag`` and ``X-Linked-Size`` headers the hub (and its mirrors) send for LFS files.
- ModelScope: ``/api/v1/models/<owner>/<name>/repo?Revision=master&FilePath=<file>`` serves the
  file, ``.../repo/files?Revision=master&Recursive=true`` lists ``Path``, ``Size``, ``Sha256``;
  rapidocr's ``/models/RapidAI/RapidOCR/resolve/...`` paths serve files too.
- Anything else added with ``add`` (a release asset) is served as it is.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote_plus


@dataclass
class Served:
    data: bytes
    headers: dict[str, str] = field(default_factory=dict)
    drop_after: int | None = None  # close the connection after this many bytes, once


@dataclass
class Request:
    path: str
    range: str | None


class FileHost:
    def __init__(self) -> None:
        self.routes: dict[str, Served] = {}
        self.listings: dict[str, list[dict]] = {}
        self.requests: list[Request] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                host.requests.append(Request(self.path, self.headers.get("Range")))
                host._answer(self)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- what the sources serve ---------------------------------------------------------------

    def add(self, path: str, data: bytes, **options) -> None:
        self.routes[path] = Served(data, **options)

    def add_huggingface(self, repo: str, filename: str, data: bytes, *, sha256: str | None = None,
                        size: int | None = None, **options) -> str:
        """``repo`` (org/name) publishing ``filename``; ``sha256``/``size``: what the hub says
        (default: the truth). Returns the resolve path."""
        digest = hashlib.sha256(data).hexdigest()
        resolve = f"/{repo}/resolve/main/{filename}"
        self.routes[resolve] = Served(b"", {"Location": f"/lfs/{digest}", "X-Linked-Etag": f'"{sha256 or digest}"',
                                            "X-Linked-Size": str(size if size is not None else len(data))})
        self.routes[f"/lfs/{digest}"] = Served(data, **options)
        return resolve

    def add_modelscope(self, model_id: str, path: str, data: bytes, *, sha256: str | None = None,
                       size: int | None = None, **options) -> str:
        """``model_id`` (owner/name) publishing ``path`` through the file API. Returns its URL path."""
        url = f"/api/v1/models/{model_id}/repo?Revision=master&FilePath={quote_plus(path)}"
        self.routes[url] = Served(data, **options)
        self.listings.setdefault(model_id, []).append({
            "Name": path.rsplit("/", 1)[-1], "Path": path, "Type": "blob",
            "Size": size if size is not None else len(data), "Sha256": sha256 or hashlib.sha256(data).hexdigest()})
        listing = f"/api/v1/models/{model_id}/repo/files?Revision=master&Recursive=true"
        body = json.dumps({"Code": 200, "Success": True, "Data": {"Files": self.listings[model_id]}}).encode()
        self.routes[listing] = Served(body, {"Content-Type": "application/json"})
        return url

    def asked(self) -> list[str]:
        return [request.path for request in self.requests]

    # --- answering ---------------------------------------------------------------------------

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        served = self.routes.get(handler.path)
        if served is None:
            handler.send_response(404)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if "Location" in served.headers:
            handler.send_response(302)
            for name, value in served.headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        start = 0
        wanted = handler.headers.get("Range")
        if wanted and wanted.startswith("bytes="):
            start = int(wanted[len("bytes="):].split("-")[0])
        if start >= len(served.data) and start:
            handler.send_response(416)
            handler.send_header("Content-Range", f"bytes */{len(served.data)}")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        body = served.data[start:]
        handler.send_response(206 if start else 200)
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(served.data) - 1}/{len(served.data)}")
        for name, value in served.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if served.drop_after is not None and served.drop_after < len(body):
            cut, served.drop_after = served.drop_after, None
            handler.wfile.write(body[:cut])
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(2)  # the connection drops part-way, once
            return
        handler.wfile.write(body)
