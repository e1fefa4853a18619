"""BentoML service configuration derived from the settings object."""

from __future__ import annotations

from typing import Any

from config.settings import Settings

SERVICE_NAME = "immich-cn-ml"


def entry_service_config(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``@bentoml.service`` on the entry service."""
    return {
        "name": SERVICE_NAME,
        "workers": settings.workers,
        "http": {"port": settings.port},
        "traffic": {"timeout": settings.request_timeout},
    }
