"""The download code, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import time

import pytest

from runners.models import download as download_module
from runners.models.download import DownloadError, Remote, download
from tests.support.file_host import FileHost
from tests.support.ports import free_port
from tests.support.upstream_stub import Reply

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture(autouse=True)
def partials(tmp_path, monkeypatch):
    """Partial downloads wait here, not in the BentoML home of whoever runs the tests."""
    folder = tmp_path / "partials"
    monkeypatch.setattr(download_module, "downloads_folder", lambda: folder)
    return folder


@pytest.fixture
def host():
    served = FileHost()
    yield served
    served.stop()


def test_download_checks_the_sha256_and_writes_only_a_verified_file(upstream, tmp_path):
    upstream.reset(lambda _: Reply(body=PAYLOAD, content_type="application/octet-stream"))
    dest = tmp_path / "model.onnx"
    download(f"{upstream.url}/model.onnx", dest, hashlib.sha256(PAYLOAD).hexdigest())
    assert dest.read_bytes() == PAYLOAD

    wrong = tmp_path / "wrong.onnx"
    with pytest.raises(DownloadError, match="SHA-256"):
        download(f"{upstream.url}/model.onnx", wrong, "0" * 64)
    assert [p for p in tmp_path.iterdir() if p.is_file()] == [dest]  # nothing half-written left behind


def test_http_error_is_a_download_error(upstream, tmp_path):
    upstream.reset(lambda _: Reply(status=404, body=b"not here"))
    with pytest.raises(DownloadError, match="404"):
        download(f"{upstream.url}/missing.onnx", tmp_path / "m.onnx")


def test_unreachable_host_fails_at_once(tmp_path):
    started = time.monotonic()
    with pytest.raises(DownloadError, match="could not download"):
        download(f"http://127.0.0.1:{free_port()}/model.onnx", tmp_path / "m.onnx")
    assert time.monotonic() - started < 5


def test_a_dropped_connection_resumes_where_it_stopped(host, tmp_path, partials):
    host.add("/big.onnx", PAYLOAD, drop_after=300_000)
    dest = download(Remote(f"{host.url}/big.onnx", hashlib.sha256(PAYLOAD).hexdigest()), tmp_path / "big.onnx")
    assert dest.read_bytes() == PAYLOAD
    assert [r.range for r in host.requests] == [None, "bytes=300000-"]  # the second asked for the rest only
    assert list(partials.iterdir()) == []


def test_a_download_broken_off_goes_on_in_the_next_run(host, tmp_path, monkeypatch):
    host.add("/big.onnx", PAYLOAD, drop_after=400_000)
    monkeypatch.setattr(download_module, "ATTEMPTS", 1)
    with pytest.raises(DownloadError, match="400000 bytes kept"):
        download(f"{host.url}/big.onnx", tmp_path / "big.onnx")
    assert not (tmp_path / "big.onnx").exists()
    monkeypatch.setattr(download_module, "ATTEMPTS", 5)
    assert download(f"{host.url}/big.onnx", tmp_path / "big.onnx").read_bytes() == PAYLOAD
    assert host.requests[-1].range == "bytes=400000-"


def test_hugging_faces_published_checksum_and_size_are_checked(host, tmp_path, partials):
    host.add_huggingface("OFA-Sys/repo", "good.pt", PAYLOAD)
    host.add_huggingface("OFA-Sys/repo", "corrupt.pt", PAYLOAD, sha256="ab" * 32)
    host.add_huggingface("OFA-Sys/repo", "short.pt", PAYLOAD, size=len(PAYLOAD) + 1)
    assert download(f"{host.url}/OFA-Sys/repo/resolve/main/good.pt", tmp_path / "good.pt").read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match="SHA-256 is .* expected abab"):
        download(Remote(f"{host.url}/OFA-Sys/repo/resolve/main/corrupt.pt", hint="set HF_ENDPOINT"),
                 tmp_path / "corrupt.pt")
    with pytest.raises(DownloadError, match=f"sends {len(PAYLOAD)} bytes, but the source publishes {len(PAYLOAD) + 1}"):
        download(f"{host.url}/OFA-Sys/repo/resolve/main/short.pt", tmp_path / "short.pt")
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["good.pt"]  # nothing else stored
    assert list(partials.iterdir()) == []  # nor kept to resume


def test_a_failure_names_the_url_and_the_setting_to_change(tmp_path):
    remote = Remote(f"http://127.0.0.1:{free_port()}/x.pt", hint="Set HF_ENDPOINT to a mirror")
    with pytest.raises(DownloadError) as caught:
        download(remote, tmp_path / "x.pt")
    assert remote.url in str(caught.value) and "Set HF_ENDPOINT to a mirror" in str(caught.value)
