"""OCR speed: requests per second over HTTP, time per stage, and rapidocr's own pipeline.

All on the same 1440x1080 preview-sized JPEG (tests/fixtures/ocr/scene_1440x1080.jpg) and the
same PP-OCRv5 mobile ONNX files. Run from the project root:

    .venv/bin/python -m bench.ocr [--requests 40] [--concurrency 1 4]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from adapters.images import ImageLimits, decode_image
from config.settings import Settings
from runners.batching import run_grouped
from runners.models.ocr import resolve
from runners.ocr_steps import Decoder, detector_input, find_lines, line_crops, recogniser_input
from runners.pixels import to_bgr
from runners.onnx import create_session
from tests.support import multipart
from tests.support.bento_server import BentoServer
from tests.support.ocr_cases import FIXTURES

IMAGE = FIXTURES / "scene_1440x1080.jpg"
ENTRIES = (
    '{"ocr":{"detection":{"modelName":"PP-OCRv5_mobile","options":{"minScore":0.5,"maxResolution":736}},'
    '"recognition":{"modelName":"PP-OCRv5_mobile","options":{"minScore":0.8}}}}'
)


def http_rate(url: str, body: bytes, content_type: str, requests: int, concurrency: int) -> tuple[float, float]:
    def one(_: int) -> float:
        started = time.perf_counter()
        response = client.post(f"{url}/predict", content=body, headers={"content-type": content_type})
        response.raise_for_status()
        assert response.json()["ocr"]["text"], "no text read"
        return time.perf_counter() - started

    with httpx.Client(timeout=300, limits=httpx.Limits(max_connections=concurrency)) as client:
        for i in range(3):
            one(i)
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            latencies = list(pool.map(one, range(requests)))
    return requests / (time.perf_counter() - started), statistics.median(latencies)


def stages(rounds: int) -> dict[str, float]:
    """Median milliseconds of each stage, in one process, with the service's own functions."""
    settings = Settings()
    files = resolve("PP-OCRv5_mobile")
    det, rec, decoder = create_session(files.det, settings), create_session(files.rec, settings), Decoder(files.keys)
    data = IMAGE.read_bytes()
    limits = ImageLimits(max_pixels=10**9, max_side=10**5)
    times: dict[str, list[float]] = {"decode": [], "detect": [], "recognise": []}
    for _ in range(rounds):
        t0 = time.perf_counter()
        image = decode_image(data, limits)
        t1 = time.perf_counter()
        bgr, tensor = to_bgr(image), detector_input(image, 736)
        probability = det.run(None, {"x": tensor[None]})[0][0, 0]
        lines = find_lines(probability, bgr, 0.5)
        t2 = time.perf_counter()
        jobs = [("m", recogniser_input(crop)) for crop in line_crops(lines)]
        outputs = run_grouped(jobs, lambda _, batch: rec.run(None, {"x": batch})[0])
        texts = [decoder(o.argmax(axis=1), o.max(axis=1))[0] for o in outputs]
        t3 = time.perf_counter()
        assert texts
        for name, start, end in (("decode", t0, t1), ("detect", t1, t2), ("recognise", t2, t3)):
            times[name].append((end - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def rapidocr_rate(rounds: int, **det) -> tuple[float, int]:
    """rapidocr's own one-call pipeline on the same files (no angle classifier, as here)."""
    from rapidocr import RapidOCR

    files = resolve("PP-OCRv5_mobile")
    params = {
        "Det.model_path": str(files.det), "Rec.model_path": str(files.rec),
        "Rec.rec_keys_path": str(files.keys_file), "Global.use_cls": False, "Global.log_level": "error",
        **det,
    }
    engine = RapidOCR(params=params)
    image = np.asarray(decode_image(IMAGE.read_bytes(), ImageLimits(10**9, 10**5)).convert("RGB"))[:, :, ::-1]
    result = engine(image)
    started = time.perf_counter()
    for _ in range(rounds):
        engine(image)
    return rounds / (time.perf_counter() - started), len(result.txts or ())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    print(f"image: {IMAGE.name}, Immich's default OCR request, PP-OCRv5 mobile")
    ms = stages(args.rounds)
    print("stages, one process, median ms: " + ", ".join(f"{k} {v:.1f}" for k, v in ms.items()))

    for label, det in (("defaults (detects at 1440x1088)", {}),
                       ("detecting at 992x736 like us", {"Det.limit_side_len": 992, "Det.limit_type": "max"})):
        rate, lines = rapidocr_rate(args.rounds, **det)
        print(f"rapidocr one-call pipeline, {label}: {rate:.2f} images/s ({lines} lines)")

    body, content_type = multipart.build({"entries": ENTRIES, "image": multipart.FilePart("blob", IMAGE.read_bytes())})
    with tempfile.TemporaryDirectory() as home:
        server = BentoServer(".", Path(home)).start()
        try:
            for concurrency in args.concurrency:
                rate, p50 = http_rate(server.url, body, content_type, args.requests, concurrency)
                print(f"HTTP /predict, concurrency {concurrency}: {rate:.2f} requests/s, median {p50 * 1000:.0f} ms")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
