"""Read BentoML's Prometheus metrics over HTTP."""

from __future__ import annotations

import re

import httpx


def batch_sizes(server_url: str, method: str) -> tuple[float, float, float]:
    """(batches, calls in them, batches of one call) for a runner API, so far.

    BentoML counts calls, not items: one call with three lines counts as one."""
    text = httpx.get(f"{server_url}/metrics", timeout=10).text

    def total(series: str, label: str = "") -> float:
        # Labels come in any order: match the line's label set, then look inside it.
        found = 0.0
        for labels, value in re.findall(rf"^bentoml_service_adaptive_batch_size_{series}\{{([^}}]*)\}} (\S+)$", text, re.M):
            if f'method_name="{method}"' in labels and label in labels:
                found += float(value)
        return found

    return total("count"), total("sum"), total("bucket", 'le="1.0"')
