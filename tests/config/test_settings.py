from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from config.settings import Settings

#: The MT Photos references' own variable names, which the MT settings honour.
MT_REFERENCE_NAMES = {"API_AUTH_KEY", "CLIP_MODEL", "RECOGNITION_MODEL", "DETECTION_THRESH"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith(("IMMICH_CN_ML_", "MACHINE_LEARNING_", "IMMICH_")) or name in MT_REFERENCE_NAMES:
            monkeypatch.delenv(name)


def test_defaults_match_immich():
    settings = Settings()
    assert settings.port == 3003
    assert settings.workers == 1
    assert settings.upstream_url is None


def test_stock_immich_names_are_honoured(monkeypatch):
    monkeypatch.setenv("MACHINE_LEARNING_WORKERS", "3")
    monkeypatch.setenv("IMMICH_PORT", "3100")
    monkeypatch.setenv("IMMICH_LOG_LEVEL", "verbose")
    settings = Settings()
    assert (settings.workers, settings.port, settings.log_level) == (3, 3100, "verbose")


def test_face_batch_size_reads_the_stock_name(monkeypatch):
    assert Settings().face_max_batch_size == 32
    monkeypatch.setenv("MACHINE_LEARNING_MAX_BATCH_SIZE__FACIAL_RECOGNITION", "1")
    assert Settings().face_max_batch_size == 1  # the runner takes it as 2 (BentoML's least)


def test_our_name_wins_over_the_stock_one(monkeypatch):
    monkeypatch.setenv("MACHINE_LEARNING_WORKERS", "3")
    monkeypatch.setenv("IMMICH_CN_ML_WORKERS", "2")
    assert Settings().workers == 2


def test_upstream_url_is_normalised(monkeypatch):
    monkeypatch.setenv("IMMICH_CN_ML_UPSTREAM_URL", " http://immich-machine-learning:3003/ ")
    assert Settings().upstream_url == "http://immich-machine-learning:3003"
    monkeypatch.setenv("IMMICH_CN_ML_UPSTREAM_URL", "")
    assert Settings().upstream_url is None


def test_aliases_are_json(monkeypatch):
    monkeypatch.setenv("IMMICH_CN_ML_MODEL_ALIASES", '{"ViT-B-32__openai": "cn-clip/ViT-B-16__openai"}')
    assert Settings().model_aliases == {"ViT-B-32__openai": "cn-clip/ViT-B-16__openai"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("IMMICH_CN_ML_UPSTREAM_URL", "immich-machine-learning:3003"),
        ("IMMICH_CN_ML_MAX_IMAGE_PIXELS", "0"),
        ("IMMICH_CN_ML_LOG_LEVEL", "loud"),
        ("IMMICH_CN_ML_UPSTREAM_TIMEOUT", "900"),  # longer than the whole request may take
        ("IMMICH_CN_ML_FACE_DET_MAX_BATCH_SIZE", "1"),  # BentoML batches at least 2
        ("MACHINE_LEARNING_MAX_BATCH_SIZE__FACIAL_RECOGNITION", "0"),
    ],
)
def test_bad_values_fail_at_start_with_the_name(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_bare_names_that_platforms_set_are_not_read(monkeypatch):
    monkeypatch.setenv("PORT", "8080")
    monkeypatch.setenv("UPSTREAM_URL", "http://elsewhere:1")
    monkeypatch.setenv("LOG_LEVEL", "nonsense")
    settings = Settings()
    assert (settings.port, settings.upstream_url, settings.log_level) == (3003, None, "info")


def test_model_lifecycle_reads_the_stock_names(monkeypatch):
    settings = Settings()
    assert (settings.model_ttl, settings.model_ttl_poll, settings.preloads) == (300, 10, {})
    monkeypatch.setenv("MACHINE_LEARNING_MODEL_TTL", "0")
    monkeypatch.setenv("MACHINE_LEARNING_MODEL_TTL_POLL_S", "2")
    monkeypatch.setenv("MACHINE_LEARNING_PRELOAD__CLIP__TEXTUAL", "cn-clip/ViT-B-16__openai")
    monkeypatch.setenv("MACHINE_LEARNING_PRELOAD__FACIAL_RECOGNITION__DETECTION", "buffalo_l, antelopev2 ,")
    monkeypatch.setenv("IMMICH_CN_ML_PRELOAD__OCR__RECOGNITION", "PP-OCRv5_mobile")
    settings = Settings()
    assert (settings.model_ttl, settings.model_ttl_poll) == (0, 2)
    assert settings.preloads == {
        ("clip", "textual"): ["cn-clip/ViT-B-16__openai"],
        ("facial-recognition", "detection"): ["buffalo_l", "antelopev2"],
        ("ocr", "recognition"): ["PP-OCRv5_mobile"],
    }


def test_runtime_memory_settings(monkeypatch):
    settings = Settings()
    assert (settings.runners, settings.onnx_arena, settings.onnx_spinning) == ("combined", False, False)
    assert settings.active_requests >= 2
    monkeypatch.setenv("MACHINE_LEARNING_MODEL_ARENA", "true")
    monkeypatch.setenv("IMMICH_CN_ML_RUNNERS", "split")
    monkeypatch.setenv("IMMICH_CN_ML_MAX_ACTIVE_REQUESTS", "3")
    settings = Settings()
    assert (settings.runners, settings.onnx_arena, settings.active_requests) == ("split", True, 3)
    monkeypatch.setenv("IMMICH_CN_ML_RUNNERS", "one-each")
    with pytest.raises(ValidationError, match="RUNNERS|runners"):
        Settings()


def test_runner_urls_name_the_runners_of_the_layout(monkeypatch):
    assert Settings().runner_urls == {}
    monkeypatch.setenv("IMMICH_CN_ML_RUNNER_URL", " http://models:3003/ ")
    assert Settings().runner_urls == {"models": "http://models:3003"}
    monkeypatch.setenv("IMMICH_CN_ML_RUNNERS", "split")
    with pytest.raises(ValidationError, match="RUNNER_URL__CLIP, __FACES, __OCR"):
        Settings()  # the combined layout's one runner, named with the split layout chosen
    monkeypatch.delenv("IMMICH_CN_ML_RUNNER_URL")
    monkeypatch.setenv("IMMICH_CN_ML_RUNNER_URL__CLIP", "http://gpu-box:3003")
    monkeypatch.setenv("IMMICH_CN_ML_RUNNER_URL__OCR", "https://ocr.internal")
    # A family without a URL (faces here) runs here, as a child of the entry's server.
    assert Settings().runner_urls == {"clip": "http://gpu-box:3003", "ocr": "https://ocr.internal"}
    monkeypatch.setenv("IMMICH_CN_ML_RUNNERS", "combined")
    with pytest.raises(ValidationError, match="RUNNER_URL__CLIP, IMMICH_CN_ML_RUNNER_URL__OCR name a runner of the split"):
        Settings()
    monkeypatch.setenv("IMMICH_CN_ML_RUNNERS", "split")
    monkeypatch.setenv("IMMICH_CN_ML_RUNNER_URL__FACES", "gpu-box:3003")
    with pytest.raises(ValidationError, match="must start with http:// or https://"):
        Settings()



@pytest.mark.parametrize("url, refused", [
    ("http://gpu-box:3003/ocr/", "without '/ocr'"),  # BentoML's routes would drop the path
    ("http://gpu-box:3003/?token=1", "without '?token=1'"),
    ("http://gpu-box:3003#clip", "without '#clip'"),
    ("http://", "names no host"),
    ("https:///clip", "names no host"),
])
def test_a_runner_url_is_a_servers_address_alone(monkeypatch, url, refused):
    monkeypatch.setenv("IMMICH_CN_ML_RUNNER_URL", url)
    with pytest.raises(ValidationError, match=re.escape(refused)):
        Settings()
    # The upstream (a stock server, maybe behind a reverse proxy's path) may have a path.
    monkeypatch.delenv("IMMICH_CN_ML_RUNNER_URL")
    monkeypatch.setenv("IMMICH_CN_ML_UPSTREAM_URL", "http://proxy:8080/immich-ml/")
    assert Settings().upstream_url == "http://proxy:8080/immich-ml"


def test_a_refused_setting_never_shows_a_password(monkeypatch):
    monkeypatch.setenv("IMMICH_CN_ML_RUNNER_URL", "ftp://admin:s3cret@gpu-box:3003")
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert "s3cret" not in str(refused.value) and "admin" not in str(refused.value)
    # A check across settings would print them all, this password among them.
    monkeypatch.setenv("IMMICH_CN_ML_RUNNER_URL", "http://admin:s3cret@gpu-box:3003")
    monkeypatch.setenv("IMMICH_CN_ML_RUNNERS", "split")
    with pytest.raises(ValidationError, match="RUNNER_URL__CLIP, __FACES, __OCR") as refused:
        Settings()
    assert "s3cret" not in str(refused.value)

def test_on_a_gpu_batches_can_fill_unless_the_limit_is_set(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    settings = Settings()
    assert (settings.active_requests_on("cpu"), settings.active_requests_on("cuda")) == (4, 32)
    assert settings.largest_image_batch == settings.clip_max_batch_size == 32
    monkeypatch.setenv("IMMICH_CN_ML_FACE_DET_MAX_BATCH_SIZE", "48")
    assert Settings().active_requests_on("cuda") == 48  # the largest image batch of any API
    monkeypatch.setattr("os.cpu_count", lambda: 64)
    assert Settings().active_requests_on("cuda") == 64  # never fewer than on the CPU
    monkeypatch.setenv("IMMICH_CN_ML_MAX_ACTIVE_REQUESTS", "6")
    assert (Settings().active_requests_on("cpu"), Settings().active_requests_on("cuda")) == (6, 6)


def test_every_setting_has_a_row_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `")]
    for name, field in Settings.model_fields.items():
        ours = field.validation_alias.choices[0]
        assert any(row.startswith(f"| `{ours}`") for row in rows), f"{name}: no README row for {ours}"
        for stock in field.validation_alias.choices[1:]:
            assert any(row.startswith(f"| `{ours}`") and f"`{stock}`" in row for row in rows), (name, stock)


def test_the_cache_folder_is_slash_cache_in_the_image_and_unset_elsewhere(monkeypatch):
    monkeypatch.delenv("BENTOML_CONTAINERIZED", raising=False)
    assert Settings().cache_folder is None
    monkeypatch.setenv("BENTOML_CONTAINERIZED", "true")  # what BentoML's Dockerfile sets
    assert str(Settings().cache_folder) == "/cache"
    monkeypatch.setenv("MACHINE_LEARNING_CACHE_FOLDER", "/models")
    assert str(Settings().cache_folder) == "/models"


def test_device_ids_read_the_stock_name_and_the_first_is_used(monkeypatch):
    assert Settings().device_id == 0
    monkeypatch.setenv("MACHINE_LEARNING_DEVICE_IDS", "1, 2")
    assert Settings().device_id == 1
    monkeypatch.setenv("MACHINE_LEARNING_DEVICE_IDS", "gpu0")
    with pytest.raises(ValidationError, match="DEVICE_IDS"):
        Settings()


def test_mt_photos_settings_default_to_the_references_and_read_their_names(monkeypatch):
    settings = Settings()
    assert (settings.mt_api_key, settings.mt_clip_model, settings.mt_ocr_model, settings.mt_face_model,
            settings.mt_face_threshold) == ("mt_photos_ai_extra", "ViT-B-16", "PP-OCRv5_mobile", "buffalo_l", 0.65)
    for name, value in {"API_AUTH_KEY": "k1", "CLIP_MODEL": "ViT-L-14", "RECOGNITION_MODEL": "antelopev2",
                        "DETECTION_THRESH": "0.5"}.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert (settings.mt_api_key, settings.mt_clip_model, settings.mt_face_model, settings.mt_face_threshold) == (
        "k1", "ViT-L-14", "antelopev2", 0.5)
    monkeypatch.setenv("IMMICH_CN_ML_MT_API_KEY", "k2")
    assert Settings().mt_api_key == "k2"
    for name, bad in (("DETECTION_THRESH", "1.5"), ("API_AUTH_KEY", "")):
        monkeypatch.setenv(name, bad)
        monkeypatch.delenv("IMMICH_CN_ML_MT_API_KEY", raising=False)
        with pytest.raises(ValidationError):
            Settings()
        monkeypatch.setenv(name, {"DETECTION_THRESH": "0.5", "API_AUTH_KEY": "k1"}[name])
