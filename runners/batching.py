"""Run a batch of (model, array) jobs as few forward passes as their shapes allow.

BentoML's adaptive batcher hands a runner API the jobs of several requests at once. Arrays
of one model and one shape are stacked into one pass (or a few, when ``max_items`` limits a
pass); the results come back in job order, one per job, so every request gets exactly its own
result. A pass that fails gives its own jobs a ``Failure`` and leaves the other passes' results
alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

log = logging.getLogger(__name__)

#: (model, array): the model is whatever names a model file to the runner (a path).
Job = tuple[str, np.ndarray]


@dataclass(frozen=True)
class Failure:
    """Stands in the results for a job whose forward pass failed."""

    message: str


def run_grouped(
    jobs: Sequence[Job],
    forward: Callable[[str, np.ndarray], Sequence[Any]],
    max_items: Callable[[tuple[int, ...]], int] | None = None,
) -> list[Any]:
    """``forward(model, stacked)`` -> outputs with the batch on axis 0; return one per job.

    ``max_items(shape)``: most items of that shape in one pass (None: no limit)."""
    groups: dict[tuple[str, tuple[int, ...]], list[int]] = {}
    for index, (model, array) in enumerate(jobs):
        groups.setdefault((model, array.shape), []).append(index)

    results: list[Any] = [None] * len(jobs)
    for (model, shape), indices in groups.items():
        step = max(1, max_items(shape)) if max_items is not None else len(indices)
        for start in range(0, len(indices), step):
            _run_pass(jobs, indices[start:start + step], model, shape, forward, results)
    return results


def _run_pass(jobs: Sequence[Job], indices: list[int], model: str, shape: tuple[int, ...],
              forward: Callable[[str, np.ndarray], Sequence[Any]], results: list[Any]) -> None:
    try:
        outputs = forward(model, np.stack([jobs[i][1] for i in indices]))
        if len(outputs) != len(indices):
            raise RuntimeError(f"{len(indices)} inputs gave {len(outputs)} outputs")
    except Exception as exc:  # this pass's requests fail; the others' do not
        log.exception("forward pass of %s on %d inputs of shape %s failed", model, len(indices), shape)
        outputs = [Failure(f"{type(exc).__name__}: {exc}")] * len(indices)
    for i, output in zip(indices, outputs):
        results[i] = output


def unstack(outputs: Sequence[np.ndarray], count: int) -> list[list[np.ndarray]]:
    """Split a pass over ``count`` images into each image's outputs, shaped as a pass over
    that image alone would give them.

    Every output holds the images one after another on its first axis: ``[B, n, C]`` for a
    model with a batch axis, ``[B*n, C]`` for one that flattens its batch into rows (stock
    SCRFD detectors do). Either way, image ``j`` is the ``j``-th of ``count`` equal slices.
    """
    slices = []
    for output in outputs:
        if output.shape[0] % count:
            raise RuntimeError(f"an output of shape {output.shape} does not split into {count} images")
        slices.append(output.reshape(count, output.shape[0] // count, *output.shape[1:]))
    return [[output[j] for output in slices] for j in range(count)]
