"""The ``entries`` form field of ``POST /predict``, parsed into records.

Immich sends ``{task: {type: {"modelName": str, "options": {...}}}}`` as a JSON string.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Mapping

from adapters import shown
from adapters.errors import RequestError

log = logging.getLogger(__name__)

# The reference service answers every malformed `entries` with exactly this text.
INVALID_FORMAT = "Invalid request format."
#: Containers nested deeper than this are refused: Immich's entries nest 4 levels (task, type,
#: entry, options) around flat option values.
MAX_DEPTH = 8


@dataclass(frozen=True)
class Entry:
    task: str
    type: str
    model_name: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """For logs and error details: the client's strings escaped and bounded (``adapters.shown``)."""
        return f"{shown.text(self.task)}/{shown.text(self.type)} model '{shown.text(self.model_name)}'"

    def to_wire(self) -> dict[str, Any]:
        """This entry as Immich writes it, for re-sending part of a request upstream."""
        body: dict[str, Any] = {"modelName": self.model_name}
        if self.options:
            body["options"] = dict(self.options)
        return body


def parse_entries(raw: str | None) -> list[Entry]:
    """Parse the ``entries`` field, or raise the reference's 422."""
    if raw is None:
        _invalid("the 'entries' field is missing")
    try:
        request = json.loads(raw)
    except (json.JSONDecodeError, TypeError) as exc:
        _invalid(f"'entries' is not JSON: {exc}")
    except RecursionError:  # thousands of nested brackets: the parser's own stack runs out
        _invalid("'entries' is nested too deeply to parse")
    if not isinstance(request, dict) or not request:
        _invalid("'entries' must be a non-empty JSON object of tasks")
    if _depth(request) > MAX_DEPTH:
        _invalid(f"'entries' is nested more than {MAX_DEPTH} levels deep")

    entries: list[Entry] = []
    for task, types in request.items():
        if not isinstance(types, dict) or not types:
            _invalid(f"task {shown.value(task)} must map types to entries")
        for type_, entry in types.items():
            where = f"{shown.text(task)}/{shown.text(type_)}"
            if not isinstance(entry, dict):
                _invalid(f"{where} must be an object")
            model_name = entry.get("modelName")
            if not isinstance(model_name, str) or not model_name:
                _invalid(f"{where} has no 'modelName'")
            options = entry.get("options") or {}
            if not isinstance(options, dict):
                _invalid(f"{where} 'options' must be an object")
            entries.append(Entry(task, type_, model_name, options))
    return entries


def _depth(value: Any) -> int:
    """How deeply JSON containers nest in ``value`` (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            break
        stack.extend((child, level + 1) for child in children)
    return deepest


def entries_to_wire(entries: list[Entry]) -> str:
    """Rebuild the ``entries`` JSON string for a subset of a request's entries."""
    request: dict[str, dict[str, Any]] = {}
    for entry in entries:
        request.setdefault(entry.task, {})[entry.type] = entry.to_wire()
    return json.dumps(request, ensure_ascii=False)


def _invalid(reason: str) -> None:
    # The wire answer stays exactly the reference's; the log says what was wrong.
    log.warning("422 %s: %s", INVALID_FORMAT, reason)
    raise RequestError(422, INVALID_FORMAT)
