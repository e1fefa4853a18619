"""Client-supplied values as they may appear in a log line or an error detail.

A model name, task or option value comes from whoever can reach the port. Written raw, a
newline in it forges log lines and a megabyte of it floods the log and the answer. Here control
characters are escaped (as ``repr`` escapes them; Chinese and other printable text stays as it
is) and the length is bounded.
"""

from __future__ import annotations

import reprlib
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: Characters of a client's string kept in a log line or a detail.
LIMIT = 80

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = LIMIT
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 4
_REPR.maxlevel = 3


def text(value: str, limit: int = LIMIT) -> str:
    """A string, escaped and cut to ``limit`` characters (the cut is said, with the full length)."""
    escaped = repr(value[:limit])[1:-1]  # cut first: repr of a huge string would cost its size
    return escaped if len(value) <= limit else f"{escaped}… ({len(value)} characters)"


def value(item: Any) -> str:
    """Any JSON value, as a bounded ``repr``: strings quoted and escaped, long lists cut."""
    return _REPR.repr(item)


def url(address: str) -> str:
    """A URL with any user name and password in it replaced by ``***``: the upstream's URL may
    carry credentials (httpx sends them as basic auth), which belong in no log or answer."""
    parts = urlsplit(address)
    if "@" not in parts.netloc:
        return address
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))
