"""A runner served alone closes a caller's connection every ``requests`` calls (so a balancer
places the next one afresh); connections without an address (a Unix socket) stay open."""

from __future__ import annotations

import asyncio

import httpx

from config.connection_turnover import FORGET_AFTER, REMEMBERED, ConnectionTurnover


async def _app(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _closes(middleware: ConnectionTurnover, client) -> bool:
    """Whether the answer to one call from ``client`` says ``Connection: close``."""
    sent = []

    async def send(message) -> None:
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    asyncio.run(middleware({"type": "http", "client": client}, receive, send))
    assert sent[1]["body"] == b"ok"  # the answer itself untouched
    return (b"connection", b"close") in sent[0]["headers"]


def test_every_nth_call_of_a_connection_closes_it():
    turnover = ConnectionTurnover(_app, requests=3)
    a, b = ("10.0.0.5", 40001), ("10.0.0.5", 40002)
    assert [_closes(turnover, a) for _ in range(7)] == [False, False, True, False, False, True, False]
    assert [_closes(turnover, b) for _ in range(3)] == [False, False, True]  # each connection its own count


def test_unix_socket_calls_and_a_zero_setting_never_close():
    assert not any(_closes(ConnectionTurnover(_app, requests=1), None) for _ in range(5))
    assert not any(_closes(ConnectionTurnover(_app, requests=0), ("10.0.0.5", 40001)) for _ in range(5))


def test_connections_long_unseen_are_forgotten():
    now = [0.0]
    turnover = ConnectionTurnover(_app, requests=10, clock=lambda: now[0])
    for port in range(REMEMBERED):
        _closes(turnover, ("10.0.0.5", port))
    now[0] = FORGET_AFTER + 1
    _closes(turnover, ("10.0.0.6", 1))
    _closes(turnover, ("10.0.0.6", 2))  # past REMEMBERED: the old ones go
    assert len(turnover._calls) == 2


def test_over_http_a_keep_alive_client_gets_a_new_connection_after_the_last_call(tmp_path):
    from tests.support.bento_server import BentoServer

    server = BentoServer("runners.services:OcrRunner", tmp_path,
                         {"IMMICH_CN_ML_RUNNER_CONNECTION_REQUESTS": "2"}).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            said = [client.post("/about", json={}).headers.get("connection") for _ in range(4)]
        assert said == [None, "close", None, "close"], said
    finally:
        server.stop()
