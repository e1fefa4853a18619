"""The ceiling on requests in flight: past it a fast 503 with Retry-After, and recovery."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time

import httpx

from adapters.overload import InFlightLimit
from tests.support import multipart
from tests.support.ocr_cases import FIXTURES


def _run(limit: int, requests: list[dict]) -> list[int]:
    """Statuses of ``requests`` (ASGI scopes) sent at once through the middleware to an app that
    holds each request until all have arrived."""
    arrived = asyncio.Event()
    held = []

    async def app(scope, receive, send):
        held.append(scope["path"])
        await arrived.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = InFlightLimit(app, limit)

    async def one(scope) -> int:
        sent = []

        async def send(message):
            sent.append(message)

        await middleware(scope, None, send)
        return sent[0]["status"]

    async def main():
        tasks = [asyncio.create_task(one(scope)) for scope in requests]
        await asyncio.sleep(0.05)
        assert middleware.in_flight == min(limit, sum(1 for s in requests if s["method"] == "POST"))
        arrived.set()
        statuses = await asyncio.gather(*tasks)
        assert middleware.in_flight == 0
        return statuses

    return asyncio.run(main())


def test_posts_past_the_ceiling_are_refused_and_other_methods_never_are():
    post = {"type": "http", "method": "POST", "path": "/predict"}
    get = {"type": "http", "method": "GET", "path": "/ping"}
    assert sorted(_run(2, [post] * 5 + [get] * 3)) == [200] * 5 + [503] * 3


def test_a_refusal_carries_retry_after_and_a_json_reason():
    sent = []

    async def app(scope, receive, send):  # pragma: no cover - never reached at limit 0
        raise AssertionError

    async def send(message):
        sent.append(message)

    asyncio.run(InFlightLimit(app, 0)({"type": "http", "method": "POST", "path": "/ocr"}, None, send))
    start, body = sent
    assert start["status"] == 503 and (b"retry-after", b"1") in start["headers"]
    assert "busy" in json.loads(body["body"])["detail"]


def test_over_http_a_burst_past_the_ceiling_gets_fast_503s_and_the_service_recovers(hardening_server):
    from tests.conftest import HARDENING_IN_FLIGHT

    image = (FIXTURES / "scene_1440x1080.jpg").read_bytes()
    entries = json.dumps({"ocr": {"detection": {"modelName": "PP-OCRv5_mobile"},
                                  "recognition": {"modelName": "PP-OCRv5_mobile"}}})
    body, content_type = multipart.build({"entries": entries, "image": multipart.FilePart("blob", image)})

    def ocr(_=None) -> tuple[int, float, httpx.Headers]:
        started = time.monotonic()
        response = httpx.post(f"{hardening_server.url}/predict", content=body,
                              headers={"content-type": content_type}, timeout=120)
        return response.status_code, time.monotonic() - started, response.headers

    assert ocr()[0] == 200  # models loaded: the burst measures serving, not loading
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        burst = pool.map(ocr, range(16))
        ping = httpx.get(f"{hardening_server.url}/ping", timeout=5)
        results = list(burst)
    assert ping.status_code == 200
    refused = [(seconds, headers) for status, seconds, headers in results if status == 503]
    served = [status for status, _, _ in results if status == 200]
    assert len(refused) + len(served) == 16 and len(served) >= HARDENING_IN_FLIGHT and refused
    assert all(headers["retry-after"] == "1" for _, headers in refused)
    assert max(seconds for seconds, _ in refused) < 1.0  # refused at once, not queued
    assert [ocr()[0] for _ in range(HARDENING_IN_FLIGHT + 1)] == [200] * (HARDENING_IN_FLIGHT + 1)
    assert "(IMMICH_CN_ML_MAX_REQUESTS_IN_FLIGHT)" in hardening_server.log()
