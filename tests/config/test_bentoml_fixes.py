"""config/bentoml_fixes.py: a request timeout whose timer ends with the request, dead workers
restarted inside containers, and a Bento of one layout served in the other; each with the
BentoML behaviour it corrects, so that an upgrade that fixes it (or moves the names) shows
here. A runner served alone (``runners.services`` as the target) gets them too."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from config.bentoml_fixes import BENTOMLS_TIMEOUT, RequestDeadline
from tests.support.bento_server import ROOT

# BentoML's own, whatever other tests of this process imported (runners.services puts the
# deadline in its place on import).
ORIGINAL = BENTOMLS_TIMEOUT


def _in_a_fresh_process(*lines: str, env: dict[str, str] | None = None) -> str:
    run = subprocess.run([sys.executable, "-c", "; ".join(lines)], cwd=ROOT, env={**os.environ, **(env or {})},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout.strip().splitlines()[-1]


def _app(delay: float, status: int = 200, then: float = 0.0):
    """An ASGI app that waits ``delay`` s, starts its answer, and waits ``then`` s more."""
    async def app(scope, receive, send):
        await asyncio.sleep(delay)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await asyncio.sleep(then)
        await send({"type": "http.response.body", "body": b"ok"})
    return app


def _call(middleware_class, app, timeout: float) -> tuple[list[dict], int]:
    """Run one request through the middleware; (what it sent, timers still pending after it)."""
    async def main():
        sent = []

        async def send(message):
            sent.append(message)

        async def receive():
            return {"type": "http.request", "body": b""}

        await middleware_class(app, timeout=timeout)({"type": "http", "path": "/"}, receive, send)
        loop = asyncio.get_running_loop()
        return sent, sum(not handle.cancelled() for handle in loop._scheduled)

    return asyncio.run(main())


def test_bentomls_timeout_leaves_a_timer_for_every_request():
    # The premise: while this holds, every request's context lives for the whole timeout.
    sent, pending = _call(ORIGINAL, _app(0.0), timeout=600)
    assert sent[0]["status"] == 200 and pending == 1


def test_the_deadline_answers_and_leaves_nothing_behind():
    sent, pending = _call(RequestDeadline, _app(0.0), timeout=600)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"] and pending == 0


def test_a_request_silent_past_the_deadline_is_cancelled_and_answered_504():
    sent, pending = _call(RequestDeadline, _app(5.0), timeout=0.2)
    assert sent[0]["status"] == 504 and b"longer than 0.2 s" in sent[1]["body"] and pending == 0


def test_an_answer_begun_in_time_is_not_cut():
    sent, _ = _call(RequestDeadline, _app(0.05, then=0.4), timeout=0.2)
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"ok"


def test_the_service_module_puts_the_deadline_in_bentomls_apps():
    assert _in_a_fresh_process("import service", "from bentoml._internal.server.http import traffic",
                               "print(traffic.TimeoutMiddleware.__name__)") == "RequestDeadline"


CONTAINER = {"BENTOML_CONTAINERIZED": "true"}  # what BentoML's Dockerfile sets


def test_bentoml_alone_would_not_restart_a_dead_worker_in_a_container():
    assert _in_a_fresh_process("import bentoml.serving", "print(bentoml.serving.create_watcher('w', []).respawn)",
                               env=CONTAINER) == "False"


def test_the_service_module_has_dead_workers_restarted_in_a_container():
    assert _in_a_fresh_process("import service", "import bentoml.serving",
                               "print(bentoml.serving.create_watcher('w', []).respawn)", env=CONTAINER) == "True"


def test_a_runner_served_alone_gets_the_same_corrections():
    assert _in_a_fresh_process("import runners.services", "import bentoml.serving",
                               "from bentoml._internal.server.http import traffic",
                               "print(traffic.TimeoutMiddleware.__name__, bentoml.serving.create_watcher('w', []).respawn)",
                               env=CONTAINER) == "RequestDeadline True"


#: A Bento built combined, as its bento.yaml lists its services (what BentoML reads of it here).
COMBINED_BENTO = ("from types import SimpleNamespace as N; "
                  "bento = N(info=N(services=[N(name='immich-cn-ml', models=[]), N(name='model-runner', models=[])]))")


def test_bentoml_alone_cannot_serve_a_bento_in_the_other_layout():
    # BentoML's own method, taken before the service module replaces it.
    script = "\n".join([
        "from _bentoml_sdk.service.factory import Service", "original = Service.on_load_bento", COMBINED_BENTO,
        "import service",
        "try:", "    original(service.ImmichCnMl, bento)", "    print('loaded')",
        "except StopIteration:", "    print('StopIteration')"])
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "IMMICH_CN_ML_RUNNERS": "split"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "StopIteration"


def test_a_bento_built_combined_serves_the_split_layout():
    assert _in_a_fresh_process(
        COMBINED_BENTO, "import service", "service.ImmichCnMl.on_load_bento(bento)",
        "print(sorted(s.name for s in service.ImmichCnMl.all_services().values() if s.bento is bento))",
        env={"IMMICH_CN_ML_RUNNERS": "split"}) == "['clip-runner', 'face-runner', 'immich-cn-ml', 'ocr-runner']"
