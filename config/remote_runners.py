"""A runner service running elsewhere, called as if it were the entry service's own.

``bentoml.depends(service, url=...)`` is BentoML's way to call a service at a URL: `bentoml serve`
then starts no process for it, and calls go over HTTP. But it sends them as JSON, and the runner
APIs take and give numpy arrays (an image's pixels, a batch of embeddings), which JSON cannot
carry. Runners started by `bentoml serve` itself (and BentoCloud's) are called with BentoML's
pickle media type instead; ``runner_at`` makes a dependency at a URL that is called the same
way, so a runner answers alike whether it is a child of this server or on another host.

A runner served alone (``bentoml serve runners.services:ClipRunner``) is its server's main
service, and BentoML refuses pickled calls to a main service (415), a guard for services that
face the internet. A runner never does: ``runners_take_pickled_calls`` serves every runner
service as a dependency, as BentoCloud serves each service of a deployment. Pickle means a
runner runs whatever a caller sends it: a runner's port is for the entry service only (a compose
network without published ports, a ClusterIP Service), never for the internet.
"""

from __future__ import annotations

import functools
import socket
from typing import Any

import aiohttp
import attrs
import bentoml
from _bentoml_sdk.service.dependency import Dependency

#: The media type BentoML's own service-to-service calls use.
PICKLE = "application/vnd.bentoml+pickle"
#: Seconds to wait for a connection to a runner elsewhere: a host that is off does not refuse
#: the connection, and the call would otherwise wait for the whole request timeout.
CONNECT_TIMEOUT = 5.0
#: A runner host that vanishes (power, cable, a VM gone) with connections open sends nothing
#: that ends them: calls on them would wait for the whole request timeout (10 minutes), each
#: holding one of the entry's admission slots meanwhile. TCP keep-alive notices: after 5 s
#: without a byte, a probe every 2 s, and the third unanswered ends the connection, so the call
#: fails (503, its family only) about 11 s in. A runner that is merely busy, however long its
#: pass, answers the probes: its kernel does.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_PROBES = 5, 2, 3
#: Data sent and not acknowledged for this long (ms) ends a connection too (TCP_USER_TIMEOUT):
#: an image sent to a host that vanished while it was being sent.
UNACKNOWLEDGED_MS = 15_000


def keepalive_socket(address: Any) -> socket.socket:
    """A socket for a connection to a runner elsewhere (aiohttp's ``socket_factory``; ``address``
    is a ``getaddrinfo`` row), which notices a peer that vanished (see ``KEEPALIVE_IDLE``)."""
    family, type_, proto, _, _ = address
    sock = socket.socket(family=family, type=type_, proto=proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", KEEPALIVE_IDLE), ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
                        ("TCP_KEEPCNT", KEEPALIVE_PROBES), ("TCP_USER_TIMEOUT", UNACKNOWLEDGED_MS)):
        option = getattr(socket, name, None)
        if option is not None:  # Linux (the image) has them all; elsewhere the system's pace
            sock.setsockopt(socket.IPPROTO_TCP, option, value)
    return sock


@attrs.define
class _RunnerAt(Dependency[Any]):
    def get(self, *args: Any, **kwargs: Any) -> Any:  # noqa: ARG002 (BentoML's injected mapping)
        from _bentoml_impl.client import RemoteProxy

        if self._resolved is not None:
            return self._resolved
        proxy = RemoteProxy(self.url, service=self.on, media_type=PICKLE)
        manager = proxy.to_async._session_manager
        # BentoML's client sends BENTO_CLOUD_API_KEY, when set, as a bearer token to every URL:
        # no business of a runner on some LAN host, over plain http maybe.
        manager._headers = {name: value for name, value in manager._headers.items() if name.lower() != "authorization"}
        manager._timeout = aiohttp.ClientTimeout(total=manager._timeout.total, sock_connect=CONNECT_TIMEOUT)
        manager._make_client = functools.partial(_client, manager)
        return proxy.as_service()


def _client(manager: Any) -> aiohttp.ClientSession:
    """The session BentoML's ``SessionManager._make_client`` makes for an http(s) URL, on
    connections that notice a runner host that vanished (``keepalive_socket``)."""
    return aiohttp.ClientSession(base_url=manager._parsed_url.geturl(), headers=manager._headers,
                                 timeout=manager._timeout,
                                 connector=aiohttp.TCPConnector(socket_factory=keepalive_socket))


def runner_at(service: Any, url: str | None) -> Any:
    """The entry service's dependency on the runner ``service``: a child process of this
    server when ``url`` is None (BentoML's default), else the runner serving at ``url``."""
    if url is None:
        return bentoml.depends(service)
    return _RunnerAt(service, url=url)


#: The names of the runner services end so (``runners.services``); the entry is "immich-cn-ml".
RUNNER_SUFFIX = "-runner"


def runners_take_pickled_calls() -> None:
    """Build a runner service's app as a dependency's (not a main service's) wherever it is
    served: pickled calls taken, no index page. Call before BentoML builds its app."""
    from _bentoml_sdk.service.factory import Service

    original = Service.to_asgi
    if getattr(original, "runner_aware", False):
        return

    def to_asgi(self: Any, is_main: bool = True) -> Any:
        return original(self, is_main=is_main and not self.name.endswith(RUNNER_SUFFIX))

    to_asgi.runner_aware = True  # type: ignore[attr-defined]
    Service.to_asgi = to_asgi
