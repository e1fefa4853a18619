"""Where imports download model files from, and the settings that point each source at a mirror.

- Chinese-CLIP checkpoints: Hugging Face (``OFA-Sys/<repo>``; ``HF_ENDPOINT``, the variable
  huggingface_hub itself reads, moves it to a mirror such as hf-mirror.com) or ModelScope
  (``AI-ModelScope/<repo>``, where cn-clip's own download looks; its file API publishes each
  file's size and SHA-256). ``IMMICH_CN_ML_MODEL_SOURCE`` or ``import clip --source`` chooses.
- OCR models: the URLs and SHA-256 of rapidocr's own model list, which are ModelScope's.
- InsightFace packs: the model-zoo release insightface downloads from
  (``IMMICH_CN_ML_INSIGHTFACE_BASE_URL`` for a mirror); GitHub publishes no checksums, so only
  the size is checked.

Every ``Remote`` carries the hint a user needs when the source cannot be reached.
"""

from __future__ import annotations

import os
from urllib.parse import quote_plus

import httpx

from config.settings import get_settings
from runners.models.download import CONNECT_TIMEOUT, READ_TIMEOUT, DownloadError, Remote

HUGGINGFACE = "huggingface"
MODELSCOPE = "modelscope"
SOURCES = (HUGGINGFACE, MODELSCOPE)
HF_DEFAULT = "https://huggingface.co"
MODELSCOPE_DEFAULT = "https://www.modelscope.cn"
#: The organisations that publish Chinese-CLIP's checkpoints on each hub (cn-clip's own).
CLIP_ORG = {HUGGINGFACE: "OFA-Sys", MODELSCOPE: "AI-ModelScope"}


def huggingface_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or HF_DEFAULT).rstrip("/")


def modelscope_endpoint() -> str:
    configured = get_settings().modelscope_endpoint
    if configured:
        return configured.rstrip("/")
    domain = os.environ.get("MODELSCOPE_DOMAIN")
    return f"https://{domain.strip('/')}" if domain else MODELSCOPE_DEFAULT


def clip_checkpoint(repo: str, filename: str, source: str) -> Remote:
    """A Chinese-CLIP checkpoint (cn-clip's repository and file name) on ``source``."""
    if source == HUGGINGFACE:
        url = f"{huggingface_endpoint()}/{CLIP_ORG[source]}/{repo}/resolve/main/{filename}"
        hint = ("Hugging Face cannot be reached from here? Set HF_ENDPOINT to a mirror (e.g. "
                "HF_ENDPOINT=https://hf-mirror.com), or download from ModelScope: --source modelscope "
                "(or IMMICH_CN_ML_MODEL_SOURCE=modelscope).")
        return Remote(url, hint=hint)
    if source != MODELSCOPE:
        raise ValueError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
    model_id = f"{CLIP_ORG[source]}/{repo}"
    hint = ("ModelScope cannot be reached from here? Set IMMICH_CN_ML_MODELSCOPE_ENDPOINT to a mirror, "
            "or download from Hugging Face: --source huggingface (HF_ENDPOINT for a mirror).")
    size, sha256 = _modelscope_file(model_id, filename, hint)
    url = f"{modelscope_endpoint()}/api/v1/models/{model_id}/repo?Revision=master&FilePath={quote_plus(filename)}"
    return Remote(url, sha256, size, hint)


def ocr_file(url: str, sha256: str) -> Remote:
    """A file of rapidocr's model list, from ModelScope's address as configured."""
    if url.startswith(MODELSCOPE_DEFAULT):
        url = modelscope_endpoint() + url[len(MODELSCOPE_DEFAULT):]
    hint = ("ModelScope cannot be reached from here? Set IMMICH_CN_ML_MODELSCOPE_ENDPOINT to a mirror of "
            "www.modelscope.cn, or import the files you have with --from DIR.")
    return Remote(url, sha256, hint=hint)


def face_pack(name: str) -> Remote:
    """An InsightFace pack's zip from the model-zoo release (or the mirror configured)."""
    base = get_settings().insightface_base_url.rstrip("/")
    hint = ("GitHub cannot be reached from here? Set IMMICH_CN_ML_INSIGHTFACE_BASE_URL to a mirror of "
            "InsightFace's model-zoo release (it must serve <base>/<pack>.zip), or import the zip you have "
            "with --from FILE.zip.")
    return Remote(f"{base}/{name}.zip", hint=hint)


def _modelscope_file(model_id: str, path: str, hint: str) -> tuple[int | None, str | None]:
    """(size, SHA-256) of a file as ModelScope's file list publishes them."""
    url = f"{modelscope_endpoint()}/api/v1/models/{model_id}/repo/files?Revision=master&Recursive=true"
    try:
        response = httpx.get(url, timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT), follow_redirects=True)
    except httpx.HTTPError as exc:
        raise DownloadError(f"could not list {url}: {type(exc).__name__}: {exc or 'no answer'}\n{hint}") from exc
    if response.status_code != 200:
        raise DownloadError(f"could not list {url}: it answered HTTP {response.status_code}\n{hint}")
    try:
        files = response.json()["Data"]["Files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DownloadError(f"{url} answered no file list ({response.text[:200]!r})\n{hint}") from exc
    for entry in files:
        if entry.get("Path") == path or entry.get("Name") == path:
            size = entry.get("Size")
            return (int(size) if isinstance(size, int) else None), (entry.get("Sha256") or None)
    raise DownloadError(f"{model_id} on ModelScope has no file {path!r} ({url})\n{hint}")
