"""``python -m runners.models import`` downloading from each source, as a user runs it, against a
file host on 127.0.0.1 standing in for Hugging Face (or a mirror), ModelScope and GitHub's
release downloads: the right URL is asked for each source and setting, a dropped connection
resumes, a wrong checksum stores nothing, an unreachable source fails fast and says what to set."""

from __future__ import annotations

import hashlib
import io
import time
import zipfile

import pytest

from runners.models.ocr import CATALOG, rapidocr_urls
from tests.support.file_host import FileHost
from tests.support.models_cli import models, ocr_download
from tests.support.ports import free_port

REPO, CHECKPOINT = "chinese-clip-vit-base-patch16", "clip_cn_vit-b-16.pt"  # cn-clip's ViT-B-16


@pytest.fixture
def host():
    served = FileHost()
    yield served
    served.stop()


def listed(home) -> dict[str, str]:
    run = models(home, "list")
    assert run.returncode == 0, run.stderr
    return {line.split()[1]: line for line in run.stdout.splitlines()[1:]}


def test_clip_from_a_hugging_face_mirror_resumes_a_dropped_connection(host, tiny_clip, tmp_path):
    checkpoint, config = tiny_clip
    data = checkpoint.read_bytes()
    resolve = host.add_huggingface(f"OFA-Sys/{REPO}", CHECKPOINT, data, drop_after=len(data) // 3)
    run = models(tmp_path, "import", "clip", "ViT-B-16", "--config", str(config), env={"HF_ENDPOINT": host.url})
    assert run.returncode == 0, run.stderr
    assert host.asked()[:2] == [resolve, f"/lfs/{hashlib.sha256(data).hexdigest()}"]
    assert [r.range for r in host.requests][-1] == f"bytes={len(data) // 3}-"  # it went on where it stopped
    assert "dropped" in run.stderr and "resuming" in run.stderr
    assert " no " not in listed(tmp_path)["cn-clip/ViT-B-16__openai"]


@pytest.mark.parametrize("choose", ["flag", "setting"])
def test_clip_from_modelscope_by_flag_or_setting(host, tiny_clip, tmp_path, choose):
    checkpoint, config = tiny_clip
    path = host.add_modelscope(f"AI-ModelScope/{REPO}", CHECKPOINT, checkpoint.read_bytes())
    env = {"IMMICH_CN_ML_MODELSCOPE_ENDPOINT": host.url, "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    args = ["import", "clip", "ViT-B-16", "--config", str(config)]
    if choose == "flag":
        args += ["--source", "modelscope"]
    else:
        env["IMMICH_CN_ML_MODEL_SOURCE"] = "modelscope"
    run = models(tmp_path, *args, env=env)
    assert run.returncode == 0, run.stderr
    assert host.asked() == [f"/api/v1/models/AI-ModelScope/{REPO}/repo/files?Revision=master&Recursive=true", path]


def test_a_checksum_that_does_not_match_stores_nothing_and_says_so(host, tiny_clip, tmp_path):
    checkpoint, config = tiny_clip
    host.add_modelscope(f"AI-ModelScope/{REPO}", CHECKPOINT, checkpoint.read_bytes(), sha256="0" * 64)
    run = models(tmp_path, "import", "clip", "ViT-B-16", "--config", str(config), "--source", "modelscope",
                 env={"IMMICH_CN_ML_MODELSCOPE_ENDPOINT": host.url})
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "SHA-256 is" in run.stderr and "expected 0000" in run.stderr and "nothing was stored" in run.stderr
    assert " no " in listed(tmp_path)["cn-clip/ViT-B-16__openai"]
    assert not list((tmp_path / "downloads").glob("*.part"))  # nor kept to resume from


def test_an_unreachable_source_fails_fast_naming_the_url_and_the_setting(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    run = models(tmp_path, "import", "clip", "ViT-B-16", "--source", "modelscope",
                 env={"IMMICH_CN_ML_MODELSCOPE_ENDPOINT": dead}, timeout=60)
    assert time.monotonic() - started < 30 and run.returncode == 1
    assert dead in run.stderr and "IMMICH_CN_ML_MODELSCOPE_ENDPOINT" in run.stderr and "--from FILE" in run.stderr
    run = models(tmp_path, "import", "face", "buffalo_l", env={"IMMICH_CN_ML_INSIGHTFACE_BASE_URL": dead}, timeout=60)
    assert run.returncode == 1 and f"{dead}/buffalo_l.zip" in run.stderr
    assert "IMMICH_CN_ML_INSIGHTFACE_BASE_URL" in run.stderr


def test_a_face_pack_from_a_mirror_of_the_release(host, face_packs, tmp_path):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as packed:
        for path in sorted(face_packs["buffalo_l"].iterdir()):
            packed.write(path, f"buffalo_l/{path.name}")
    host.add("/mirror/insightface/buffalo_l.zip", archive.getvalue())
    run = models(tmp_path, "import", "face", env={"IMMICH_CN_ML_INSIGHTFACE_BASE_URL": f"{host.url}/mirror/insightface"})
    assert run.returncode == 0, run.stderr
    assert host.asked() == ["/mirror/insightface/buffalo_l.zip"]
    assert " no " not in listed(tmp_path)["buffalo_l"]


def test_ocr_files_come_from_rapidocrs_list_on_the_modelscope_address_and_are_checked(host, tmp_path):
    urls = rapidocr_urls(CATALOG["PP-OCRv5_server"].download)
    files = ocr_download(tmp_path / "files")  # PP-OCRv5 mobile's files: not what the list's checksums say
    for kind, name in (("det", "det.onnx"), ("rec", "rec.onnx")):
        host.add(urls[kind][0].removeprefix("https://www.modelscope.cn"), next(files.glob(f"*{kind}*.onnx")).read_bytes())
    run = models(tmp_path / "home", "import", "ocr", "PP-OCRv5_server", env={"IMMICH_CN_ML_MODELSCOPE_ENDPOINT": host.url})
    assert run.returncode == 1 and "SHA-256 is" in run.stderr and "nothing was stored" in run.stderr
    assert host.asked() == [urls["det"][0].removeprefix("https://www.modelscope.cn")]
    assert " no " in listed(tmp_path / "home")["PP-OCRv5_server"]


def test_pp_ocrv6_tiers_download_from_rapidocrs_list_like_the_others(host, tmp_path):
    from runners.models.ocr import package_dir

    small = CATALOG["PP-OCRv6_small"]
    root = package_dir(small.wheel.package)
    for tier in ("small", "tiny"):  # the wheel's small files, published at both tiers' places
        urls = rapidocr_urls(CATALOG[f"PP-OCRv6_{tier}"].download)
        for kind, file in (("det", small.wheel.det), ("rec", small.wheel.rec)):
            host.add(urls[kind][0].removeprefix("https://www.modelscope.cn"), (root / file).read_bytes())
    env = {"IMMICH_CN_ML_MODELSCOPE_ENDPOINT": host.url}
    run = models(tmp_path, "import", "ocr", "PP-OCRv6_small", env=env)
    assert run.returncode == 0, run.stderr  # the files rapidocr lists for small are the wheel's own
    assert "model store" in listed(tmp_path)["PP-OCRv6_small"]
    run = models(tmp_path, "import", "ocr", "PP-OCRv6_tiny", env=env)
    assert run.returncode == 1 and "PP-OCRv6_det_tiny.onnx: SHA-256 is" in run.stderr  # tiny's own checksum
    assert " no " in listed(tmp_path)["PP-OCRv6_tiny"] and "PP-OCRv6_medium" in listed(tmp_path)
