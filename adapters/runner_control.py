"""What the entry service asks of its runners besides predictions: the device they run on,
and unloading the models they hold idle (``runners.services._Runner.about`` and
``unload_idle``). One object over every runner service of the layout, so callers need not know
whether one runner serves every model family or one per family does."""

from __future__ import annotations

import asyncio
from typing import Any, Sequence


class RunnerControl:
    def __init__(self, runners: Sequence[Any]) -> None:
        self._runners = list(runners)  # RunnerLinks, one per runner service

    async def device(self) -> str:
        """"cuda" when a runner runs its models on a GPU, else "cpu"."""
        answers = await asyncio.gather(*(runner.to_async.about() for runner in self._runners))
        return "cuda" if any(answer.get("device") == "cuda" for answer in answers) else "cpu"

    async def unload_idle(self, idle_seconds: float) -> list[str]:
        """Have every runner unload the models unused for ``idle_seconds`` or more; the files
        unloaded."""
        answers = await asyncio.gather(
            *(runner.to_async.unload_idle(idle_seconds=idle_seconds) for runner in self._runners)
        )
        return [path for unloaded in answers for path in unloaded]
