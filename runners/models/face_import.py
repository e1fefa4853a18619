"""Import an InsightFace pack into the BentoML model store: downloaded, or from a folder or zip.

A pack holds several ONNX files (detector, recogniser, landmarks, gender and age). They are
told apart the way insightface itself does it, by ``model_zoo.get_model``, which routes a file
by its signature (an SCRFD detector has five or more outputs; an ArcFace recogniser takes a
square input of 112 px or more). The detector and the recogniser are checked, given an honest
batch axis (``runners.models.batch_axis``) and stored; serving never needs the pack again.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from runners.models import store
from runners.models.batch_axis import settle_batch_axis
from runners.models import sources
from runners.models.download import download
from runners.models.face import DETECTOR, EMBEDDING_DIM, FAMILY, PACKS, RECOGNIZER

log = logging.getLogger(__name__)

# The detector input a batch is probed with when the graph leaves its size free: the size
# Immich detects at.
PROBE_SIZE = 640


class ModelImportError(ValueError):
    """A pack that cannot be imported, with the reason for the user."""


def pack_url(name: str) -> str:
    """Where the pack is downloaded from: InsightFace's model-zoo release, where insightface
    itself downloads it (``IMMICH_CN_ML_INSIGHTFACE_BASE_URL`` for a mirror)."""
    return sources.face_pack(name).url


def import_face(name: str, source: Path | None) -> str:
    """Import pack ``name`` from ``source`` (a folder or zip), or download it; return the tag."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if source is None:
            if name not in PACKS:
                raise ModelImportError(
                    f"no download is known for face pack {name!r} (known: {', '.join(PACKS)}); use --from DIR_OR_ZIP"
                )
            remote = sources.face_pack(name)
            url = remote.url
            source = download(remote, work / f"{name}.zip")
            origin = {"source": "download", "url": url, "archive_sha256": _sha256(source)}
        else:
            origin = {"source": f"{'zip' if source.is_file() else 'folder'} {source.resolve()}"}
        files = _onnx_files(source, work / "unpacked")
        detector, recognizer = identify(files, root=source if source.is_dir() else work / "unpacked")
        return _store(name, detector, recognizer, origin, work)


def identify(files: list[Path], root: Path) -> tuple[tuple[Path, list[Any]], tuple[Path, list[Any]]]:
    """The pack's detector and recogniser, as insightface's model zoo routes them, each with
    its input shape as insightface read it. ``root`` only shortens the names in messages."""
    from insightface.model_zoo import get_model

    found: dict[str, list[tuple[Path, Any]]] = {}
    for path in files:
        try:
            model = get_model(str(path), providers=["CPUExecutionProvider"], static_shape_sessions=False)
        except Exception as exc:  # a file insightface cannot load is not one Immich uses either
            log.warning("skipping %s: insightface cannot load it (%s: %s)", path.name, type(exc).__name__, exc)
            continue
        task = getattr(model, "taskname", None) if model is not None else None
        log.info("%s: %s", path.name, task or "not a model insightface knows")
        if task is not None:
            found.setdefault(task, []).append((path, model))

    def named(paths: list[Path]) -> list[str]:
        return [str(path.relative_to(root)) if path.is_relative_to(root) else path.name for path in paths]

    detectors, recognizers = found.get("detection", []), found.get("recognition", [])
    if len(detectors) != 1 or len(recognizers) != 1:
        raise ModelImportError(
            f"a pack needs exactly one face detector and one recogniser; among {', '.join(named(files))} "
            f"insightface found {len(detectors)} detector(s) {named([p for p, _ in detectors])} and "
            f"{len(recognizers)} recogniser(s) {named([p for p, _ in recognizers])}"
        )
    (det_path, det), (rec_path, rec) = detectors[0], recognizers[0]
    if not getattr(det, "use_kps", False):
        raise ModelImportError(
            f"{det_path.name} finds faces without landmarks; recognition needs the five landmarks to align a face"
        )
    try:  # insightface's own decoding must make sense of the detector's outputs
        det.prepare(0, input_size=(PROBE_SIZE, PROBE_SIZE))
        det.detect(np.zeros((PROBE_SIZE, PROBE_SIZE, 3), np.uint8), det_thresh=0.5)
    except Exception as exc:
        raise ModelImportError(f"insightface cannot decode what {det_path.name} outputs: {type(exc).__name__}: {exc}") from exc
    return (det_path, list(det.input_shape)), (rec_path, list(rec.input_shape))


def _onnx_files(source: Path, unpacked: Path) -> list[Path]:
    """Every .onnx file of the pack. Zips are searched whole, since some (antelopev2) hold
    their files one folder down."""
    if source.is_dir():
        # ".onnx" as insightface's model_zoo wants it (it takes other names for pack names).
        files = _distinct(sorted(path for path in source.rglob("*.onnx") if path.is_file()))
    elif zipfile.is_zipfile(source):
        files = _extract_onnx(source, unpacked)
    elif source.exists():
        raise ModelImportError(f"{source} is neither a folder nor a zip file")
    else:
        raise ModelImportError(f"{source} does not exist; give the pack's folder or .zip")
    if not files:
        raise ModelImportError(f"{source} holds no .onnx files")
    return files


def _distinct(files: list[Path]) -> list[Path]:
    """Each file once: a pack folder 'fixed' by copying antelopev2's nested files up a level
    holds every model twice."""
    seen: dict[str, Path] = {}
    for path in sorted(files, key=lambda p: (len(p.parts), p)):  # the shallowest copy wins
        seen.setdefault(_sha256(path), path)
    return sorted(seen.values())


def _extract_onnx(archive: Path, dest: Path) -> list[Path]:
    dest.mkdir(parents=True)
    files = []
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            if member.is_dir() or not member.filename.endswith(".onnx"):
                continue
            # The member's own name only: a path in a zip must not write outside dest.
            target = dest / Path(member.filename).name
            if target.exists():
                raise ModelImportError(f"{archive} holds two files named {target.name}; it is not one pack")
            with zf.open(member) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out)
            files.append(target)
    return sorted(files)


def _store(name: str, detector: tuple[Path, list[Any]], recognizer: tuple[Path, list[Any]],
           origin: dict[str, str], work: Path) -> str:
    (det_path, det_input), (rec_path, rec_input) = detector, recognizer
    height, width = (side if isinstance(side, int) and side > 0 else PROBE_SIZE for side in det_input[2:4])

    def sample(shape: tuple[int, ...]):
        return lambda seed: np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)

    det_out, rec_out = work / DETECTOR, work / RECOGNIZER
    det_batches = settle_batch_axis(det_path, det_out, sample((3, height, width)))
    face = sample((3, rec_input[2], rec_input[3]))
    rec_batches = settle_batch_axis(rec_path, rec_out, face)
    det_session = ort.InferenceSession(str(det_out), providers=["CPUExecutionProvider"])
    rec_session = ort.InferenceSession(str(rec_out), providers=["CPUExecutionProvider"])
    shapes = [output.shape for output in rec_session.run(None, {rec_session.get_inputs()[0].name: face(0)[None]})]
    if shapes != [(1, EMBEDDING_DIM)]:  # what the graph does, not what it declares
        raise ModelImportError(
            f"{rec_path.name} gives {shapes} for one face; Immich stores {EMBEDDING_DIM} floats a face"
        )
    log.info("%s: detector takes %s, recogniser takes %s", name,
             "batches" if det_batches else "one image at a time", "batches" if rec_batches else "one face at a time")
    metadata = {
        "name": name,
        **origin,
        "detector_file": det_path.name,
        "recognizer_file": rec_path.name,
        # The pack's files, and the stored ones (which differ where the batch axis was freed).
        "detector_source_sha256": _sha256(det_path),
        "recognizer_source_sha256": _sha256(rec_path),
        "detector_sha256": _sha256(det_out),
        "recognizer_sha256": _sha256(rec_out),
        "detector_batches": det_batches,
        "recognizer_batches": rec_batches,
        "detector_io": _io(det_session),
        "recognizer_io": _io(rec_session),
    }
    return store.save(FAMILY, name, {DETECTOR: det_out, RECOGNIZER: rec_out}, metadata)


def _io(session: ort.InferenceSession) -> dict[str, list[list[Any]]]:
    """Inputs and outputs as ONNX Runtime reports them: what insightface reads off a session."""
    return {
        "inputs": [[value.name, list(value.shape), value.type] for value in session.get_inputs()],
        "outputs": [[value.name, list(value.shape), value.type] for value in session.get_outputs()],
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
