"""``/ui/api/status``, the status page's JSON, over real HTTP."""

from __future__ import annotations

import httpx

from tests.conftest import UPSTREAM_PASSWORD


def status(server) -> dict:
    response = httpx.get(f"{server.url}/ui/api/status", timeout=30)
    assert response.status_code == 200
    return response.json()


def test_an_upstream_that_answers_ping_is_shown_answering(proxy_server, upstream):
    found = status(proxy_server)
    assert found["upstream"] == {"url": upstream.url, "answers": True}
    assert [r.path for r in upstream.received] == ["/ping"]
    assert found["device"] == "cpu" and found["version"]


def test_a_dead_upstream_is_shown_silent_and_without_its_credentials(hardening_server):
    found = status(hardening_server)
    assert found["upstream"]["answers"] is False
    assert found["upstream"]["url"].startswith("http://***@127.0.0.1:") and UPSTREAM_PASSWORD not in str(found)


def test_models_are_listed_present_or_not_and_loaded_once_used(mt_server):
    def row(found: dict, task: str, type_: str, name: str) -> dict:
        return next(m for m in found["models"] if (m["task"], m["type"], m["name"]) == (task, type_, name))

    found = status(mt_server)
    absent = row(found, "facial-recognition", "detection", "antelopev2")
    assert absent["present"] is False and absent["source"] == "python -m runners.models import face antelopev2"
    ocr = row(found, "ocr", "recognition", "PP-OCRv5_mobile")
    assert ocr["present"] is True and ocr["source"].endswith("rec")
    assert found["mt_photos"]["routes"]["/represent"] == {"model": "buffalo_l", "served": True}
    text = httpx.post(f"{mt_server.url}/clip/txt", json={"text": "猫"}, headers={"api-key": "mt-test-key"}, timeout=60)
    assert text.status_code == 200
    loaded = row(status(mt_server), "clip", "textual", "cn-clip/ViT-B-16__openai")
    assert loaded["loaded"] is True and loaded["runs_on"] == "ONNX Runtime CPU fp32"  # the tests' exact setting


def test_the_runtime_says_the_cpu_the_settings_and_how_each_kind_of_model_runs(mt_server):
    runtime = status(mt_server)["runtime"]
    assert runtime["cpu"] and isinstance(runtime["cpu_features"], list)
    assert (runtime["backend"], runtime["precision"]) == ("auto", "fp32")
    assert runtime["plans"] == {"clip": "ONNX Runtime CPU fp32", "faces": "ONNX Runtime CPU fp32",
                                "ocr": "ONNX Runtime CPU fp32"}
