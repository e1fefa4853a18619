"""Chinese-CLIP speed, on the real ViT-B-16 architecture with random weights (speed does not
depend on their values): images per second over HTTP with 1440x1080 JPEG previews at several
concurrencies, the bare ONNX image tower batched, and text queries per second.

    .venv/bin/python -m bench.clip [--requests 24] [--concurrency 1 4 16]

Needs the export extra (`make tools`). The model is built, exported and imported into a
temporary BENTOML_HOME through the real import code; nothing is downloaded or committed.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort

from tests.support import multipart
from tests.support.bento_server import BentoServer
from tests.support.ocr_cases import FIXTURES

PREVIEW = (FIXTURES / "scene_1440x1080.jpg").read_bytes()
MODEL = "cn-clip/ViT-B-16__openai"


def build_vit_b_16(folder: Path) -> Path:
    import torch
    from cn_clip.clip.model import CLIP, convert_weights
    from cn_clip.clip.utils import _MODEL_INFO

    configs = Path(__import__("cn_clip.clip", fromlist=["x"]).__file__).parent / "model_configs"
    vision, text = _MODEL_INFO["ViT-B-16"]["struct"].split("@")
    info = {**json.loads((configs / f"{vision}.json").read_text()), **json.loads((configs / f"{text}.json").read_text())}
    model = CLIP(**info)
    convert_weights(model)
    checkpoint = folder / "vit-b-16-random.pt"
    torch.save({"state_dict": model.state_dict()}, checkpoint)
    return checkpoint


def rate(url: str, fields: dict, requests: int, concurrency: int) -> tuple[float, float]:
    body, content_type = multipart.build(fields)
    with httpx.Client(timeout=600, limits=httpx.Limits(max_connections=concurrency)) as client:
        def one(_: int) -> float:
            started = time.perf_counter()
            client.post(f"{url}/predict", content=body, headers={"content-type": content_type}).raise_for_status()
            return time.perf_counter() - started

        list(map(one, range(2)))
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            latencies = sorted(pool.map(one, range(requests)))
    return requests / (time.perf_counter() - started), latencies[len(latencies) // 2]


def bare_onnx(path: Path, batch: int, rounds: int) -> float:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = np.random.randn(batch, 3, 224, 224).astype(np.float32)
    session.run(None, {"pixel_values": images})
    started = time.perf_counter()
    for _ in range(rounds):
        session.run(None, {"pixel_values": images})
    return batch * rounds / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        os.environ["BENTOML_HOME"] = str(home)
        from runners.models.clip_export import import_clip

        started = time.perf_counter()
        tag = import_clip("ViT-B-16", build_vit_b_16(Path(tmp)))
        print(f"imported random ViT-B-16 as {tag} in {time.perf_counter() - started:.0f} s")
        folder = next((home / "models" / tag.split(":")[0]).glob("*/"))
        for batch in (1, 8):
            print(f"bare ONNX image tower, fp32, batch {batch}: {bare_onnx(folder / 'visual.onnx', batch, max(2, 16 // batch)):.2f} images/s")

        server = BentoServer(".", home).start()
        try:
            visual = {"entries": json.dumps({"clip": {"visual": {"modelName": MODEL}}}),
                      "image": multipart.FilePart("blob", PREVIEW)}
            for concurrency in args.concurrency:
                images_per_s, p50 = rate(server.url, visual, max(args.requests, 2 * concurrency), concurrency)
                print(f"HTTP clip visual, 1440x1080 JPEG, concurrency {concurrency}: {images_per_s:.2f} images/s, median {p50 * 1000:.0f} ms")
            textual = {"entries": json.dumps({"clip": {"textual": {"modelName": MODEL, "options": {"language": "zh-CN"}}}}),
                       "text": "海边的日落"}
            for concurrency in (1, 4):
                queries, p50 = rate(server.url, textual, 4 * args.requests, concurrency)
                print(f"HTTP clip textual, concurrency {concurrency}: {queries:.1f} queries/s, median {p50 * 1000:.0f} ms")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
