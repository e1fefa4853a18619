"""runners.models.sources: the URL each source and setting gives, and what ModelScope publishes."""

from __future__ import annotations

import hashlib

import pytest

from config.settings import get_settings
from runners.models import sources
from runners.models.download import DownloadError
from tests.support.file_host import FileHost


@pytest.fixture
def env(monkeypatch):
    """Set variables for one test; the settings object is read again."""
    for name in ("HF_ENDPOINT", "MODELSCOPE_DOMAIN", "IMMICH_CN_ML_MODELSCOPE_ENDPOINT",
                 "IMMICH_CN_ML_INSIGHTFACE_BASE_URL", "IMMICH_CN_ML_MODEL_SOURCE"):
        monkeypatch.delenv(name, raising=False)

    def set_(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    get_settings.cache_clear()
    yield set_
    get_settings.cache_clear()


@pytest.fixture
def host():
    served = FileHost()
    yield served
    served.stop()


def test_hugging_face_is_cn_clips_own_address_unless_hf_endpoint_names_a_mirror(env):
    env()
    remote = sources.clip_checkpoint("chinese-clip-vit-base-patch16", "clip_cn_vit-b-16.pt", "huggingface")
    assert remote.url == "https://huggingface.co/OFA-Sys/chinese-clip-vit-base-patch16/resolve/main/clip_cn_vit-b-16.pt"
    assert "HF_ENDPOINT" in remote.hint and "--source modelscope" in remote.hint
    env(HF_ENDPOINT="https://hf-mirror.com/")
    mirrored = sources.clip_checkpoint("chinese-clip-vit-base-patch16", "clip_cn_vit-b-16.pt", "huggingface")
    assert mirrored.url == "https://hf-mirror.com/OFA-Sys/chinese-clip-vit-base-patch16/resolve/main/clip_cn_vit-b-16.pt"


def test_modelscope_is_asked_through_its_file_api_with_the_size_and_checksum_it_lists(env, host):
    data = b"checkpoint" * 1000
    path = host.add_modelscope("AI-ModelScope/chinese-clip-vit-base-patch16", "clip_cn_vit-b-16.pt", data)
    env(IMMICH_CN_ML_MODELSCOPE_ENDPOINT=host.url)
    remote = sources.clip_checkpoint("chinese-clip-vit-base-patch16", "clip_cn_vit-b-16.pt", "modelscope")
    assert remote.url == host.url + path
    assert (remote.size, remote.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert host.asked() == ["/api/v1/models/AI-ModelScope/chinese-clip-vit-base-patch16/repo/files"
                            "?Revision=master&Recursive=true"]


def test_modelscope_domain_as_the_modelscope_library_reads_it(env):
    env(MODELSCOPE_DOMAIN="modelscope.example.cn")
    assert sources.modelscope_endpoint() == "https://modelscope.example.cn"
    env(IMMICH_CN_ML_MODELSCOPE_ENDPOINT="http://10.0.0.2:8080/")
    assert sources.modelscope_endpoint() == "http://10.0.0.2:8080"  # ours wins


def test_a_file_modelscope_does_not_list_or_an_unreachable_modelscope_is_a_clear_error(env, host):
    host.add_modelscope("AI-ModelScope/chinese-clip-rn50", "other.pt", b"x")
    env(IMMICH_CN_ML_MODELSCOPE_ENDPOINT=host.url)
    with pytest.raises(DownloadError, match="has no file 'clip_cn_rn50.pt'"):
        sources.clip_checkpoint("chinese-clip-rn50", "clip_cn_rn50.pt", "modelscope")
    env(IMMICH_CN_ML_MODELSCOPE_ENDPOINT="http://127.0.0.1:9")
    with pytest.raises(DownloadError, match="IMMICH_CN_ML_MODELSCOPE_ENDPOINT"):
        sources.clip_checkpoint("chinese-clip-rn50", "clip_cn_rn50.pt", "modelscope")


def test_face_packs_come_from_insightfaces_own_release_unless_a_mirror_is_set(env):
    from insightface.utils.storage import model_zoo_download_url

    env()
    assert sources.face_pack("buffalo_l").url == model_zoo_download_url("buffalo_l.zip")
    env(IMMICH_CN_ML_INSIGHTFACE_BASE_URL="https://mirror.example.cn/insightface/")
    remote = sources.face_pack("antelopev2")
    assert remote.url == "https://mirror.example.cn/insightface/antelopev2.zip"
    assert "IMMICH_CN_ML_INSIGHTFACE_BASE_URL" in remote.hint


def test_ocr_files_keep_rapidocrs_paths_and_checksums_on_the_modelscope_address_set(env):
    url = "https://www.modelscope.cn/models/RapidAI/RapidOCR/resolve/v3.10.0/onnx/PP-OCRv6/det/PP-OCRv6_det_tiny.onnx"
    env()
    assert sources.ocr_file(url, "ab" * 32).url == url
    env(IMMICH_CN_ML_MODELSCOPE_ENDPOINT="http://127.0.0.1:8000")
    moved = sources.ocr_file(url, "ab" * 32)
    assert moved.url == "http://127.0.0.1:8000/models/RapidAI/RapidOCR/resolve/v3.10.0/onnx/PP-OCRv6/det/PP-OCRv6_det_tiny.onnx"
    assert moved.sha256 == "ab" * 32
