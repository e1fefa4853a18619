"""The upstream proxy: a stock Immich ML server that answers what we do not serve.

One pooled ``httpx.AsyncClient`` per worker. Failures become ``RequestError`` with a detail that
names the upstream and what happened, so Immich's log (and ours) tells the user where to look:
connection refused -> 502, timeout -> 504, an upstream error status -> that status.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Awaitable

import httpx

from adapters import shown
from adapters.errors import RequestError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpstreamAnswer:
    status: int
    content: bytes
    content_type: str | None


class Upstream:
    def __init__(self, base_url: str, *, connect_timeout: float, timeout: float, max_connections: int) -> None:
        self.predict_url = f"{base_url}/predict"
        self.ping_url = f"{base_url}/ping"
        self.base_url = shown.url(base_url)  # as logs and answers name it: credentials masked
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            # The upstream is a sibling container. A host-wide HTTP_PROXY meant for reaching
            # the internet must not capture it.
            trust_env=False,
        )

    async def forward(self, body: bytes, content_type: str) -> UpstreamAnswer:
        """Send a whole ``/predict`` body as it came; return the answer as it comes."""
        response = await self._send(
            self._client.post(self.predict_url, content=body, headers={"content-type": content_type})
        )
        if response.status_code >= 400:
            log.warning("upstream %s answered %s: %s", self.base_url, response.status_code, response.text[:300])
        return UpstreamAnswer(response.status_code, response.content, response.headers.get("content-type"))

    async def predict(self, data: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> dict[str, Any]:
        """Send part of a request (some of its entries); return the parsed JSON object."""
        response = await self._send(self._client.post(self.predict_url, data=data, files=files or None))
        if not response.is_success:
            raise RequestError(
                response.status_code,
                f"upstream {self.base_url} answered {response.status_code}: {_detail(response)}",
            )
        try:
            answer = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RequestError(502, f"upstream {self.base_url} answered invalid JSON: {exc}") from exc
        if not isinstance(answer, dict):
            raise RequestError(502, f"upstream {self.base_url} answered JSON that is not an object")
        return answer

    async def ping(self, timeout: float = 2.0) -> bool:
        """Whether the upstream answers ``/ping`` with 200 within ``timeout`` seconds."""
        try:
            return (await self._client.get(self.ping_url, timeout=timeout)).status_code == 200
        except httpx.HTTPError:
            return False

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _send(self, request: Awaitable[httpx.Response]) -> httpx.Response:
        try:
            return await request
        except httpx.ConnectTimeout as exc:
            raise self._failed(504, f"did not accept a connection within {self._connect_timeout:g} s") from exc
        except httpx.TimeoutException as exc:
            raise self._failed(504, f"did not answer within {self._timeout:g} s ({type(exc).__name__})") from exc
        except httpx.ConnectError as exc:
            raise self._failed(502, f"refused the connection ({exc})") from exc
        except httpx.TransportError as exc:
            raise self._failed(502, f"failed: {type(exc).__name__}: {exc}") from exc

    def _failed(self, status: int, what: str) -> RequestError:
        detail = f"upstream {self.base_url} {what}"
        log.warning("%s -> %s", detail, status)
        return RequestError(status, detail)


def _detail(response: httpx.Response) -> str:
    """The upstream's own ``detail`` when it gave one, else the start of its body."""
    try:
        body = response.json()
        if isinstance(body, dict) and "detail" in body:
            return str(body["detail"])
    except (json.JSONDecodeError, UnicodeDecodeError):
        pass
    return response.text[:300] or response.reason_phrase
