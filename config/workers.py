"""Starting a worker process afresh: the one way to give back all it gathered while it worked.

Unloading models and trimming the heap give back most of a worker's memory, not all: OpenVINO's
plugin and oneDNN's kernels, thread pools, the allocator's and Python's fragments, the libraries
the first requests imported stay. Stock Immich ML ends its worker once idle past MODEL_TTL, and
its process manager starts a new one; this is the same. SIGTERM is BentoML's graceful stop: a
request in flight is answered first, and later ones wait in the listening socket, which
BentoML's arbiter holds, for the new worker (seconds). BentoML starts the worker again, in a
container too (``config.bentoml_fixes.restart_dead_workers_in_containers``).
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)


def start_afresh(what: str, why: str) -> None:
    """End this worker (``what``, for the log) so that BentoML starts a new one."""
    log.info("%s: starting this %s afresh to give its memory back", why, what)
    os.kill(os.getpid(), signal.SIGTERM)
