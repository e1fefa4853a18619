"""adapters/runner_link.py: a runner call whose connection drops under it is sent once more."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest

from adapters.runner_link import RunnerLink, sent_again_if_dropped

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


async def _runner_that_drops(drops: int) -> tuple[asyncio.base_events.Server, list[bytes]]:
    """A server that reads each request and closes the connection without an answer for the
    first ``drops`` requests (what a runner closing an idle kept-alive connection looks like to
    the caller), then answers."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)
            seen.append(await reader.readexactly(length))
            if len(seen) <= drops:
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
