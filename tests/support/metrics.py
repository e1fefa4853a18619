"""Read BentoML's Prometheus metrics over HTTP."""

from __future__ import annotations

import re

import httpx


def batch_sizes(server_url: str, method: str) -> tuple[float, float, float]:
    """(batches, calls in them, batches of one call) for a runner API, so far.

    BentoML counts calls, not items: one call with three lines counts as one."""
    text = httpx.get(f"{server_url}/metrics", timeout=10).text

    def total(series: str, extra: str = "") -> float:
        pattern = rf'^bentoml_service_adaptive_batch_size_{series}\{{[^}}]*method_name="{method}"[^}}]*{extra}[^}}]*\}} (\S+)$'
        return sum(float(m.group(1)) for m in re.finditer(pattern, text, re.MULTILINE))

    return total("count"), total("sum"), total("bucket", 'le="1.0"')
