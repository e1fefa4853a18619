"""The upstream proxy's failure answers, over real HTTP."""

from __future__ import annotations

import json
import time

import httpx

from tests.conftest import UPSTREAM_TIMEOUT
from tests.support import multipart
from tests.support.upstream_stub import Reply

CLIP_TEXTUAL = json.dumps({"clip": {"textual": {"modelName": "ViT-B-32__openai"}}})


def post_text(server) -> httpx.Response:
    body, content_type = multipart.build({"entries": CLIP_TEXTUAL, "text": "猫"})
    return httpx.post(f"{server.url}/predict", content=body, headers={"content-type": content_type}, timeout=30)


def test_upstream_500_is_passed_through_unchanged(proxy_server, upstream):
    failure = b'{"detail":"Failed to load model \'ViT-B-32__openai\'"}'
    upstream.reset(lambda _: Reply(status=500, body=failure))
    response = post_text(proxy_server)
    assert response.status_code == 500
    assert response.content == failure


def test_upstream_non_json_error_is_passed_through_unchanged(proxy_server, upstream):
    upstream.reset(lambda _: Reply(status=503, body=b"Service Unavailable", content_type="text/plain"))
    response = post_text(proxy_server)
    assert response.status_code == 503
    assert response.content == b"Service Unavailable"
    assert response.headers["content-type"] == "text/plain"


def test_refused_connection_gets_502_naming_the_upstream(dead_upstream_server):
    response = post_text(dead_upstream_server)
    assert response.status_code == 502
    detail = response.json()["detail"]
    assert dead_upstream_server.env["IMMICH_CN_ML_UPSTREAM_URL"] in detail
    assert "refused the connection" in detail


def test_slow_upstream_gets_504_within_the_timeout(proxy_server, upstream):
    upstream.reset(lambda _: Reply(delay=UPSTREAM_TIMEOUT + 3))
    started = time.monotonic()
    response = post_text(proxy_server)
    elapsed = time.monotonic() - started

    assert response.status_code == 504
    detail = response.json()["detail"]
    assert upstream.url in detail and f"did not answer within {UPSTREAM_TIMEOUT:g} s" in detail
    assert UPSTREAM_TIMEOUT <= elapsed < UPSTREAM_TIMEOUT + 2.5


def test_the_upstreams_credentials_are_in_no_answer_and_no_log_line(hardening_server):
    from tests.conftest import UPSTREAM_PASSWORD

    response = post_text(hardening_server)  # a model not served here: the upstream, which is down
    assert response.status_code == 502
    detail = response.json()["detail"]
    assert "***@127.0.0.1" in detail and UPSTREAM_PASSWORD not in detail and "immich:" not in detail
    assert "***@127.0.0.1" in hardening_server.log() and UPSTREAM_PASSWORD not in hardening_server.log()
