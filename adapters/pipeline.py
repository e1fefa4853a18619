"""Run a request's local entries in dependency order.

Which type consumes which type's output is data, not code: ``DEPENDS_ON``. Types with no
dependency run first and concurrently; each dependent type then runs on its dependency's
output. The task's answer is the output of its last type, as in Immich.
"""

from __future__ import annotations

from typing import Any

from adapters.aio import concurrently
from adapters.entries import Entry
from adapters.errors import RequestError
from adapters.local import Inputs, LocalModel, TaskOutput

#: (task, type) -> the type of the same task whose output it runs on.
DEPENDS_ON: dict[tuple[str, str], str] = {
    ("facial-recognition", "recognition"): "detection",
    ("ocr", "recognition"): "detection",
}

#: Dependent types that may also come alone, and then run with ``previous=None``: the Immich
#: fork this project grew from sent ``{"ocr": {"recognition": ...}}`` only.
ALONE_ALLOWED: set[tuple[str, str]] = {("ocr", "recognition")}


async def run_local(steps: list[tuple[Entry, LocalModel]], inputs: Inputs) -> dict[str, Any]:
    """Run every step; return ``{task: output}``."""
    types_by_task: dict[str, set[str]] = {}
    for entry, _ in steps:
        types_by_task.setdefault(entry.task, set()).add(entry.type)

    for entry, _ in steps:
        # A type others run on (OCR detection) answers nothing a client can read on its own.
        wanted_by = [t for (task, t), dep in DEPENDS_ON.items() if task == entry.task and dep == entry.type]
        if wanted_by and not any(t in types_by_task[entry.task] for t in wanted_by):
            raise RequestError(
                400, f"Task {entry.task} of type {entry.type} is served only with type {' or '.join(wanted_by)}"
            )

    roots, dependents = [], []
    for entry, model in steps:
        dependency = DEPENDS_ON.get((entry.task, entry.type))
        alone = dependency is not None and dependency not in types_by_task[entry.task]
        if dependency is None or (alone and (entry.task, entry.type) in ALONE_ALLOWED):
            roots.append((entry, model))
        elif dependency in types_by_task[entry.task]:
            dependents.append((entry, model, dependency))
        else:
            raise RequestError(
                400, f"Task {entry.task} of type {entry.type} depends on output of {entry.task} {dependency}"
            )

    outputs: dict[tuple[str, str], Any] = {}
    response: dict[str, Any] = {}

    async def run(entry: Entry, model: LocalModel, previous: Any) -> None:
        output = await model.predict(inputs, entry.options, previous)
        outputs[(entry.task, entry.type)] = output
        if isinstance(output, TaskOutput):
            response[entry.task] = output.value
            response.update(output.extra)
        else:
            response[entry.task] = output

    await concurrently(*(run(entry, model, None) for entry, model in roots))
    await concurrently(
        *(run(entry, model, outputs[(entry.task, dep)]) for entry, model, dep in dependents)
    )
    return response
