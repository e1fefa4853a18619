"""The ``entries`` form field of ``POST /predict``, parsed into records.

Immich sends ``{task: {type: {"modelName": str, "options": {...}}}}`` as a JSON string.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Mapping

from adapters.errors import RequestError

log = logging.getLogger(__name__)

# The reference service answers every malformed `entries` with exactly this text.
INVALID_FORMAT = "Invalid request format."


@dataclass(frozen=True)
class Entry:
    task: str
    type: str
    model_name: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.task}/{self.type} model '{self.model_name}'"

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
    if not isinstance(request, dict) or not request:
        _invalid("'entries' must be a non-empty JSON object of tasks")

    entries: list[Entry] = []
    for task, types in request.items():
        if not isinstance(types, dict) or not types:
            _invalid(f"task {task!r} must map types to entries")
        for type_, entry in types.items():
            if not isinstance(entry, dict):
                _invalid(f"{task}/{type_} must be an object")
            model_name = entry.get("modelName")
            if not isinstance(model_name, str) or not model_name:
                _invalid(f"{task}/{type_} has no 'modelName'")
            options = entry.get("options") or {}
            if not isinstance(options, dict):
                _invalid(f"{task}/{type_} 'options' must be an object")
            entries.append(Entry(task, type_, model_name, options))
    return entries


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
