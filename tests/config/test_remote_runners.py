"""A runner at a URL: `bentoml serve` starts no process for it, and calls to it are sent as
BentoML's own service-to-service calls are (pickle, which carries numpy arrays)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from config.remote_runners import (
    CONNECT_TIMEOUT, KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_PROBES, PICKLE, UNACKNOWLEDGED_MS, runner_at,
)
from runners.services import ClipRunner
from tests.support.bento_server import ROOT, free_port


def test_a_runner_at_a_url_is_called_with_bentoml_pickle_and_a_short_connect_timeout():
    # As the entry worker resolves it: the service's configuration in place, the layout's settings.
    script = ("import json, service; s = service.ImmichCnMl; s.inject_config(); "
              "c = s.dependencies['clip'].get().to_async; t = c._session_manager._timeout; "
              "print(json.dumps([c.media_type, t.sock_connect, t.total, sorted(c.endpoints), "
              "sorted(c._session_manager._headers)]))")
    media_type, connect, total, endpoints, headers = _run(script, {
        "IMMICH_CN_ML_RUNNERS": "split", "IMMICH_CN_ML_RUNNER_URL__CLIP": "http://127.0.0.1:9",
        "IMMICH_CN_ML_REQUEST_TIMEOUT": "700", "BENTO_CLOUD_API_KEY": "cloud-secret"})
    assert (media_type, connect) == (PICKLE, CONNECT_TIMEOUT)
    assert "Authorization" not in headers  # a BentoCloud key is no business of a runner on the LAN
    assert total == pytest.approx(700 * 1.01)  # the runner's own traffic timeout, as BentoML's clients take it
    assert {"clip_image", "clip_text", "about", "load", "unload_idle"} <= set(endpoints)



#: Makes a call through the entry's client for the CLIP runner to a plain HTTP server standing in
#: for a runner, and prints the options of the connection's socket.
KEEPALIVE_SCRIPT = """
import asyncio, json, os, socket, service
s = service.ImmichCnMl; s.inject_config()
client = s.dependencies["clip"].get().to_async

heads = []

async def main():
    async def answer(reader, writer):
        heads.append(await reader.readuntil(b"\\r\\n\\r\\n"))
        writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\n")
        await writer.drain()
        await asyncio.sleep(0.3)  # the body later: the client holds the connection meanwhile
        writer.write(b"ok")
        await writer.drain()
    server = await asyncio.start_server(answer, "127.0.0.1", int(os.environ["PORT_FOR_TEST"]))
    session = await client._session_manager.get_session()
    async with session.get("/livez") as response:
        sock = response.connection.transport.get_extra_info("socket")
        tcp = [sock.getsockopt(socket.IPPROTO_TCP, getattr(socket, name))
               for name in ("TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT", "TCP_USER_TIMEOUT")]
        print(json.dumps([await response.text(), sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), tcp,
                          b"authorization" in heads[0].lower()]))
    await session.close()
    server.close()

asyncio.run(main())
"""


@pytest.mark.skipif(not hasattr(__import__("socket"), "TCP_USER_TIMEOUT"), reason="Linux's TCP options")
def test_connections_to_a_runner_elsewhere_notice_a_host_that_vanished():
    # Keep-alive probes after 5 s of silence: a call on a connection to a host that lost power
    # fails in about 11 s (503), not after the whole request timeout.
    port = free_port()
    answer, keepalive, tcp, authorization = _run(KEEPALIVE_SCRIPT, {
        "IMMICH_CN_ML_RUNNERS": "split", "IMMICH_CN_ML_RUNNER_URL__CLIP": f"http://127.0.0.1:{port}",
        "PORT_FOR_TEST": str(port), "BENTO_CLOUD_API_KEY": "cloud-secret"})
    assert answer == "ok" and keepalive == 1
    assert not authorization  # no BentoCloud key sent to a runner
    assert tcp == [KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_PROBES, UNACKNOWLEDGED_MS]
    assert KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_PROBES < 20  # well inside Immich's patience

def test_without_a_url_the_runner_is_bentoml_s_own_dependency():
    dependency = runner_at(ClipRunner, None)
    assert dependency.url is None and dependency.on is ClipRunner


def _run(script: str, env: dict[str, str]):
    """The JSON ``script`` prints last, run in a process of its own (the settings are read at
    import) under ``env`` and none of this one's IMMICH_CN_ML_ settings."""
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**{k: v for k, v in os.environ.items() if not k.startswith("IMMICH_CN_ML_")}, **env})
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.splitlines()[-1])


def _layout(env: dict[str, str]) -> dict:
    """What `bentoml serve .` would start for the entry service under ``env``, and where its
    runners are."""
    return _run("import json, service; s = service.ImmichCnMl; print(json.dumps({"
                "'started': sorted(s.all_services(exclude_urls=True)), "
                "'urls': {name: d.url for name, d in s.dependencies.items()}}))", env)


def test_runners_at_urls_are_not_started_and_the_others_are():
    split = {"IMMICH_CN_ML_RUNNERS": "split", "IMMICH_CN_ML_RUNNER_URL__CLIP": "http://gpu-box:3003/"}
    assert _layout(split) == {"started": ["face-runner", "immich-cn-ml", "ocr-runner"],
                              "urls": {"clip": "http://gpu-box:3003", "faces": None, "ocr": None}}
    assert _layout({"IMMICH_CN_ML_RUNNER_URL": "http://models:3003"}) == {
        "started": ["immich-cn-ml"], "urls": {"models": "http://models:3003"}}
    assert _layout({}) == {"started": ["immich-cn-ml", "model-runner"], "urls": {"models": None}}


def test_a_runner_served_alone_answers_pickled_calls(tmp_path):
    # BentoML refuses them from a main service (415); a runner is served as a dependency.
    from tests.support.bento_server import BentoServer

    server = BentoServer("runners.services:OcrRunner", tmp_path).start()
    try:
        about = _run("import asyncio, json, runners.services as r, config.remote_runners as remote; "
                     "r.OcrRunner.inject_config(); "
                     f"runner = remote.runner_at(r.OcrRunner, {server.url!r}).get(); "
                     "asyncio.run(runner.__aenter__()); "  # as BentoML's server does with its dependencies
                     "print(json.dumps(asyncio.run(runner.to_async.about())))", {})
        assert about["device"] == "cpu" and about["loaded"] == []
    finally:
        server.stop()
