"""The download code, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import time

import pytest

from runners.models.download import DownloadError, download
from tests.support.ports import free_port
from tests.support.upstream_stub import Reply

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


def test_download_checks_the_sha256_and_writes_only_a_verified_file(upstream, tmp_path):
    upstream.reset(lambda _: Reply(body=PAYLOAD, content_type="application/octet-stream"))
    dest = tmp_path / "model.onnx"
    download(f"{upstream.url}/model.onnx", dest, hashlib.sha256(PAYLOAD).hexdigest())
    assert dest.read_bytes() == PAYLOAD

    wrong = tmp_path / "wrong.onnx"
    with pytest.raises(DownloadError, match="SHA-256"):
        download(f"{upstream.url}/model.onnx", wrong, "0" * 64)
    assert list(tmp_path.iterdir()) == [dest]  # nothing half-written left behind


def test_http_error_is_a_download_error(upstream, tmp_path):
    upstream.reset(lambda _: Reply(status=404, body=b"not here"))
    with pytest.raises(DownloadError, match="404"):
        download(f"{upstream.url}/missing.onnx", tmp_path / "m.onnx")


def test_unreachable_host_fails_at_once(tmp_path):
    started = time.monotonic()
    with pytest.raises(DownloadError, match="could not download"):
        download(f"http://127.0.0.1:{free_port()}/model.onnx", tmp_path / "m.onnx")
    assert time.monotonic() - started < 5
