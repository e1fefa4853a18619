"""What every process of the Bento sets up when it imports its service module.

`bentoml serve` imports the module of its target in the process that starts the workers, and
again in each worker: ``service.py`` for the whole Bento, ``runners.services`` for a runner
served alone on another host. Both call ``set_up``, so a runner served alone logs, trims and
survives faults as one started by the entry service does.
"""

from __future__ import annotations

import os

from config.bentoml_fixes import restart_dead_workers_in_containers, serve_either_layout, use_request_deadline
from config.remote_runners import runners_take_pickled_calls
from config.logs import configure_logging
from config.settings import Settings
from runners import memory

_done = False


def set_up(settings: Settings) -> None:
    """Once per process: our loggers, glibc's tunables for the workers this process starts,
    BentoML's three corrections (``config.bentoml_fixes``), and runners that take pickled
    calls when served alone (``config.remote_runners``)."""
    global _done
    if _done:
        return
    _done = True
    configure_logging(settings)
    # glibc reads its tunables when a process starts: set here, in the process that starts the
    # workers, so their large tensors get transparent huge pages (runners/memory.py).
    os.environ["GLIBC_TUNABLES"] = memory.with_huge_pages(os.environ.get("GLIBC_TUNABLES"))
    restart_dead_workers_in_containers()
    use_request_deadline()
    serve_either_layout()
    runners_take_pickled_calls()
