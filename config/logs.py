"""Logging for our own modules.

BentoML configures its own ``bentoml`` loggers only; without this our ``adapters.*`` and
``runners.*`` lines would not reach the server's output.
"""

from __future__ import annotations

import logging

from config.settings import Settings

_PACKAGES = ("adapters", "runners", "config", "service")


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(name)s] %(message)s"))
    for name in _PACKAGES:
        logger = logging.getLogger(name)
        logger.setLevel(settings.python_log_level)
        if not logger.handlers:
            logger.addHandler(handler)
        logger.propagate = False
