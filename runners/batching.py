"""Run a batch of (model name, array) jobs as few forward passes as their shapes allow.

BentoML's adaptive batcher hands a runner API the jobs of several requests at once. Arrays
of one model and one shape are stacked into one pass; the results come back in job order,
one per job, so every request gets exactly its own result.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

Job = tuple[str, np.ndarray]


def run_grouped(
    jobs: Sequence[Job], forward: Callable[[str, np.ndarray], np.ndarray]
) -> list[np.ndarray]:
    """``forward(model, stacked)`` -> outputs with the batch on axis 0; return one per job."""
    groups: dict[tuple[str, tuple[int, ...]], list[int]] = {}
    for index, (model, array) in enumerate(jobs):
        groups.setdefault((model, array.shape), []).append(index)

    results: list[Any] = [None] * len(jobs)
    for (model, _), indices in groups.items():
        stacked = np.stack([jobs[i][1] for i in indices])
        outputs = forward(model, stacked)
        if len(outputs) != len(indices):
            raise RuntimeError(f"{model}: {len(indices)} inputs gave {len(outputs)} outputs")
        for i, output in zip(indices, outputs):
            results[i] = output
    return results
