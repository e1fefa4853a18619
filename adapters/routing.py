"""Decide, for each entry of a request, whether a local model serves it or the upstream does.

Name matching, in order (see README "Model names and aliases"):
1. the requested name with ``:`` made ``_`` (prefix kept), after the alias table;
2. Immich's cleaned name (last path segment), after the alias table.
A task is served locally only when every type of it in the request is, because a dependent
type (face recognition) needs its dependency's output (face detection) in the same process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping

from adapters import shown
from adapters.entries import Entry
from adapters.local import LocalModel, LocalModels
from adapters.names import clean_name, normalise_name

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """A request split into what runs here and what goes upstream."""

    local: list[tuple[Entry, LocalModel]] = field(default_factory=list)
    upstream: list[Entry] = field(default_factory=list)


class Router:
    def __init__(self, local_models: LocalModels, aliases: Mapping[str, str]) -> None:
        self._local = dict(local_models)
        self._aliases = {normalise_name(k): v for k, v in aliases.items()}
        self._hinted: set[tuple[str, str]] = set()

    def served_name(self, model_name: str) -> str:
        """The name a request's model name stands for, after the alias table."""
        full = normalise_name(model_name)
        return self._aliases.get(full) or self._aliases.get(clean_name(full)) or model_name

    def resolve(self, entry: Entry) -> LocalModel | None:
        served = self.served_name(entry.model_name)
        for name in (normalise_name(served), clean_name(served)):
            model = self._local.get((entry.task, entry.type, name))
            if model is not None:
                return model
        return None

    def resolve_local(self, task: str, type_: str, name: str) -> LocalModel | None:
        """The local model registered under exactly this name (no aliases, no cleaning)."""
        return self._local.get((task, type_, name))

    def plan(self, entries: list[Entry]) -> Plan:
        plan = Plan()
        by_task: dict[str, list[Entry]] = {}
        for entry in entries:
            by_task.setdefault(entry.task, []).append(entry)
        for task, task_entries in by_task.items():
            resolved = [(entry, self.resolve(entry)) for entry in task_entries]
            if all(model is not None for _, model in resolved):
                plan.local.extend((entry, model) for entry, model in resolved if model is not None)
                continue
            if any(model is not None for _, model in resolved):
                log.info(
                    "task %s is only partly served here (%s); sending all of it upstream",
                    task,
                    ", ".join(e.describe() for e, m in resolved if m is None),
                )
            plan.upstream.extend(task_entries)
            for entry, model in resolved:
                if model is None:
                    self.hint_import(entry)
        return plan

    def hint_import(self, entry: Entry) -> None:
        """Log, once per task and model, the command that imports a model we know but do not have."""
        from runners.models.hints import import_command
        from runners.models.store import where_imports_go

        served = self.served_name(entry.model_name)
        command = import_command(entry.task, served)
        # Only models this project knows are remembered: a client's made-up names never pile up.
        if command is None or (entry.task, served) in self._hinted:
            return
        self._hinted.add((entry.task, served))
        log.warning("%s model '%s' is not imported here, so it is not served here; `%s` imports it (into %s)",
                    entry.task, shown.text(served), command, where_imports_go())

    @property
    def local_keys(self) -> list[tuple[str, str, str]]:
        return sorted(self._local)
