"""What the entry service asks of its runners besides predictions: the device they run on,
which of them answer, and unloading the models they hold idle (``runners.services._Runner.about``
and ``unload_idle``). One object over every runner service of the layout, so callers need not
know whether one runner serves every model family or one per family does, nor where they run."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence


#: Seconds to wait for a runner's answer: these calls answer at once, unless the runner is not up.
ASK_TIMEOUT = 5.0


@dataclass(frozen=True)
class Runner:
    """One runner service: its BentoML name, the URL it is served at when it runs elsewhere
    (None: a child process of this server), and the link its calls go through."""

    name: str
    url: str | None
    link: Any  # adapters.runner_link.RunnerLink, or anything with the same ``to_async`` calls


class RunnerControl:
    def __init__(self, runners: Sequence[Runner], timeout: float = ASK_TIMEOUT) -> None:
        self._runners = list(runners)
        self._timeout = timeout

    async def device(self) -> str:
        """"cuda" when a runner runs its models on a GPU, else "cpu" (a runner that does not
        answer counts for neither). Raises only when no runner answers."""
        return (await self.about())["device"]

    async def about(self) -> dict[str, Any]:
        """``{"device": "cuda"|"cpu", "loaded": [model files], "engines": {file: what it runs on},
        "runtime": {the CPU, the backend and precision settings, how each kind of model runs},
        "runners": [{"name", "url", "answers", "device"[, "problem"]} for each runner]}`` over
        every runner that answers as the one expected (the runtime is the first one's). Raises
        only when no runner answers."""
        answers = await self._ask_all(lambda runner: runner.link.to_async.about())
        heard = [answer for runner, answer in zip(self._runners, answers) if _right(runner, answer)]
        return {"device": "cuda" if any(answer.get("device") == "cuda" for answer in heard) else "cpu",
                "loaded": sorted(path for answer in heard for path in answer.get("loaded", [])),
                "engines": {path: label for answer in heard for path, label in answer.get("engines", {}).items()},
                "runtime": next((answer["runtime"] for answer in heard if "runtime" in answer), {}),
                "runners": [_row(runner, answer) for runner, answer in zip(self._runners, answers)]}

    def describe(self) -> str:
        """Where each runner runs, for the log: "clip-runner at http://gpu-box:3003, ocr-runner here"."""
        return ", ".join(f"{runner.name} at {runner.url}" if runner.url else f"{runner.name} here"
                         for runner in self._runners) or "none"

    def silent(self) -> list[dict[str, Any]]:
        """``about()["runners"]`` when none of them answers."""
        return [_row(runner, None) for runner in self._runners]

    async def unload_idle(self, idle_seconds: float) -> list[str]:
        """Have every runner unload the models unused for ``idle_seconds`` or more; the files
        unloaded. Raises only when no runner answers."""
        answers = await self._ask_all(lambda runner: runner.link.to_async.unload_idle(idle_seconds=idle_seconds))
        return [path for unloaded in answers if not isinstance(unloaded, BaseException) for path in unloaded]

    async def _ask_all(self, ask: Callable[[Runner], Awaitable[Any]]) -> list[Any]:
        """Each runner's answer, or the exception it failed with; raises when all failed."""
        answers = await asyncio.gather(*(asyncio.wait_for(ask(runner), self._timeout) for runner in self._runners),
                                       return_exceptions=True)
        failures = [answer for answer in answers if isinstance(answer, BaseException)]
        if failures and len(failures) == len(answers):
            raise failures[0]
        return answers


def _row(runner: Runner, answer: Any) -> dict[str, Any]:
    """One runner as the status page shows it; ``answer``: its ``about()``, or None or the
    exception it failed with. A URL where another runner answers (a face runner's URL copied
    from the CLIP runner's, say) is no runner of this one's: its ``problem`` says so."""
    if not _right(runner, answer):
        row = {"name": runner.name, "url": runner.url, "answers": False, "device": None}
        if isinstance(answer, dict):
            row["problem"] = (f"{answer['service']} answers at this URL, not {runner.name}: "
                              "is it the right runner's URL?")
        return row
    return {"name": runner.name, "url": runner.url, "answers": True, "device": answer.get("device")}


def _right(runner: Runner, answer: Any) -> bool:
    """``answer`` is an ``about()`` of the runner service the entry expects there (a runner that
    does not name itself, of an older image, is taken at its word)."""
    return isinstance(answer, dict) and answer.get("service", runner.name) == runner.name
