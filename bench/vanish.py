"""A runner host that vanishes mid-call: how long the entry's call to it takes to end, and how.

    sudo .venv/bin/python -m bench.vanish [--after 1] [--request-timeout 600]

A plain server on 127.0.0.1 stands in for a runner elsewhere (``IMMICH_CN_ML_RUNNER_URL__CLIP``):
it reads a call and never answers, as a runner busy with a long pass would. ``--after`` seconds
into the call, iptables drops every packet to and from its port: the host is gone, as when it
loses power or its cable, and nothing ends the connection. The call goes through the entry's
own client for that runner (``config.remote_runners``) and ``RunnerLink``'s handling; this
prints, as JSON, the seconds from the host's going to the call's end, what the client raised,
and the status the entry would answer with.

Needs root (iptables) on Linux; the rules are removed afterwards. Run in a process of its own:
the settings are read at import.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any, Iterator

from tests.support.ports import free_port


def _rules(action: str, port: int) -> None:
    """Add ("-I") or remove ("-D") the rules that drop the port's packets on the loopback."""
    for direction in ("--dport", "--sport"):
        subprocess.run(["iptables", action, "INPUT", "-i", "lo", "-p", "tcp", direction, str(port), "-j", "DROP"],
                       check=True, capture_output=True)


def iptables_usable() -> bool:
    """Whether this process can drop packets with iptables (root on Linux, the right to)."""
    if shutil.which("iptables") is None or os.geteuid() != 0:
        return False
    return subprocess.run(["iptables", "-L", "INPUT", "-n"], capture_output=True).returncode == 0


@contextlib.contextmanager
def gone(port: int) -> Iterator[None]:
    """Every packet to and from ``port`` on 127.0.0.1 dropped, as if the host serving it had
    vanished: a connection to it is never made, one open is never answered."""
    _rules("-I", port)
    try:
        yield
    finally:
        _rules("-D", port)


async def measure(port: int, after: float) -> dict[str, Any]:
    import service
    from adapters.runner_link import declared, sent_again_if_dropped

    entry = service.ImmichCnMl
    entry.inject_config()
    client = entry.dependencies["clip"].get().to_async

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(3600)  # never answers

    server = await asyncio.start_server(silent, "127.0.0.1", port)
    call = asyncio.create_task(sent_again_if_dropped("about", client.call, "about"))
    await asyncio.sleep(after)
    try:
        with gone(port):
            went = time.monotonic()
            try:
                await call
                result: dict[str, Any] = {"ended_after_s": round(time.monotonic() - went, 1), "raised": None,
                                          "status": 200}
            except Exception as error:  # noqa: BLE001 (what ended the call is the measurement)
                answer = declared("about", error)
                result = {"ended_after_s": round(time.monotonic() - went, 1),
                          "raised": f"{type(error).__name__}: {error}",
                          "status": answer.status if answer is not None else 500}
    finally:
        server.close()
        await client.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--after", type=float, default=1.0, help="seconds into the call the host goes")
    parser.add_argument("--request-timeout", type=float, default=600.0, help="IMMICH_CN_ML_REQUEST_TIMEOUT")
    args = parser.parse_args()
    port = free_port()
    os.environ.update({"IMMICH_CN_ML_RUNNERS": "split", "IMMICH_CN_ML_RUNNER_URL__CLIP": f"http://127.0.0.1:{port}",
                       "IMMICH_CN_ML_REQUEST_TIMEOUT": str(args.request_timeout),
                       "IMMICH_CN_ML_UPSTREAM_TIMEOUT": str(args.request_timeout / 2)})
    result = asyncio.run(measure(port, args.after))
    print(json.dumps({"request_timeout_s": args.request_timeout, **result}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
