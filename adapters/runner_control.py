"""What the entry service asks of its runners besides predictions: the device they run on,
and unloading the models they hold idle (``runners.services._Runner.about`` and
``unload_idle``). One object over every runner service of the layout, so callers need not know
whether one runner serves every model family or one per family does."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Sequence


#: Seconds to wait for a runner's answer: these calls answer at once, unless the runner is not up.
ASK_TIMEOUT = 5.0


class RunnerControl:
    def __init__(self, runners: Sequence[Any], timeout: float = ASK_TIMEOUT) -> None:
        self._runners = list(runners)  # RunnerLinks, one per runner service
        self._timeout = timeout

    async def device(self) -> str:
        """"cuda" when a runner runs its models on a GPU, else "cpu" (a runner that does not
        answer counts for neither). Raises only when no runner answers."""
        return (await self.about())["device"]

    async def about(self) -> dict[str, Any]:
        """``{"device": "cuda"|"cpu", "loaded": [model files], "engines": {file: what it runs on},
        "runtime": {the CPU, the backend and precision settings, how each kind of model runs}}``
        over every runner that answers (the runtime is the first one's: every runner reads the
        same settings on the same host). Raises only when no runner answers."""
        answers = await self._ask_all(lambda runner: runner.to_async.about())
        return {"device": "cuda" if any(answer.get("device") == "cuda" for answer in answers) else "cpu",
                "loaded": sorted(path for answer in answers for path in answer.get("loaded", [])),
                "engines": {path: label for answer in answers for path, label in answer.get("engines", {}).items()},
                "runtime": next((answer["runtime"] for answer in answers if "runtime" in answer), {})}

    async def unload_idle(self, idle_seconds: float) -> list[str]:
        """Have every runner unload the models unused for ``idle_seconds`` or more; the files
        unloaded. Raises only when no runner answers."""
        answers = await self._ask_all(lambda runner: runner.to_async.unload_idle(idle_seconds=idle_seconds))
        return [path for unloaded in answers for path in unloaded]

    async def _ask_all(self, ask: Callable[[Any], Awaitable[Any]]) -> list[Any]:
        answers = await asyncio.gather(*(asyncio.wait_for(ask(runner), self._timeout) for runner in self._runners),
                                       return_exceptions=True)
        failures = [answer for answer in answers if isinstance(answer, BaseException)]
        if failures and len(failures) == len(answers):
            raise failures[0]
        return [answer for answer in answers if not isinstance(answer, BaseException)]
