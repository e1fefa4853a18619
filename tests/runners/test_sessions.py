"""Sessions load on first use, drop after MODEL_TTL idle seconds, and never while running."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import runners.sessions as sessions_module
from runners.sessions import Janitor, Sessions


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeSession:
    """Doubles its input; ``gate`` (when set) holds a pass until released."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.gate: threading.Event | None = None

    def get_inputs(self):
        return [type("Input", (), {"name": "x", "shape": ["batch", 3]})()]

    def run(self, names, feed):
        if self.gate is not None:
            self.gate.wait(5)
        return [feed["x"] * 2]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def made() -> list[Path]:
    return []


@pytest.fixture
def sessions(clock, made) -> Sessions:
    def create(path: Path, api: str = "") -> FakeSession:
        made.append(path)
        return FakeSession(path)

    return Sessions(create, clock=clock)


def test_a_session_loads_once_on_first_use(sessions, made):
    a = Path("a.onnx")
    assert sessions.run(a, np.ones((1, 3))).tolist() == [[2, 2, 2]]
    sessions.run(a, np.ones((2, 3)))
    assert made == [a]
    assert sessions.loaded() == {a: 0.0}


def test_idle_sessions_drop_after_the_ttl_and_load_again_on_use(sessions, made, clock):
    a, b = Path("a.onnx"), Path("b.onnx")
    sessions.run(a, np.ones((1, 3)))
    clock.now += 200
    sessions.load(b)  # preloaded: idles like any other
    clock.now += 150
    assert sessions.drop_idle(300) == [a]
    assert list(sessions.loaded()) == [b]
    sessions.run(a, np.ones((1, 3)))
    assert made == [a, b, a]


def test_a_running_session_is_never_dropped(sessions, clock):
    a = Path("a.onnx")
    sessions.load(a)
    session = sessions._loaded[a].session
    session.gate = threading.Event()
    worker = threading.Thread(target=sessions.run, args=(a, np.ones((1, 3))))
    worker.start()
    try:
        clock.now += 1000
        while sessions._loaded[a].busy == 0:
            pass
        assert sessions.drop_idle(300) == []
    finally:
        session.gate.set()
        worker.join()
    assert sessions.drop_idle(300) == []  # it just ran: idle for 0 s
    clock.now += 300
    assert sessions.drop_idle(300) == [a]


def test_the_janitor_trims_after_work_and_drops_on_its_poll(sessions, clock, monkeypatch):
    trims = []
    monkeypatch.setattr(sessions_module.memory, "trim", lambda: trims.append(clock.now))
    janitor = Janitor(sessions, ttl=300, poll=10)
    janitor.tick()
    assert trims == []  # nothing ran
    sessions.run(Path("a.onnx"), np.ones((1, 3)))
    janitor.tick()
    assert trims == [clock.now]
    janitor.tick()
    assert len(trims) == 1  # nothing ran since
    clock.now += 300
    janitor.tick()
    assert sessions.loaded() == {} and len(trims) == 2  # dropped, and the memory given back


def test_the_janitor_calls_for_a_fresh_start_once_the_ttl_dropped_the_last_model(sessions, clock):
    fresh = []
    janitor = Janitor(sessions, ttl=300, poll=10, when_all_unloaded=lambda: fresh.append(clock.now))
    janitor.tick()
    assert fresh == []  # nothing was ever loaded
    sessions.run(Path("a.onnx"), np.ones((1, 3)))
    clock.now += 200
    sessions.run(Path("b.onnx"), np.ones((1, 3)))
    clock.now += 150
    janitor.tick()
    assert list(sessions.loaded()) == [Path("b.onnx")] and fresh == []  # one is still loaded
    clock.now += 200
    janitor.tick()
    assert sessions.loaded() == {} and fresh == [clock.now]
    clock.now += 1000
    janitor.tick()
    assert len(fresh) == 1  # nothing more was dropped


def test_a_session_idle_for_a_tick_releases_its_working_memory_once_per_idle_spell(clock):
    released = []

    class Releasing(FakeSession):
        def release_memory(self):
            released.append(self.path)

    sessions = Sessions(lambda path, api="": Releasing(path) if path.name == "ov.onnx" else FakeSession(path),
                        clock=clock)
    janitor = Janitor(sessions, ttl=300, poll=10, every=1.0)
    sessions.run(Path("ov.onnx"), np.ones((1, 3)))
    sessions.run(Path("ort.onnx"), np.ones((1, 3)))  # no such call: left alone
    janitor.tick()
    assert released == []  # used just now
    clock.now += 1
    janitor.tick()
    janitor.tick()
    assert released == [Path("ov.onnx")]  # once, however long it idles
    sessions.run(Path("ov.onnx"), np.ones((1, 3)))
    clock.now += 1
    janitor.tick()
    assert released == [Path("ov.onnx")] * 2  # a new idle spell


def test_ttl_zero_keeps_sessions_for_good(sessions, clock):
    janitor = Janitor(sessions, ttl=0, poll=10)
    sessions.load(Path("a.onnx"))
    clock.now += 10**6
    janitor.tick()
    assert list(sessions.loaded()) == [Path("a.onnx")]


def test_a_load_blocks_neither_other_files_passes_nor_makes_two_sessions(clock, made):
    release = threading.Event()

    def create(path: Path, api: str = "") -> FakeSession:
        made.append(path)
        if path.name == "slow.onnx":
            release.wait(5)
        return FakeSession(path)

    sessions = Sessions(create, clock=clock)
    sessions.load(Path("fast.onnx"))
    loaders = [threading.Thread(target=sessions.load, args=(Path("slow.onnx"),)) for _ in range(3)]
    for loader in loaders:
        loader.start()
    try:
        assert sessions.run(Path("fast.onnx"), np.ones((1, 3))).tolist() == [[2, 2, 2]]
    finally:
        release.set()
        for loader in loaders:
            loader.join()
    assert made == [Path("fast.onnx"), Path("slow.onnx")]


def test_jobs_waiting_for_a_load_that_fails_share_its_error_and_a_later_job_tries_again(clock):
    release, tries = threading.Event(), []

    def create(path: Path, api: str = "") -> FakeSession:
        tries.append(path)
        if len(tries) == 1:
            release.wait(5)
            raise RuntimeError("corrupt model file")
        return FakeSession(path)

    sessions = Sessions(create, clock=clock)
    errors: list[str] = []

    def load() -> None:
        try:
            sessions.load(Path("bad.onnx"))
        except RuntimeError as error:
            errors.append(str(error))

    loaders = [threading.Thread(target=load) for _ in range(4)]
    for loader in loaders:
        loader.start()
    while not tries:  # the first loader is in create; the others wait for it
        threading.Event().wait(0.01)
    threading.Event().wait(0.3)  # time for the other three to start waiting
    release.set()
    for loader in loaders:
        loader.join(5)
    assert errors == ["corrupt model file"] * 4
    assert len(tries) == 1
    sessions.load(Path("bad.onnx"))  # the file was fixed: the next job loads it
    assert len(tries) == 2 and list(sessions.loaded()) == [Path("bad.onnx")]
