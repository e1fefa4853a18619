"""The Bento's entry service: Immich's machine-learning API on port 3003.

Requests arrive at the mounted Starlette app (``adapters.app``), which parses Immich's form,
routes each task to a local model or to the upstream Immich ML server, and answers. The model
runners are ``bentoml.depends`` attributes of this class: one runner service for every model
family, or one per family (``IMMICH_CN_ML_RUNNERS``, see ``runners.services``), each started
by `bentoml serve` as a child process or served elsewhere (``IMMICH_CN_ML_RUNNER_URL...``,
``config.remote_runners``); ``local_models`` turns them into the router's table.

Every process of the Bento imports this module (`bentoml serve` itself and each runner, to
find their service), so it imports only what they all need: the pre- and post-processing
libraries (insightface, rapidocr, OpenCV, tokenizers) load in ``local_models``, which runs in
the entry service's workers only.
"""

from __future__ import annotations

import bentoml

from adapters.app import create_app
from adapters.local import LocalModels
from adapters.runner_control import Runner, RunnerControl
from config import process
from config.bento import entry_service_config
from config.remote_runners import runner_at
from config.settings import get_settings
from runners import memory
from runners.services import ATTRIBUTE_OF, RUNNERS

settings = get_settings()
process.set_up(settings)


def local_models() -> LocalModels:
    """The (task, type, model) -> LocalModel table of this worker: every model whose files
    are here now. Anything else goes upstream (or gets 501)."""
    from adapters.clip import clip_local_models
    from adapters.face import face_local_models
    from adapters.ocr import ocr_local_models
    from adapters.runner_link import RunnerLink
    from runners.models import clip as clip_models
    from runners.models import face as face_models
    from runners.models import ocr as ocr_models

    memory.keep_freed_memory()  # this worker's decoded images: heap-served, trimmed when idle
    service = bentoml.get_current_service()
    runner = {family: RunnerLink(getattr(service, attribute), elsewhere=attribute in settings.runner_urls)
              for family, attribute in ATTRIBUTE_OF.items()}
    table = {
        **ocr_local_models(runner["ocr"], ocr_models.available()),
        **clip_local_models(runner["clip"], clip_models.available(), settings.clip_normalize,
                            settings.reduced_decoding),
        **face_local_models(runner["faces"], face_models.available(), settings.max_faces),
    }
    memory.trim()  # reading model files' metadata left large buffers behind
    return table


def runner_control() -> RunnerControl:
    """The runner services of this worker, for what is asked of them besides predictions."""
    from adapters import shown
    from adapters.runner_link import RunnerLink

    service = bentoml.get_current_service()
    urls = {attribute: shown.url(url) for attribute, url in settings.runner_urls.items()}  # no credentials shown
    return RunnerControl([Runner(RUNNERS[attribute].name, urls.get(attribute), RunnerLink(getattr(service, attribute)))
                          for attribute in sorted(RUNNERS)])


app = create_app(settings, local_models, runner_control)


@bentoml.service(**entry_service_config(settings))
@bentoml.asgi_app(app, path="/")
class ImmichCnMl:
    """Immich-compatible machine learning, with Chinese models inside."""

    # The attributes runners.services.ATTRIBUTE_OF names, one per runner service of the layout:
    # a child process of this server, or the runner at the URL the settings give for it.
    if settings.runners == "split":
        clip = runner_at(RUNNERS["clip"], settings.runner_urls.get("clip"))
        ocr = runner_at(RUNNERS["ocr"], settings.runner_urls.get("ocr"))
        faces = runner_at(RUNNERS["faces"], settings.runner_urls.get("faces"))
    else:
        models = runner_at(RUNNERS["models"], settings.runner_urls.get("models"))

    def __is_ready__(self) -> bool:
        """/readyz: 503 until the models the preload settings name are loaded."""
        return app.state.readiness.ready
