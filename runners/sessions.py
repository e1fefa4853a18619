"""The sessions a runner holds: loaded on first use or on request, dropped after idle time.

One ONNX Runtime session per model file, shared by all of a runner's APIs. Runner jobs name the
file itself (resolved once by the entry service), so a model imported again while serving
cannot mix one version's files with another's.

A session unused for ``MODEL_TTL`` seconds is dropped, as the stock server unloads idle models;
the next job that names its file loads it again. ``Janitor`` does the dropping, and gives the
freed memory back to the system (``runners.memory``) every second in which passes ran: the
working memory of passes of many shapes and sizes, freed and reused, wanders across the heap,
and handing back its free pages keeps the resident memory near what the passes really use (a
busy runner's peak fell by 80 MB from trimming every 5 s, for no speed measurably lost).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from runners import memory
from runners.turns import FairTurns

log = logging.getLogger(__name__)


@dataclass
class _Loaded:
    session: Any
    last_used: float
    busy: int = 0  # passes running on it now; a busy session is never dropped
    rested: bool = False  # its working memory was released since its last pass


@dataclass
class Sessions:
    """``create(path, api)`` makes a session for the file that the runner API ``api`` runs
    (``runners.engines.Engines.create`` in a runner: the API says what kind of model it is);
    passes take turns (``runners.turns``), fairly between the families that ask for them."""

    create: Callable[[Path, str], Any]
    clock: Callable[[], float] = time.monotonic
    turns: FairTurns = field(default_factory=FairTurns)
    #: Told of every load (True) and drop (False), e.g. to keep a metric.
    on_change: Callable[[Path, bool], None] = lambda path, loaded: None
    _loaded: dict[Path, _Loaded] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loading: dict[Path, Future[None]] = field(default_factory=dict)  # files being loaded
    #: How many passes have ended so far.
    passes: int = 0

    def _acquire(self, path: Path, api: str) -> _Loaded:
        """The file's session, loaded if need be, marked busy."""
        while True:
            with self._lock:
                loaded = self._loaded.get(path)
                if loaded is not None:
                    loaded.busy += 1
                    return loaded
                pending = self._loading.get(path)
                loading = pending is None
                if loading:
                    pending = self._loading[path] = Future()
            # Loading takes seconds: other files' passes go on meanwhile, and jobs for this file
            # wait for the one load, and share its failure rather than each trying again.
            if not loading:
                pending.result()
                continue
            try:
                session = self.create(path, api)
            except BaseException as error:
                with self._lock:
                    del self._loading[path]
                pending.set_exception(error)
                raise
            with self._lock:
                self._loaded[path] = _Loaded(session, self.clock())
                del self._loading[path]
            pending.set_result(None)
            self.on_change(path, True)

    def _release(self, loaded: _Loaded) -> None:
        with self._lock:
            loaded.busy -= 1
            loaded.last_used = self.clock()
            loaded.rested = False
            self.passes += 1

    def load(self, path: Path, api: str = "") -> None:
        """Load ``path`` now (a preload); it then idles like any other."""
        self._release(self._acquire(path, api))

    def inputs(self, path: Path, api: str = "") -> list[Any]:
        loaded = self._acquire(path, api)
        try:
            return loaded.session.get_inputs()
        finally:
            self._release(loaded)

    def takes_batches(self, path: Path, api: str = "") -> bool:
        """Whether the model's first input leaves its batch axis free (``runners.models.batch_axis``
        settles that at import); one that declares 1 must get one item at a time."""
        return self.inputs(path, api)[0].shape[0] != 1

    def run_all(self, path: Path, batch: np.ndarray, family: str = "", api: str = "") -> list[np.ndarray]:
        """Every output of the model at ``path`` on ``batch``, in the graph's order; the pass
        waits for ``family``'s turn. ``api``: the runner API the pass is for (what loads the
        file, the first time, needs to know)."""
        loaded = self._acquire(path, api)
        try:
            with self.turns.turn(family):
                return loaded.session.run(None, {loaded.session.get_inputs()[0].name: batch})
        finally:
            self._release(loaded)

    def run(self, path: Path, batch: np.ndarray, family: str = "", api: str = "") -> np.ndarray:
        """The first output of the model at ``path`` on ``batch``."""
        return self.run_all(path, batch, family, api)[0]

    def loaded(self) -> dict[Path, float]:
        """Every loaded file, with its idle seconds."""
        now = self.clock()
        with self._lock:
            return {path: now - entry.last_used for path, entry in self._loaded.items()}

    def rest(self, quiet: float) -> int:
        """Have every session idle for ``quiet`` seconds release its working memory, once per
        idle spell; how many did. OpenVINO keeps each compiled model's intermediate buffers,
        sized for the largest batch it ran, until told (ONNX Runtime without its arena frees
        them after every pass, and has no such call)."""
        now = self.clock()
        with self._lock:
            resting = [entry for entry in self._loaded.values()
                       if entry.busy == 0 and not entry.rested and now - entry.last_used >= quiet]
            for entry in resting:
                entry.rested = True
        released = 0
        for entry in resting:
            release = getattr(entry.session, "release_memory", None)
            if release is not None:
                release()
                released += 1
        return released

    def drop_idle(self, ttl: float) -> list[Path]:
        """Drop the sessions idle for ``ttl`` seconds or more; the ones dropped."""
        now = self.clock()
        with self._lock:
            idle = [path for path, entry in self._loaded.items() if entry.busy == 0 and now - entry.last_used >= ttl]
            for path in idle:
                del self._loaded[path]
        for path in idle:
            self.on_change(path, False)
        return idle


class Janitor:
    """Every ``every`` seconds: drops the sessions idle for ``ttl`` seconds (when ``ttl`` > 0,
    checked each ``poll`` seconds), has those idle for ``every`` seconds release their working
    memory, and trims the heap if passes ran or models were dropped or rested since the last
    round. When MODEL_TTL has dropped the last loaded model, it calls ``when_all_unloaded``
    instead (the runner starts afresh: ``runners.services``)."""

    def __init__(self, sessions: Sessions, ttl: float, poll: float, every: float = 1.0,
                 when_all_unloaded: Callable[[], None] | None = None) -> None:
        self.sessions, self.ttl, self.poll, self.every = sessions, ttl, poll, every
        self.when_all_unloaded = when_all_unloaded
        self._next_drop = sessions.clock() + poll
        self._passes = sessions.passes  # as of the last trim
        self._stop = threading.Event()

    def tick(self) -> None:
        """One round of the work."""
        sessions = self.sessions
        now = sessions.clock()
        dropped = []
        if self.ttl > 0 and now >= self._next_drop:
            self._next_drop = now + self.poll
            dropped = sessions.drop_idle(self.ttl)
            for path in dropped:
                log.info("unloaded %s after %.0f s unused (MODEL_TTL)", path, self.ttl)
            if dropped and not sessions.loaded() and self.when_all_unloaded is not None:
                self.when_all_unloaded()
                return
        rested = sessions.rest(self.every)
        if dropped or rested or sessions.passes != self._passes:
            self._passes = sessions.passes
            memory.trim()

    def start(self) -> Janitor:
        thread = threading.Thread(target=self._loop, name="sessions-janitor", daemon=True)
        thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.tick()
            except Exception:  # the janitor must outlive any one failure
                log.exception("sessions janitor failed")
