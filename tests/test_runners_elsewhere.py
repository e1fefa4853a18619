"""Runners on other hosts (the split layout across processes), over real HTTP: the entry service
and the three runner services as separate `bentoml serve` processes on 127.0.0.1, the entry
naming each runner's URL (``IMMICH_CN_ML_RUNNER_URL__<FAMILY>``).

- they answer as the one-process layout does;
- a runner killed makes only its family answer 503 with Retry-After, at once, while the other
  families answer, ``/ping`` too, and ``/readyz`` stays 200; the status page shows it silent;
- started again, it is used again, without restarting the entry service.
"""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest

from bench.soak import Request, mix
from bench.vanish import gone, iptables_usable
from tests.conftest import LIMITS
from tests.support.bento_server import BentoServer
from tests.support.ports import free_port

#: The runner service each family's URL names, as `bentoml serve` targets.
TARGETS = {"clip": "runners.services:ClipRunner", "faces": "runners.services:FaceRunner",
           "ocr": "runners.services:OcrRunner"}
#: Which family answers each kind of Immich request of the soak's mix.
FAMILY = {"clip image": "clip", "clip text": "clip", "faces": "faces", "ocr": "ocr"}
REQUEST_TIMEOUT = 30.0


def immich_requests() -> list[Request]:
    """One request of each kind Immich sends (the mix's first of each)."""
    firsts: dict[str, Request] = {}
    for request in mix():
        if request.kind in FAMILY:
            firsts.setdefault(request.kind, request)
    return list(firsts.values())


def post(url: str, request: Request) -> httpx.Response:
    return httpx.post(f"{url}{request.path}", content=request.body, headers=request.headers,
                      timeout=REQUEST_TIMEOUT + 10)


@pytest.fixture(scope="module")
def hosts(mt_home):
    """(entry, {family: runner}): each a `bentoml serve` of its own, sharing the models' folder
    (as containers share the models volume), all running."""
    runners = {family: BentoServer(target, mt_home, dict(LIMITS)) for family, target in TARGETS.items()}
    entry = None
    try:
        for runner in runners.values():
            runner.start()
        env = {**LIMITS, "IMMICH_CN_ML_RUNNERS": "split", "IMMICH_CN_ML_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT),
               **{f"IMMICH_CN_ML_RUNNER_URL__{family.upper()}": runner.url for family, runner in runners.items()}}
        entry = BentoServer(".", mt_home, env).start()
        yield entry, runners
    finally:
        for server in [entry, *runners.values()]:
            if server is not None:
                server.stop()


def test_the_entry_starts_no_runner_of_its_own(hosts):
    entry, _ = hosts
    workers = [p.cmdline() for p in psutil.Process(entry.pid).children(recursive=True)]
    names = {args[args.index("--service-name") + 1] for args in workers if "--service-name" in args}
    assert names == {"immich-cn-ml"}, names


def test_runners_elsewhere_answer_as_the_one_process_layout(hosts, mt_server):
    entry, runners = hosts
    for request in immich_requests():
        here, one_process = post(entry.url, request), post(mt_server.url, request)
        assert here.status_code == one_process.status_code == 200, (request.kind, here.text[:300])
        assert here.json() == one_process.json(), request.kind  # the same fp32 models: the same numbers
    # The status page names each runner's URL and shows it answering.
    shown = httpx.get(f"{entry.url}/ui/api/status", timeout=30).json()["runners"]
    assert {r["name"]: (r["url"], r["answers"], r["device"]) for r in shown} == {
        "clip-runner": (runners["clip"].url, True, "cpu"), "face-runner": (runners["faces"].url, True, "cpu"),
        "ocr-runner": (runners["ocr"].url, True, "cpu")}


def test_a_runner_down_costs_only_its_family_and_is_used_again_when_back(hosts):
    entry, runners = hosts
    requests = immich_requests()
    before = {request.kind: post(entry.url, request).json() for request in requests}
    victim = runners["faces"]
    # The runner's whole server, as when its host goes: `bentoml serve` and its worker (which
    # BentoML puts in a process group of its own).
    processes = [psutil.Process(victim.pid), *psutil.Process(victim.pid).children(recursive=True)]
    for process in processes:
        process.kill()
    psutil.wait_procs(processes, timeout=10)
    victim._process.wait(timeout=10)
    try:
        for request in requests:
            started = time.monotonic()
            answer = post(entry.url, request)
            seconds = time.monotonic() - started
            if FAMILY[request.kind] == "faces":
                assert answer.status_code == 503, answer.text
                assert answer.headers["retry-after"] and "runner" in answer.json()["detail"]
                assert seconds < 5, f"a runner that is down must be answered for at once, not after {seconds:.1f} s"
            else:
                assert answer.status_code == 200 and answer.json() == before[request.kind], request.kind
        assert httpx.get(f"{entry.url}/ping").text == "pong"
        # Still ready: an orchestrator must keep sending Immich here for the other families.
        assert httpx.get(f"{entry.url}/readyz", timeout=30).status_code == 200
        shown = httpx.get(f"{entry.url}/ui/api/status", timeout=30).json()["runners"]
        assert {r["name"]: r["answers"] for r in shown} == {"clip-runner": True, "face-runner": False,
                                                            "ocr-runner": True}
    finally:
        port = victim.port
        victim.start()  # on the same port, as a container restarted under the same name
        assert victim.port == port, "the runner could not have its port again; the entry still calls the old one"
    faces = next(request for request in requests if request.kind == "faces")
    deadline = time.monotonic() + 30
    while (answer := post(entry.url, faces)).status_code != 200:
        assert time.monotonic() < deadline, f"the runner back, its family still answers {answer.status_code}"
        time.sleep(0.5)
    assert answer.json() == before["faces"]


def test_a_url_where_another_runner_answers_costs_only_its_family_and_says_so(hosts, mt_home):
    # RUNNER_URL__FACES copied from the CLIP runner's: face requests get a 503 that names the
    # mistake (not a 500), the others answer, and the status page says which runner is there.
    _, runners = hosts
    urls = {"clip": runners["clip"].url, "faces": runners["clip"].url, "ocr": runners["ocr"].url}
    env = {**LIMITS, "IMMICH_CN_ML_RUNNERS": "split", "IMMICH_CN_ML_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT),
           **{f"IMMICH_CN_ML_RUNNER_URL__{family.upper()}": url for family, url in urls.items()}}
    entry = BentoServer(".", mt_home, env).start()
    try:
        for request in immich_requests():
            answer = post(entry.url, request)
            if FAMILY[request.kind] == "faces":
                assert answer.status_code == 503, answer.text
                assert "is its URL that of the right runner?" in answer.json()["detail"]
            else:
                assert answer.status_code == 200, (request.kind, answer.text[:300])
        shown = {r["name"]: r for r in httpx.get(f"{entry.url}/ui/api/status", timeout=30).json()["runners"]}
        assert shown["face-runner"]["answers"] is False
        assert shown["face-runner"]["problem"].startswith("clip-runner answers at this URL, not face-runner")
        assert shown["clip-runner"]["answers"] is True and "problem" not in shown["clip-runner"]
    finally:
        entry.stop()


@pytest.mark.skipif(not iptables_usable(), reason="needs root and a working iptables to switch a host off")
def test_a_runner_host_that_is_off_does_not_hold_the_other_families_up(hosts, mt_home):
    # The faces URL names a host that is off: no connection is refused, none is made. The first
    # face request finds out in the 5 s connect timeout; the next ones are answered 503 at once,
    # so they do not sit in the admission slots every family shares while CLIP waits behind them.
    _, runners = hosts
    off = free_port()
    urls = {"clip": runners["clip"].url, "faces": f"http://127.0.0.1:{off}", "ocr": runners["ocr"].url}
    env = {**LIMITS, "IMMICH_CN_ML_RUNNERS": "split", "IMMICH_CN_ML_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT),
           "IMMICH_CN_ML_MAX_ACTIVE_REQUESTS": "2",
           **{f"IMMICH_CN_ML_RUNNER_URL__{family.upper()}": url for family, url in urls.items()}}
    requests = {request.kind: request for request in immich_requests()}
    with gone(off):
        entry = BentoServer(".", mt_home, env).start()
        try:
            started = time.monotonic()
            assert post(entry.url, requests["faces"]).status_code == 503
            assert time.monotonic() - started < 10  # the connect timeout, not the request timeout

            def timed(kind: str) -> tuple[int, float]:
                started = time.monotonic()
                return post(entry.url, requests[kind]).status_code, time.monotonic() - started

            with ThreadPoolExecutor(3) as pool:  # two face jobs and a CLIP job at once, as Immich runs them
                faces = [pool.submit(timed, "faces") for _ in range(2)]
                clip = pool.submit(timed, "clip image")
                for face in faces:
                    status, seconds = face.result()
                    assert status == 503 and seconds < 2, (status, seconds)
                status, seconds = clip.result()
                assert status == 200 and seconds < 4, (status, seconds)
        finally:
            entry.stop()


def test_a_runner_finds_the_models_in_its_own_stores_wherever_they_are_mounted(mt_home, mt_server, tmp_path):
    # A runner on a GPU box keeps the models elsewhere than the entry's /cache (its own
    # BENTOML_HOME, another mount): jobs name each model by its place in the store, and the
    # runner loads its own copy, with the same answers.
    elsewhere = tmp_path / "gpu-box-home"
    shutil.copytree(mt_home / "models", elsewhere / "models")
    runner = BentoServer(TARGETS["faces"], elsewhere, dict(LIMITS)).start()
    entry = None
    try:
        env = {**LIMITS, "IMMICH_CN_ML_RUNNERS": "split", "IMMICH_CN_ML_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT),
               "IMMICH_CN_ML_RUNNER_URL__FACES": runner.url}
        entry = BentoServer(".", mt_home, env).start()
        faces = next(request for request in immich_requests() if request.kind == "faces")
        here, one_process = post(entry.url, faces), post(mt_server.url, faces)
        assert here.status_code == one_process.status_code == 200, here.text[:300]
        assert here.json() == one_process.json()
        # What the runner loaded (its metric names each file): its own copies, none of the entry's.
        metrics = httpx.get(f"{runner.url}/metrics", timeout=30).text
        loaded = [line for line in metrics.splitlines() if line.startswith("immich_cn_ml_model_loaded{")]
        assert loaded and all(str(elsewhere) in line for line in loaded), loaded
        # The status page matches the runner's loaded files to the entry's models.
        shown = httpx.get(f"{entry.url}/ui/api/status", timeout=30).json()["models"]
        assert any(row["task"] == "facial-recognition" and row["loaded"] for row in shown)
    finally:
        for server in (entry, runner):
            if server is not None:
                server.stop()
