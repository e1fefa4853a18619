"""Which model files a served process has loaded, read from its /metrics."""

from __future__ import annotations

import re

import httpx


def loaded_models(server_url: str) -> dict[str, bool]:
    """model file -> loaded now (``immich_cn_ml_model_loaded``)."""
    text = httpx.get(f"{server_url}/metrics", timeout=10).text
    found = re.findall(r'^immich_cn_ml_model_loaded\{[^}]*model="([^"]+)"[^}]*\} (\S+)$', text, re.M)
    return {model: float(value) == 1.0 for model, value in found}
