"""Which command imports a model that a request names and this service does not have.

Serving never downloads: a model that is not imported goes to the upstream (or gets 501). When
it is one this project knows how to import, the service's log says the command, once per model
and process, so a user who expected it to be served here knows what to run (and where the
import will go: the cache folder, e.g. the image's volume, or BentoML's store).
"""

from __future__ import annotations

from runners.models import clip, face, ocr

#: Immich's task names -> the import command's family.
_FAMILY = {"clip": "clip", "facial-recognition": "face", "ocr": "ocr"}


def import_command(task: str, model_name: str) -> str | None:
    """``python -m runners.models import ...`` for ``model_name`` of Immich's ``task``, or None
    when it is no model this project imports. ``model_name`` as served (after aliases)."""
    family = _FAMILY.get(task)
    if family == "clip":
        wanted = model_name.replace(":", "_")
        name = next((arch for arch, known in clip.ARCHS.items() if known.served_name == wanted), None)
    elif family == "face":
        name = model_name if model_name in face.PACKS else None
    elif family == "ocr":
        name = model_name if model_name in ocr.CATALOG else None
    else:
        name = None
    return None if name is None else f"python -m runners.models import {family} {name}"
