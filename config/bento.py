"""BentoML service configuration derived from the settings object."""

from __future__ import annotations

from typing import Any

from config.settings import Settings

SERVICE_NAME = "immich-cn-ml"


def entry_service_config(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``@bentoml.service`` on the entry service.

    With runners elsewhere (``RUNNER_URL...``), ``/readyz`` no longer asks them whether they are
    ready (BentoML's runner probe): a runner that is down costs its family 503s, not the whole
    service its readiness, which an orchestrator would answer by sending Immich nowhere."""
    return {
        "name": SERVICE_NAME,
        "workers": settings.workers,
        "http": {"port": settings.port},
        "traffic": {"timeout": settings.request_timeout},
        "runner_probe": {"enabled": not settings.runner_urls},
    }


#: Threads of a runner worker: one per API, so every API's batch can wait for its turn at once.
#: The passes themselves take turns (``runners.turns``): one at a time, so ONNX Runtime's own
#: threads have the cores to themselves, shared fairly between the families waiting.
RUNNER_THREADS = 8


def runner_service_config(name: str, settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``@bentoml.service`` on a model runner.

    One worker, whose threads wait for turns (``RUNNER_THREADS``). The traffic timeout also
    bounds how long the entry service waits for the runner. Callers' connections to the runner
    are recycled after ``runner_connection`` limits, which fails requests in flight; the limits
    are set high so that does not happen under load.
    """
    return {
        "name": name,
        "workers": 1,
        "threads": RUNNER_THREADS,
        "traffic": {"timeout": settings.request_timeout},
        "runner_connection": {"max_requests": 2**31 - 1, "max_age": 10.0**9},
        # The entry service logs every request it answers; a line per runner call as well
        # would double the log and cost each call its formatting.
        "logging": {"access": {"enabled": False}},
    }
