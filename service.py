"""The Bento's entry service: Immich's machine-learning API on port 3003.

Requests arrive at the mounted Starlette app (``adapters.app``), which parses Immich's form,
routes each task to a local model or to the upstream Immich ML server, and answers. Model
runners (OCR, CLIP, faces) become ``bentoml.depends`` attributes of this class; ``local_models``
turns them into the router's table.
"""

from __future__ import annotations

import bentoml

from adapters.app import create_app
from adapters.clip import clip_local_models
from adapters.face import face_local_models
from adapters.local import LocalModels
from adapters.ocr import ocr_local_models
from config.bento import entry_service_config
from config.logs import configure_logging
from config.settings import get_settings
from runners.clip import ClipRunner
from runners.face import FaceRunner
from runners.models import clip as clip_models
from runners.models import face as face_models
from runners.models import ocr as ocr_models
from runners.ocr import OcrRunner

settings = get_settings()
configure_logging(settings)


def local_models() -> LocalModels:
    """The (task, type, model) -> LocalModel table of this worker: every model whose files
    are here now. Anything else goes upstream (or gets 501)."""
    service = bentoml.get_current_service()
    return {
        **ocr_local_models(service.ocr, ocr_models.available()),
        **clip_local_models(service.clip, clip_models.available(), settings.clip_normalize),
        **face_local_models(service.faces, face_models.available()),
    }


app = create_app(settings, local_models)


@bentoml.service(**entry_service_config(settings))
@bentoml.asgi_app(app, path="/")
class ImmichCnMl:
    """Immich-compatible machine learning, with Chinese models inside."""

    ocr = bentoml.depends(OcrRunner)
    clip = bentoml.depends(ClipRunner)
    faces = bentoml.depends(FaceRunner)
