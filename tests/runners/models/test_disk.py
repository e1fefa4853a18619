"""runners/models/disk.py: an import onto a disk that fills up (a real tmpfs, real ENOSPC) fails
with a sentence that says so, stores nothing half-written, leaves the model already there
serving, and the next import, once there is room, succeeds."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import pytest

from config.settings import get_settings
from runners.models import disk, download, store
from runners.models.disk import MIB, DiskFull
from tests.support.bento_server import BentoServer
from tests.support.file_host import FileHost
from tests.support.models_cli import IMPORTED_OCR, imported_ocr_request, models, ocr_download
from tests.support.tmpfs import grow, small_disk

NAME = IMPORTED_OCR  # imported from the PP-OCRv5 mobile files of the wheel


@pytest.fixture
def mobile_files(tmp_path) -> Path:
    return ocr_download(tmp_path / "download")


def _size(folder: Path) -> int:
    return sum(file.stat().st_size for file in folder.iterdir())


def _versions(cache: Path) -> list[Path]:
    folder = cache / store.store_name("ocr", NAME)
    return sorted(v for v in folder.iterdir() if v.is_dir()) if folder.is_dir() else []


def ocr_answer(server: BentoServer) -> dict:
    body, content_type = imported_ocr_request(NAME)
    response = httpx.post(f"{server.url}/predict", content=body, headers={"content-type": content_type}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_full_model_volume_fails_the_import_plainly_and_the_served_model_stays(tmp_path, mobile_files):
    # Room for one copy of the model and half of another: the second import cannot fit.
    mib = math.ceil(1.5 * _size(mobile_files) / MIB + disk.MARGIN / MIB)
    with small_disk(tmp_path / "cache", mib) as cache:
        env = {"MACHINE_LEARNING_CACHE_FOLDER": str(cache)}
        home = tmp_path / "home"
        first = models(home, "import", "ocr", NAME, "--from", str(mobile_files), env=env)
        assert first.returncode == 0, first.stderr
        [version] = _versions(cache)

        server = BentoServer(".", home, env).start()
        try:
            before = ocr_answer(server)
            again = models(home, "import", "ocr", NAME, "--from", str(mobile_files), env=env)
            assert again.returncode == 1
            assert f"needs" in again.stderr and f"in {cache}" in again.stderr and "MiB free" in again.stderr
            assert "Traceback" not in again.stderr
            assert _versions(cache) == [version], "nothing of the failed import may stay"
            assert ocr_answer(server) == before
        finally:
            server.stop()
        listed = models(home, "list", env=env).stdout
        assert any(line.split()[1] == NAME and str(version) in line for line in listed.splitlines()[1:]), listed

        grow(cache, 3 * mib)  # the user makes room
        third = models(home, "import", "ocr", NAME, "--from", str(mobile_files), env=env)
        assert third.returncode == 0, third.stderr
        assert len(_versions(cache)) == 2


@pytest.fixture
def cache_on(monkeypatch):
    """Point this process's settings at a cache folder (the store imports write to)."""
    def point(folder: Path) -> None:
        monkeypatch.setenv("MACHINE_LEARNING_CACHE_FOLDER", str(folder))
        get_settings.cache_clear()

    yield point
    get_settings.cache_clear()


def test_a_disk_that_fills_while_the_store_copies_keeps_nothing_of_it(tmp_path, mobile_files, cache_on, monkeypatch):
    files = {path.name: path for path in sorted(mobile_files.iterdir())}
    with small_disk(tmp_path / "cache", math.ceil(_size(mobile_files) / 2 / MIB)) as cache:
        cache_on(cache)
        # The room went to something else after the check: the copy itself meets ENOSPC.
        monkeypatch.setattr(store, "need_room", lambda *args: None)
        with pytest.raises(DiskFull, match=f"the disk holding .*{cache.name}.* is full; nothing of it was stored"):
            store.save("ocr", NAME, files, {"name": NAME})
        assert not _versions(cache) and store.get("ocr", NAME) is None
        assert not list(cache.rglob("*.onnx"))


def test_a_download_onto_a_full_disk_fails_before_its_first_byte_or_keeps_its_part(tmp_path, monkeypatch):
    data = bytes(range(256)) * (12 * MIB // 256)  # 12 MiB onto an 8 MiB disk
    host = FileHost()
    host.add("/release/pack.zip", data)
    try:
        with small_disk(tmp_path / "home", 8) as home:
            monkeypatch.setattr(download, "downloads_folder", lambda: home / "downloads")
            url = f"{host.url}/release/pack.zip"
            with pytest.raises(DiskFull, match=r"downloading pack.zip .* needs 16.0 MiB in .*downloads"):
                download.download(url, tmp_path / "pack.zip")
            assert not list((home / "downloads").iterdir()) and len(host.requests) == 1

            monkeypatch.setattr(download, "need_room", lambda *args: None)  # filled up meanwhile
            with pytest.raises(DiskFull, match=r"the disk holding .*downloads \(.* MiB free now\) is full; the part downloaded is kept in .*pack.zip.part"):
                download.download(url, tmp_path / "pack.zip")
            assert not (tmp_path / "pack.zip").exists()
    finally:
        host.stop()


def test_the_messages_name_the_folder_and_what_is_free(tmp_path):
    with pytest.raises(DiskFull, match=rf"storing x needs .* MiB in {tmp_path}, and its disk has .* MiB free"):
        disk.need_room(tmp_path, 2**62, "storing x")
    disk.need_room(tmp_path / "not" / "made" / "yet", 1, "storing x")  # its nearest existing parent's disk
    full = OSError(28, "No space left on device", str(tmp_path / "file"))
    assert disk.is_full(full) and not disk.is_full(OSError(13, "Permission denied"))
    assert disk.full_message(full, "storing x").startswith(f"storing x stopped: the disk holding {tmp_path} (")
