"""The api-key check of MT Photos' routes."""

from __future__ import annotations

import json

from starlette.datastructures import Headers

from adapters.mt_photos.auth import key_refusal


def headers(**values: str | bytes) -> Headers:
    raw = [(name.replace("_", "-").encode(), value if isinstance(value, bytes) else value.encode("latin-1"))
           for name, value in values.items()]
    return Headers(raw=raw)


def test_the_right_key_passes():
    assert key_refusal(headers(api_key="mt_photos_ai_extra"), "mt_photos_ai_extra") is None


def test_a_wrong_or_empty_key_is_401_as_the_reference_says_it():
    for given in ("wrong", "", "mt_photos_ai_extra ", "MT_PHOTOS_AI_EXTRA", "mt_photos_ai_extr"):
        refused = key_refusal(headers(api_key=given), "mt_photos_ai_extra")
        assert refused is not None and refused.status_code == 401
        assert json.loads(refused.body) == {"detail": "Invalid API key"}


def test_a_missing_header_is_422_in_fastapis_shape_naming_the_header():
    refused = key_refusal(headers(other="x"), "mt_photos_ai_extra")
    assert refused is not None and refused.status_code == 422
    [problem] = json.loads(refused.body)["detail"]
    assert problem["type"] == "missing" and problem["loc"] == ["header", "api-key"]
    assert "api-key" in problem["msg"]


def test_a_key_beyond_ascii_is_compared_as_the_bytes_the_client_sent():
    key = "密钥-ключ"
    assert key_refusal(headers(api_key=key.encode("utf-8")), key) is None
    assert key_refusal(headers(api_key="密钥".encode("utf-8")), key).status_code == 401
