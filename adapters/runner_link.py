"""Calls to a runner service that survive the runner closing an idle connection under them.

BentoML's client for a runner (aiohttp, which BentoML brings) keeps a connection for 15 s of
idleness, while the runner's server (uvicorn, whose keep-alive BentoML's worker fixes at 5 s)
closes it after 5 s. A connection the runner closed after 5 s idle is normally noticed and left
alone, but on a busy entry worker the close may not have been read yet when the connection is
taken for the next call: that call then fails with ``ServerDisconnectedError`` (or a reset),
the runner never having read it. CI saw it once in 300 calls, as a 500 to Immich.

Every runner API is a pure function of its arguments (embeddings, detections, a load), so such
a call is simply sent again, once, on a fresh connection. Errors of any other kind, and a
runner that cannot be reached at all, still fail the call at once: a runner that is busy, down
or slow as a ``RequestError`` of 503 or 504 (``declared``), anything else as it was raised.

Such a drop comes at once: the runner closed the connection before the call was sent. A drop
that comes later is a runner that went down while working on the call, maybe because of it (out
of memory on a huge image): that call is not sent again, lest it take the runner down twice.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from http import HTTPStatus
from typing import Any, Awaitable, Callable

import aiohttp
from bentoml.exceptions import BentoMLException

from adapters.errors import RequestError

log = logging.getLogger(__name__)


def _dropped_before_answer(error: BaseException) -> bool:
    """The connection went away under the call: not a runner that cannot be reached (a
    connection that could not be made is a ``ClientConnectorError``, an ``OSError`` too)."""
    if isinstance(error, aiohttp.ClientConnectorError):
        return False
    return isinstance(error, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError))


#: Seconds within which a dropped call counts as sent on a connection the runner had closed
#: already (the drop is then noticed in milliseconds, a busy event loop's delay allowed for).
STALE_WITHIN = 1.0


async def sent_again_if_dropped(name: str, call: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
    """``await call(*args, **kwargs)``, made a second time if the connection dropped under it at
    once (``STALE_WITHIN``)."""
    started = time.monotonic()
    try:
        return await call(*args, **kwargs)
    except Exception as error:
        if not _dropped_before_answer(error):
            raise
        seconds = time.monotonic() - started
        if seconds >= STALE_WITHIN:
            log.warning("runner call %s: the runner went away %.1f s into it (%s); not sent again", name, seconds,
                        error or type(error).__name__)
            raise
        log.info("runner call %s: connection closed under it (%s); sending it again", name, error or type(error).__name__)
        return await call(*args, **kwargs)


class RunnerUnavailable(RequestError):
    """The runner is busy, not ready, or cannot be reached: 503, worth trying again."""

    def __init__(self, detail: str) -> None:
        super().__init__(503, detail)


class RunnerTimeout(RequestError):
    """The runner did not answer in time: 504."""

    def __init__(self, detail: str) -> None:
        super().__init__(504, detail)


def declared(name: str, error: BaseException) -> RequestError | None:
    """The answer a failed runner call deserves when the failure is the runner's state (busy,
    down, slow) rather than a bug: a client that gets 503 or 504 tries again or elsewhere, where
    a 500 would say this service is broken. None for any other failure."""
    code = getattr(error, "error_code", None)  # BentoML's exceptions carry the runner's status
    if isinstance(error, BentoMLException) and code == HTTPStatus.SERVICE_UNAVAILABLE:
        return RunnerUnavailable(f"the model runner is busy or not ready ({name}: {error})")
    if isinstance(error, aiohttp.ConnectionTimeoutError):  # a runner elsewhere whose host is off
        return RunnerUnavailable(f"the model runner cannot be reached ({name}: no connection in time)")
    if (isinstance(error, BentoMLException) and code == HTTPStatus.GATEWAY_TIMEOUT) or isinstance(
            error, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return RunnerTimeout(f"the model runner did not answer in time ({name})")
    if isinstance(error, BentoMLException) and code == HTTPStatus.NOT_FOUND:  # another runner answers there
        return RunnerUnavailable(f"the model runner has no API {name}: is its URL that of the right runner? ({error})")
    if isinstance(error, (aiohttp.ClientConnectionError, ConnectionError)):
        return RunnerUnavailable(f"the model runner cannot be reached ({name}: {type(error).__name__}: {error})")
    return None


#: A runner that is down fails every call to it, and each such request is logged by /predict
#: already: the link's own line on why says so at most once per this many seconds, per API and
#: kind of failure, with the count of those it left out.
WARN_EVERY = 10.0


class _Warnings:
    """The link's warnings, at most one per ``WARN_EVERY`` seconds for each (API, kind)."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[float, int]] = {}  # when last said, and left out since

    def __call__(self, name: str, answer: RequestError) -> None:
        key, now = (name, type(answer).__name__), time.monotonic()
        said, left_out = self._last.get(key, (-math.inf, 0))
        if now - said < WARN_EVERY:
            self._last[key] = (said, left_out + 1)
            return
        log.warning("%s%s", answer.detail, f" ({left_out} more like it in the last {now - said:.0f} s)" if left_out else "")
        self._last[key] = (now, 0)


#: A runner elsewhere that could not be reached is not called again for this many seconds: its
#: calls fail at once (503). Its host being off cost each call the 5 s connect timeout, inside
#: one of the entry's admission slots, which every family shares: two face jobs at a time kept
#: a 2-core entry's CLIP requests waiting. After that, one call at a time finds out whether it
#: is back, the others failing at once until one gets through.
UNREACHABLE_FOR = 5.0


class _Reachability:
    """Whether a runner elsewhere is taken for unreachable, and the one call that tries it."""

    def __init__(self) -> None:
        self._failure: RequestError | None = None  # the last unreachable call's answer; None: reachable
        self._until = -math.inf
        self._trying = False

    def refusal(self) -> RunnerUnavailable | None:
        """The answer for a call now if it must not go ahead; None when it goes (when the runner
        was unreachable, it is the one trial, and must end with ``settle``)."""
        if self._failure is None:
            return None
        now = time.monotonic()
        if now < self._until or self._trying:
            wait = max(0.0, self._until - now)
            return RunnerUnavailable(f"{self._failure.detail}; not called again for {wait:.0f} s" if wait >= 0.5
                                     else f"{self._failure.detail}; another call is finding out whether it is back")
        self._trying = True
        return None

    def settle(self, unreachable: RequestError | None) -> None:
        """How a call that went ahead ended: unreachable (its answer), or anything else (None:
        the runner answered, whatever it said)."""
        self._trying = False
        self._failure = unreachable
        if unreachable is not None:
            self._until = time.monotonic() + UNREACHABLE_FOR


class _Calls:
    def __init__(self, client: Any, warn: _Warnings, reachability: _Reachability | None) -> None:
        self._client = client
        self._warn = warn
        self._reachability = reachability

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        call = getattr(self._client, name)
        reachability = self._reachability

        async def once_more_if_dropped(*args: Any, **kwargs: Any) -> Any:
            refused = reachability.refusal() if reachability is not None else None
            if refused is not None:
                raise refused
            unreachable: RequestError | None = None
            try:
                return await sent_again_if_dropped(name, call, *args, **kwargs)
            except Exception as error:
                answer = declared(name, error)
                if answer is None:
                    raise
                if isinstance(error, (aiohttp.ClientConnectionError, ConnectionError)) and answer.status == 503:
                    unreachable = answer
                self._warn(name, answer)
                raise answer from error
            finally:  # also when the call is cancelled: the next one may try
                if reachability is not None:
                    reachability.settle(unreachable)

        return once_more_if_dropped


class RunnerLink:
    """A runner dependency (``bentoml.depends``) whose ``to_async`` API calls are sent again
    once when the connection drops under them; what the adapters hold as their runner.
    ``elsewhere``: the runner is served at a URL (``config.remote_runners``), not a child of this
    server; one that cannot be reached is not called for ``UNREACHABLE_FOR`` seconds."""

    def __init__(self, dependency: Any, elsewhere: bool = False) -> None:
        self._dependency = dependency
        self.elsewhere = elsewhere
        self._warnings = _Warnings()
        # A runner of this server is reached over a local socket: one that is down refuses at once.
        self._reachability = _Reachability() if elsewhere else None

    @property
    def to_async(self) -> _Calls:
        return _Calls(self._dependency.to_async, self._warnings, self._reachability)
