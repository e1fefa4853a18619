"""The OCR models side by side on the OCR test images: character error rate and time per image.

    .venv/bin/python -m bench.ocr_models [--home H] [--rounds 3] [--env NAME=VALUE]

Serves the service as a user runs it (its defaults, or ``--env``) on a BENTOML_HOME (``--home``:
the models imported there are measured too, e.g. ``PP-OCRv6_tiny`` and ``_medium`` imported with
``python -m runners.models import ocr NAME``), sends every OCR test image
(tests/fixtures/ocr, 26 images of Chinese and English text) with Immich's default OCR request,
one at a time, and prints per model: the character error rate against the images' ground truth
(all lines, in order, whitespace left out, as the tests compare), how many images are read
exactly, and the median milliseconds per image over ``--rounds``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from runners.models.ocr import CATALOG
from tests.support import multipart
from tests.support.bento_server import BentoServer
from tests.support.ocr_cases import BATCH, FIXTURES, TRUTH, cer, squash


def images() -> list[tuple[bytes, list[str]]]:
    """(image, truth lines) of every OCR test image."""
    out = [((FIXTURES / name).read_bytes(), case["lines"]) for name, case in TRUTH.items()]
    out += [((FIXTURES / "batch" / f"{index:02d}.png").read_bytes(), lines) for index, lines in enumerate(BATCH)]
    return out


def read(url: str, model: str, data: bytes) -> tuple[list[str], float]:
    entries = json.dumps({"ocr": {"detection": {"modelName": model, "options": {"minScore": 0.5, "maxResolution": 736}},
                                  "recognition": {"modelName": model, "options": {"minScore": 0.9}}}})
    body, content_type = multipart.build({"entries": entries, "image": multipart.FilePart("blob", data)})
    started = time.perf_counter()
    response = httpx.post(f"{url}/predict", content=body, headers={"content-type": content_type}, timeout=120)
    took = time.perf_counter() - started
    response.raise_for_status()
    return response.json()["ocr"]["text"], took


def measure(url: str, model: str, rounds: int) -> dict:
    cases = images()
    read(url, model, cases[0][0])  # loads the model
    texts: list[list[str]] = []
    times: list[float] = []
    for round_ in range(rounds):
        for data, _ in cases:
            found, took = read(url, model, data)
            times.append(took)
            if round_ == 0:
                texts.append(found)
    errors = sum(cer(found, truth) * max(1, len(squash(truth))) for found, (_, truth) in zip(texts, cases))
    characters = sum(max(1, len(squash(truth))) for _, truth in cases)
    exact = sum(squash(found) == squash(truth) for found, (_, truth) in zip(texts, cases))
    return {"model": model, "images": len(cases), "cer": round(errors / characters, 4), "exact": exact,
            "ms_per_image": round(1000 * statistics.median(times), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=Path(tempfile.gettempdir()) / "immich-cn-ml-bench")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a setting for the service")
    args = parser.parse_args()
    args.home.mkdir(parents=True, exist_ok=True)
    server = BentoServer(".", args.home, dict(item.split("=", 1) for item in args.env), exact=False).start()
    try:
        served = [row["name"] for row in httpx.get(f"{server.url}/ui/api/status", timeout=30).json()["models"]
                  if row["task"] == "ocr" and row["type"] == "recognition" and row["present"]]
        order = list(CATALOG)
        served.sort(key=lambda name: (order.index(name) if name in order else len(order), name))
        results = [measure(server.url, name, args.rounds) for name in served]
    finally:
        server.stop()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
