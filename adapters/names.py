"""Model-name cleaning, the same way Immich does it.

Immich's ML service caches models by ``clean_name`` (immich_ml/config.py): keep the part after
the last ``/``, turn ``:``, ``\\`` and ``/`` into ``_`` and drop ``.``. The server validates CLIP
names the same way, so ``immich-app/ViT-B-32__openai`` and ``ViT-B-32__openai`` are one model.
"""

from __future__ import annotations

_CLEAN = str.maketrans(":\\/", "___", ".")


def clean_name(model_name: str) -> str:
    return model_name.split("/")[-1].translate(_CLEAN)


def normalise_name(model_name: str) -> str:
    """The full name, prefix kept, with only ``:`` made ``_``.

    A prefix carries meaning here: ``cn-clip/ViT-B-16__openai`` is Chinese-CLIP while
    ``ViT-B-16__openai`` is the stock OpenCLIP model, so the prefix is matched first.
    """
    return model_name.replace(":", "_")
