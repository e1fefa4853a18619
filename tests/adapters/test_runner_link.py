"""adapters/runner_link.py: a runner call whose connection drops under it is sent once more."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import time

import aiohttp
import httpx
import pytest
from PIL import Image

from tests.support import multipart

from adapters.runner_link import RunnerLink, RunnerUnavailable, sent_again_if_dropped

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


async def _runner_that_drops(drops: int, after: float = 0.0) -> tuple[asyncio.base_events.Server, list[bytes]]:
    """A server that reads each request and closes the connection without an answer for the
    first ``drops`` requests (what a runner closing an idle kept-alive connection looks like to
    the caller; ``after`` seconds: a runner that dies while working on the call), then answers."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)
            seen.append(await reader.readexactly(length))
            if len(seen) <= drops:
                await asyncio.sleep(after)
                writer.close()
                return
            writer.write(ANSWER)
            await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, seen


def _post(session: aiohttp.ClientSession, url: str):
    async def call(body: bytes) -> str:
        async with session.post(url, data=body) as response:
            return await response.text()

    return call


def test_a_call_dropped_by_the_runner_is_sent_again_and_answered():
    async def main():
        server, seen = await _runner_that_drops(1)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/clip_text"
        async with server, aiohttp.ClientSession() as session:
            answer = await sent_again_if_dropped("clip_text", _post(session, url), b"tokens")
        return answer, seen

    answer, seen = asyncio.run(main())
    assert answer == "ok"
    assert seen == [b"tokens", b"tokens"]


def test_without_the_second_try_the_same_drop_fails_the_call():
    # The failure the link exists for, as aiohttp reports it.
    async def main():
        server, _ = await _runner_that_drops(1)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/clip_text"
        async with server, aiohttp.ClientSession() as session:
            await _post(session, url)(b"tokens")

    with pytest.raises(aiohttp.ServerDisconnectedError):
        asyncio.run(main())


def test_a_call_dropped_twice_fails_with_the_drop():
    async def main():
        server, seen = await _runner_that_drops(2)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/clip_text"
        async with server, aiohttp.ClientSession() as session:
            try:
                await sent_again_if_dropped("clip_text", _post(session, url), b"tokens")
            finally:
                assert len(seen) == 2

    with pytest.raises(aiohttp.ServerDisconnectedError):
        asyncio.run(main())


def test_a_call_the_runner_died_working_on_is_not_sent_again(monkeypatch):
    # Maybe the call killed it (out of memory on a huge image): a second try would kill it again.
    import adapters.runner_link as runner_link

    monkeypatch.setattr(runner_link, "STALE_WITHIN", 0.2)

    async def main():
        server, seen = await _runner_that_drops(1, after=0.3)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/face_embed"
        async with server, aiohttp.ClientSession() as session:
            try:
                await sent_again_if_dropped("face_embed", _post(session, url), b"faces")
            finally:
                assert seen == [b"faces"]

    with pytest.raises(aiohttp.ServerDisconnectedError):
        asyncio.run(main())


def test_a_runner_that_cannot_be_reached_is_not_tried_again():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    calls = []

    async def main():
        async with aiohttp.ClientSession() as session:
            post = _post(session, f"http://127.0.0.1:{port}/clip_text")

            async def counted(body):
                calls.append(body)
                return await post(body)

            await sent_again_if_dropped("clip_text", counted, b"tokens")

    with pytest.raises(aiohttp.ClientConnectorError):
        asyncio.run(main())
    assert calls == [b"tokens"]


def test_other_errors_are_not_tried_again():
    calls = []

    async def failing(*args):
        calls.append(args)
        raise ValueError("the runner said no")

    with pytest.raises(ValueError):
        asyncio.run(sent_again_if_dropped("ocr_detect", failing, 1))
    assert calls == [(1,)]


def test_the_link_passes_each_api_call_through_to_the_dependency():
    class Client:
        async def face_embed(self, jobs, *, hint=None):
            return ("face_embed", jobs, hint)

    class Dependency:
        to_async = Client()

    link = RunnerLink(Dependency())
    assert asyncio.run(link.to_async.face_embed([1, 2], hint="x")) == ("face_embed", [1, 2], "x")



def test_a_runner_down_is_logged_once_per_interval_not_once_per_call(caplog, monkeypatch):
    # Every call to a runner that is down fails; /predict logs each request, the link says why
    # once per WARN_EVERY seconds per API, then how many it left out.
    import adapters.runner_link as runner_link

    class Client:
        async def face_embed(self, jobs):
            raise ConnectionRefusedError("refused")

        async def face_detect(self, jobs):
            raise ConnectionRefusedError("refused")

    class Dependency:
        to_async = Client()

    now = [0.0]
    monkeypatch.setattr(runner_link.time, "monotonic", lambda: now[0])
    link = RunnerLink(Dependency())

    def fail(api: str) -> None:
        with pytest.raises(runner_link.RunnerUnavailable):
            asyncio.run(getattr(link.to_async, api)([1]))

    for _ in range(5):
        fail("face_embed")
    fail("face_detect")  # another API: a line of its own
    lines = [r.getMessage() for r in caplog.records if r.name == "adapters.runner_link"]
    assert len(lines) == 2 and "face_embed" in lines[0] and "face_detect" in lines[1]
    now[0] = runner_link.WARN_EVERY
    fail("face_embed")
    lines = [r.getMessage() for r in caplog.records if r.name == "adapters.runner_link"]
    assert len(lines) == 3 and lines[2].endswith("(4 more like it in the last 10 s)")



def test_a_runner_elsewhere_that_cannot_be_reached_is_not_called_for_a_while(monkeypatch):
    # Its host off, each call would wait the connect timeout inside an admission slot that every
    # family shares: after one such call, the others fail at once; then one call at a time tries.
    import adapters.runner_link as runner_link

    now = [0.0]
    monkeypatch.setattr(runner_link.time, "monotonic", lambda: now[0])
    sent, gate, host_on = [], asyncio.Event(), [False]

    class Client:
        async def face_detect(self, jobs):
            sent.append(jobs)
            await gate.wait()
            if not host_on[0]:
                raise aiohttp.ConnectionTimeoutError("no connection in time")
            return ["faces"]

    class Dependency:
        to_async = Client()

    async def main() -> None:
        link = RunnerLink(Dependency(), elsewhere=True)
        call = link.to_async.face_detect
        gate.set()
        with pytest.raises(runner_link.RunnerUnavailable):
            await call(1)
        assert len(sent) == 1
        with pytest.raises(runner_link.RunnerUnavailable, match="not called again for 5 s"):
            await call(2)  # at once, nothing sent
        assert len(sent) == 1
        now[0] = runner_link.UNREACHABLE_FOR
        gate.clear()
        trial = asyncio.create_task(call(3))  # the one that finds out
        await asyncio.sleep(0)
        with pytest.raises(runner_link.RunnerUnavailable, match="another call is finding out"):
            await call(4)
        host_on[0] = True  # back meanwhile
        gate.set()
        assert await trial == ["faces"] and len(sent) == 2
        assert await call(5) == ["faces"] and len(sent) == 3  # reachable again: every call goes

        # A trial that is cancelled (its client went away) leaves the next call to try.
        host_on[0] = False
        with pytest.raises(runner_link.RunnerUnavailable):
            await call(6)
        now[0] += runner_link.UNREACHABLE_FOR
        gate.clear()
        trial = asyncio.create_task(call(7))
        await asyncio.sleep(0)
        trial.cancel()
        await asyncio.gather(trial, return_exceptions=True)
        host_on[0] = True
        gate.set()
        assert await call(8) == ["faces"]

    asyncio.run(main())


def test_a_runner_of_this_server_is_called_every_time():
    # A local socket refuses at once: nothing to spare, and a restarted runner is used at once.
    sent = []

    class Client:
        async def face_detect(self, jobs):
            sent.append(jobs)
            raise ConnectionRefusedError("refused")

    class Dependency:
        to_async = Client()

    link = RunnerLink(Dependency())
    for jobs in range(3):
        with pytest.raises(RunnerUnavailable):
            asyncio.run(link.to_async.face_detect(jobs))
    assert sent == [0, 1, 2]


# --- a runner's state (busy, slow, down) as the client's 503/504 -----------------------------

def test_busy_slow_and_unreachable_runners_are_declared_503_and_504():
    from http import HTTPStatus

    from bentoml.exceptions import BentoMLException, ServiceUnavailable

    from adapters.runner_link import declared

    cases = [
        (ServiceUnavailable("busy"), 503),
        (BentoMLException("slow", error_code=HTTPStatus.GATEWAY_TIMEOUT), 504),
        (asyncio.TimeoutError(), 504),
        (aiohttp.ServerDisconnectedError(), 503),
        (ConnectionRefusedError(), 503),
        (aiohttp.ConnectionTimeoutError(), 503),  # a runner elsewhere, its host off: not a slow runner
        # Another runner at the URL (BentoML's 404 for a route it lacks): the family is not here.
        (BentoMLException("Not Found", error_code=HTTPStatus.NOT_FOUND), 503),
        (BentoMLException("a bug", error_code=HTTPStatus.INTERNAL_SERVER_ERROR), None),
        (ValueError("a bug"), None),
    ]
    for error, status in cases:
        answer = declared("face_embed", error)
        assert (answer.status if answer is not None else None) == status, error
    assert "is its URL that of the right runner?" in declared("face_embed", cases[6][0]).detail


def _fake_faces(server, width: int) -> httpx.Response:
    from tests.support.fake_service import MODEL

    entries = json.dumps({"facial-recognition": {"detection": {"modelName": MODEL}, "recognition": {"modelName": MODEL}}})
    out = io.BytesIO()
    Image.new("RGB", (width, 40)).save(out, "PNG")
    body, content_type = multipart.build({"entries": entries, "image": multipart.FilePart("blob", out.getvalue())})
    return httpx.post(f"{server.url}/predict", content=body, headers={"content-type": content_type}, timeout=60)


def test_over_http_a_busy_runner_is_503_with_retry_after_and_a_slow_one_504(seam_server):
    from tests.support.fake_service import BUSY_WIDTH, SLOW_WIDTH

    busy = _fake_faces(seam_server, BUSY_WIDTH)
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert "busy or not ready" in busy.json()["detail"]
    slow = _fake_faces(seam_server, SLOW_WIDTH)
    assert slow.status_code == 504 and "did not answer in time" in slow.json()["detail"]
    assert _fake_faces(seam_server, 100).status_code == 200


def test_over_http_a_runner_that_dies_is_503_and_the_service_recovers(seam_server):
    from tests.support.fake_service import DYING_WIDTH

    dead = _fake_faces(seam_server, DYING_WIDTH)
    assert dead.status_code == 503, dead.text
    assert "cannot be reached" in dead.json()["detail"]
    deadline = time.monotonic() + 60  # BentoML's arbiter starts the runner again
    while _fake_faces(seam_server, 100).status_code != 200:
        assert time.monotonic() < deadline, seam_server.log()[-3000:]
        time.sleep(0.5)
