"""The committed OCR images and their ground truth (tests/fixtures/ocr/generate.py makes them)."""

from __future__ import annotations

import json
from pathlib import Path

from rapidfuzz.distance import Levenshtein

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ocr"
TRUTH = json.loads((FIXTURES / "truth.json").read_text(encoding="utf-8"))
BATCH = json.loads((FIXTURES / "batch" / "truth.json").read_text(encoding="utf-8"))


def squash(lines: list[str]) -> str:
    """All lines in order, without whitespace: the models drop or add spaces between scripts,
    and may read one printed line as two boxes; what counts is every character, in order."""
    return "".join("".join(lines).split())


def cer(found: list[str], truth: list[str]) -> float:
    """Character error rate of the found lines against the truth."""
    expected = squash(truth)
    return Levenshtein.distance(squash(found), expected) / max(1, len(expected))
