"""Face pipeline speed: Immich's facial-recognition requests per second over HTTP, on
1440x1080 JPEG previews with three faces each, at several concurrencies; beside it, the same
files run by insightface's own FaceAnalysis in one process (the models' own speed here).

    .venv/bin/python -m bench.face [--requests 24] [--concurrency 1 4 16]

Needs the export extra (`make tools`): the models (bench/face_models.py: an IResNet-50
ArcFace and a detector of about 10 GFLOPs at 640, random weights) are built with torch,
imported into a temporary BENTOML_HOME through the real import command, and not committed.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageDraw

from bench.face_models import build_detector, build_recognizer
from tests.support import multipart
from tests.support.bento_server import BentoServer
from tests.support.ocr_cases import FIXTURES

ENTRIES = json.dumps({"facial-recognition": {"detection": {"modelName": "buffalo_l", "options": {"minScore": 0.7}},
                                             "recognition": {"modelName": "buffalo_l"}}})


def preview(seed: int) -> bytes:
    """A photo with three 60 px 'faces' (red squares) at places that vary with ``seed``."""
    image = Image.open(FIXTURES / "scene_1440x1080.jpg").convert("RGB")
    draw = ImageDraw.Draw(image)
    rng = np.random.default_rng(seed)
    for column in range(3):
        x, y = 240 + 480 * column + int(rng.integers(-100, 100)), int(rng.integers(200, 880))
        draw.rectangle([x - 30, y - 30, x + 29, y + 29], fill=(255, 0, 0))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


def rate(url: str, images: list[bytes], requests: int, concurrency: int) -> tuple[float, float, float]:
    """(requests/s, median latency, faces per request)."""
    bodies = [multipart.build({"entries": ENTRIES, "image": multipart.FilePart("blob", image)}) for image in images]
    with httpx.Client(timeout=600, limits=httpx.Limits(max_connections=concurrency)) as client:
        def one(n: int) -> tuple[float, int]:
            body, content_type = bodies[n % len(bodies)]
            started = time.perf_counter()
            response = client.post(f"{url}/predict", content=body, headers={"content-type": content_type})
            response.raise_for_status()
            return time.perf_counter() - started, len(response.json()["facial-recognition"])

        list(map(one, range(2)))
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(one, range(requests)))
    elapsed = time.perf_counter() - started
    return requests / elapsed, statistics.median(r[0] for r in results), statistics.mean(r[1] for r in results)


def insightface_alone(pack: Path, images: list[bytes], rounds: int) -> tuple[float, float]:
    """(images/s, faces per image) of FaceAnalysis on the same files, one image at a time."""
    from insightface.app import FaceAnalysis

    app = FaceAnalysis(name=str(pack), providers=["CPUExecutionProvider"])
    app.prepare(ctx_id=0, det_thresh=0.7, det_size=(640, 640))
    decoded = [np.ascontiguousarray(np.asarray(Image.open(io.BytesIO(i)).convert("RGB"))[:, :, ::-1]) for i in images]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        app.get(decoded[0])
        started = time.perf_counter()
        faces = [len(app.get(decoded[n % len(decoded)])) for n in range(rounds)]
    return rounds / (time.perf_counter() - started), statistics.mean(faces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        pack = Path(tmp) / "pack"
        pack.mkdir()
        _, det_macs = build_detector(pack / "det_10g.onnx")
        _, rec_macs = build_recognizer(pack / "w600k_r50.onnx")
        print(f"detector: {2 * det_macs / 1e9:.1f} GFLOPs at 640x640; recogniser: {2 * rec_macs / 1e9:.1f} GFLOPs a face")

        home = Path(tmp) / "home"
        os.environ["BENTOML_HOME"] = str(home)
        from runners.models.face_import import import_face

        print(f"imported as {import_face('buffalo_l', pack)}")
        images = [preview(seed) for seed in range(8)]
        per_s, faces = insightface_alone(pack, images, max(8, args.requests // 2))
        print(f"insightface FaceAnalysis alone, same files, one process: {per_s:.2f} images/s, {faces:.1f} faces each")

        server = BentoServer(".", home).start()
        try:
            for concurrency in args.concurrency:
                per_s, p50, faces = rate(server.url, images, max(args.requests, 2 * concurrency), concurrency)
                print(f"HTTP facial-recognition, 1440x1080 JPEG, concurrency {concurrency}: {per_s:.2f} requests/s, "
                      f"median {p50 * 1000:.0f} ms, {faces:.1f} faces each")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
