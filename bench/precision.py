"""What the faster precisions change, on the benchmark's real-size models: the figures behind
bench/BENCHMARKS.md's "Precision" section.

    .venv/bin/python -m bench.precision [--home H] [--out precision.json]

Against the exact path (ONNX Runtime fp32, whole-image decoding), on the same inputs:
- CLIP ViT-B-16 image tower: OpenVINO bf16; JPEG decoding reduced in the DCT domain
  (``Image.draft``); both (what ``auto`` runs); ONNX Runtime int8 (per-channel, MatMuls): cosine
  to the exact embedding over 40 previews (the sample photos of scikit-image's wheel at
  1440x1080 with grain, quality 80), and each photo's 10 nearest neighbours in a gallery of 300;
- CLIP text tower: bf16 and int8 cosines over the benchmark's queries and the tests' texts;
- faces (SCRFD-signature detector, IResNet-50): bf16 boxes, scores and embeddings, through
  insightface's own SCRFD and ArcFace code;
- OCR (the real PP-OCRv5 mobile and PP-OCRv6 small weights): the text read on every OCR test
  image, at OpenVINO fp32 (what ``auto`` runs) and at bf16 (what it would run).
The models' weights are random (bench/models.py): real weights may drift more or less.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnxruntime as ort
from PIL import Image

from bench import models, workloads
from runners import int8, openvino
from runners.clip_steps import Tokenizer, image_input
from runners.models.ocr import resolve
from tests.support.gallery import gallery, neighbour_overlap, photos

Run = Callable[[np.ndarray], list[np.ndarray]]


def session(path: Path, how: str, scratch: Path) -> Any:
    if how in ("bf16", "ov-fp32"):
        return openvino.create_session(path, "bf16" if how == "bf16" else "fp32", 0, scratch)
    if how == "int8":
        path = int8.tower(path, scratch).path
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def runner(how: str, path: Path, scratch: Path) -> Run:
    made = session(path, how, scratch)
    name = made.get_inputs()[0].name
    return lambda batch: made.run(None, {name: batch})


def cosines(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    values = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return {"min": round(float(values.min()), 6), "mean": round(float(values.mean()), 6)}


def decoded(data: bytes, reduced: bool) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    if reduced:
        image.draft(None, (224, 224))
    image.load()
    return image


def clip(folder: Path, scratch: Path) -> dict[str, Any]:
    previews = [workloads.preview(photo.resize((1440, 1080), Image.Resampling.BICUBIC), seed)
                for seed, photo in enumerate(photos() * 2)]
    runs = {how: runner(how, folder / "visual.onnx", scratch) for how in ("fp32", "bf16", "int8")}

    def embed(how: str, reduced: bool, datas: list[bytes]) -> np.ndarray:
        return np.concatenate([runs[how](image_input(decoded(data, reduced), 224)[None])[0] for data in datas])

    exact = embed("fp32", False, previews)
    out: dict[str, Any] = {"image": {
        "reduced decoding": cosines(embed("fp32", True, previews), exact),
        "bf16": cosines(embed("bf16", False, previews), exact),
        "bf16 + reduced decoding (auto)": cosines(embed("bf16", True, previews), exact),
        "int8": cosines(embed("int8", False, previews), exact),
    }}
    shots = gallery(300)
    exact = embed("fp32", False, shots)
    for how, reduced in (("int8", False), ("bf16", True)):
        other = embed(how, reduced, shots)
        strict, tied = neighbour_overlap(exact, other), neighbour_overlap(exact, other, tie=1e-3)
        out[f"gallery of 300, {how}{' + reduced decoding' if reduced else ''}"] = {
            "cos": cosines(other, exact), "10-NN overlap min": float(strict.min()),
            "10-NN overlap mean": round(float(strict.mean()), 4), "with ties (1e-3) min": float(tied.min())}
    from tests.adapters.test_clip import TEXTS

    tokenizer = Tokenizer(folder / "vocab.txt")
    tokens = np.stack([tokenizer(text) for text in [*workloads.QUERIES, *TEXTS]])
    text = {how: runner(how, folder / "textual.onnx", scratch) for how in ("fp32", "bf16", "int8")}
    exact = np.concatenate([text["fp32"](row[None])[0] for row in tokens])
    out["text"] = {how: cosines(np.concatenate([text[how](row[None])[0] for row in tokens]), exact)
                   for how in ("bf16", "int8")}
    return out


def faces(folder: Path, scratch: Path) -> dict[str, Any]:
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX
    from insightface.model_zoo.scrfd import SCRFD

    from insightface.utils import face_align

    from tests.support.fake_faces import paint_peaked_faces

    def pipeline(how: str) -> tuple[Any, Any]:
        detector = SCRFD(model_file=None, session=session(folder / "detector.onnx", how, scratch))
        detector.prepare(0, input_size=(640, 640))
        return detector, ArcFaceONNX(model_file=str(folder / "recognizer.onnx"),
                                     session=session(folder / "recognizer.onnx", how, scratch))

    scene = Image.open(workloads.SCENE).convert("RGB")
    images = []
    for seed in range(8):  # faces whose red peaks mid-cell (see peaked_faces_image)
        rng = np.random.default_rng(seed)
        centres = [(18 * int(rng.integers(8, 72)) + 9, 18 * int(rng.integers(8, 52)) + 9) for _ in range(3)]
        pixels = np.asarray(scene).copy()
        paint_peaked_faces(pixels, centres, 60)
        images.append(np.ascontiguousarray(pixels[..., ::-1]))  # BGR, as insightface reads
    found = {}
    for how in ("fp32", "bf16"):
        detector, recogniser = pipeline(how)
        found[how] = []
        for image in images:
            boxes, landmarks = detector.detect(image, det_thresh=0.7)
            crops = [face_align.norm_crop(image, landmark=points, image_size=112) for points in landmarks]
            found[how].append((boxes, recogniser.get_feat(crops) if crops else np.zeros((0, 512))))
    same = all(len(a[0]) == len(b[0]) for a, b in zip(found["fp32"], found["bf16"]))
    out: dict[str, Any] = {"faces": sum(len(boxes) for boxes, _ in found["fp32"]), "same count": same}
    if same:
        exact_boxes = np.concatenate([boxes for boxes, _ in found["fp32"]])
        boxes = np.concatenate([boxes for boxes, _ in found["bf16"]])
        out["box max px"] = round(float(np.abs(boxes[:, :4] - exact_boxes[:, :4]).max()), 3)
        out["score max diff"] = round(float(np.abs(boxes[:, 4] - exact_boxes[:, 4]).max()), 5)
        out["embedding cos"] = cosines(np.concatenate([e for _, e in found["bf16"]]),
                                       np.concatenate([e for _, e in found["fp32"]]))
    return out


def ocr(scratch: Path) -> dict[str, Any]:
    from runners.ocr import detector_tensor
    from runners.ocr_steps import Decoder, detector_input, find_lines, line_crops, recogniser_input
    from runners.pixels import flatten, to_bgr
    from tests.support.ocr_cases import FIXTURES

    paths = sorted(FIXTURES.glob("*.png")) + sorted(FIXTURES.glob("*.jpg")) + sorted((FIXTURES / "batch").glob("*.png"))
    out = {}
    for name in ("PP-OCRv5_mobile", "PP-OCRv6_small"):
        files = resolve(name)
        decoder = Decoder(files.keys)
        texts: dict[str, list[list[str]]] = {}
        for how in ("fp32", "ov-fp32", "bf16"):
            det, rec = runner(how, files.det, scratch), runner(how, files.rec, scratch)
            texts[how] = []
            for path in paths:
                bgr = to_bgr(flatten(Image.open(path)))
                resized = detector_input(bgr, 736)
                lines = [] if resized is None else line_crops(find_lines(det(detector_tensor(resized[None]))[0][0, 0], bgr, 0.5))
                read = [decoder(*(lambda l: (l.argmax(1), l.max(1)))(rec(recogniser_input(c)[None])[0][0])) for c in lines]
                texts[how].append([t for t, score in read if score > 0.9])
        exact = texts["fp32"]
        out[name] = {how: {"images": len(paths),
                           "text differs": sum(a != b for a, b in zip(texts[how], exact)),
                           "differs ignoring spaces": sum("".join("".join(a).split()) != "".join("".join(b).split())
                                                          for a, b in zip(texts[how], exact))}
                     for how in ("ov-fp32", "bf16")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=Path(tempfile.gettempdir()) / "immich-cn-ml-bench")
    parser.add_argument("--out", type=Path, default=Path("precision.json"))
    args = parser.parse_args()
    models.prepare(args.home)
    [clip_folder] = {p.parent for p in args.home.glob("models/clip-*/*/visual.onnx")}
    [face_folder] = {p.parent for p in args.home.glob("models/face-*/*/detector.onnx")}
    with tempfile.TemporaryDirectory() as scratch:
        result = {"clip": clip(clip_folder, Path(scratch)), "faces": faces(face_folder, Path(scratch)),
                  "ocr": ocr(Path(scratch))}
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
