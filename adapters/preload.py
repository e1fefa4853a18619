"""Loading models at start (``MACHINE_LEARNING_PRELOAD__<TASK>__<TYPE>``), and readiness.

The stock server loads the models its preload settings name before it serves. Here the entry
service asks each model's runner to load it, in the background, while ``/ping`` already answers
(Immich's health check); ``/readyz`` answers 503 until every preload is in, and stays 503 when
one fails (the log says which and why), so an orchestrator never routes to a service that is
missing a model it was told to have.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field

import aiohttp
from bentoml.exceptions import ServiceUnavailable

from adapters.entries import Entry
from adapters.routing import Router
from adapters.runner_link import RunnerTimeout, RunnerUnavailable

log = logging.getLogger(__name__)

#: How long to keep asking a runner that is not up yet (its process starts with ours). A runner
#: elsewhere (``RUNNER_URL...``) may come up at any time after the entry: asked until it does.
RUNNER_WAIT = 120.0
#: The longest pause between two tries.
LONGEST_PAUSE = 10.0
#: What a runner call raises while the runner is not listening or not ready yet (``RunnerLink``
#: declares those as 503 or 504; BentoML's client raises the others).
NOT_UP_YET = (RunnerUnavailable, RunnerTimeout, ServiceUnavailable, aiohttp.ClientConnectionError, ConnectionError,
              asyncio.TimeoutError)


@dataclass
class Readiness:
    """Whether the preloads are in; ``failed`` holds the reasons of those that are not."""

    done: bool = False
    failed: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return self.done and not self.failed


async def preload(router: Router, preloads: dict[tuple[str, str], list[str]], readiness: Readiness,
                  runner_wait: float = RUNNER_WAIT) -> None:
    """Load every model ``preloads`` names that is served here, asking a runner of this server
    that is not up for up to ``runner_wait`` seconds, and a runner elsewhere until it answers;
    then mark ``readiness`` done."""
    try:
        for (task, type_), names in preloads.items():
            for name in names:
                await _preload_one(router, Entry(task, type_, name), readiness, runner_wait)
    except Exception as exc:  # not a model failing to load (those are recorded): still not ready
        readiness.failed.append(f"preloading stopped: {type(exc).__name__}: {exc}")
    # Cancelled (the service stopping) it never becomes ready.
    readiness.done = True
    if readiness.failed:
        log.error("not ready: %d preload(s) failed: %s", len(readiness.failed), "; ".join(readiness.failed))
    elif preloads:
        log.info("all preloads are in; ready")


async def _preload_one(router: Router, entry: Entry, readiness: Readiness, runner_wait: float) -> None:
    model = router.resolve(entry)
    if model is None:
        log.warning("preload %s: not served here (an upstream loads its own preloads)", entry.describe())
        return
    load = getattr(model, "preload", None)
    if load is None:
        return
    # The model's runner link (``adapters.runner_link.RunnerLink``) says where its runner is.
    elsewhere = getattr(getattr(model, "runner", None), "elsewhere", False)
    wait = math.inf if elsewhere else runner_wait
    started = time.monotonic()
    pause = 0.5  # doubled up to LONGEST_PAUSE: a runner down for long is not asked (nor logged) twice a second
    while True:
        try:
            await load()
            log.info("preloaded %s in %.1f s", entry.describe(), time.monotonic() - started)
            return
        except NOT_UP_YET as exc:
            if time.monotonic() >= started + wait:
                readiness.failed.append(f"{entry.describe()}: the runner did not come up ({type(exc).__name__}: {exc})")
                return
            if pause == 0.5:  # the first miss: say what is waited for (the link logs each miss too)
                log.warning("preload %s waits for its runner %s (%s: %s)", entry.describe(),
                            "elsewhere, until it answers" if elsewhere else f"for up to {runner_wait:g} s",
                            type(exc).__name__, exc)
            await asyncio.sleep(pause)
            pause = min(LONGEST_PAUSE, 2 * pause)
        except Exception as exc:  # the runner answered: the model itself cannot load
            readiness.failed.append(f"{entry.describe()}: {type(exc).__name__}: {exc}")
            return
