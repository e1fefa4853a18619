"""A face pack for tests: an SCRFD-shaped detector and an ArcFace-shaped recogniser.

Real packs cannot be downloaded here, so both are built with ``onnx.helper``, with the
signatures insightface's ``model_zoo`` routes by: the detector takes ``[1, 3, H, W]`` and gives
SCRFD's nine outputs (scores, boxes, keypoints for strides 8/16/32, two anchors per cell), the
recogniser takes ``[N, 3, 112, 112]`` and gives ``[N, 512]``.

The detector "sees" a face wherever a stride cell of the letterboxed image is mostly pure red,
so a test places faces by drawing red squares. Its box is a constant size around the anchor
(the cell's top-left corner), and its keypoints are the ArcFace template scaled into that box,
so alignment has a real similarity transform to estimate. The recogniser is a small random
conv net: different crops give different embeddings, which is what batching tests need.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto
from onnx import helper as h
from onnx import numpy_helper as nh
from PIL import Image, ImageDraw

# insightface's utils.face_align.arcface_dst: where the 5 landmarks sit in a 112x112 crop.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    np.float32,
)
RED = (255, 0, 0)


def score_of(colour: tuple[int, int, int]) -> float:
    """The score the fake detector gives a cell wholly of ``colour`` (see ``build_detector``)."""
    r, g, b = ((np.array(colour, np.float64) - 127.5) / 128.0).tolist()
    return float(1.0 / (1.0 + np.exp(-10.0 * ((r - (g + b) / 2) - 1.5))))


def random_blob(shape: tuple[int, ...]):
    """``seed -> array``: a model input of ``shape`` with values in [-1, 1], as blobs have."""
    return lambda seed: np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def _save(nodes, name, inputs, outputs, initializers, path: Path) -> Path:
    model = h.make_model(h.make_graph(nodes, name, inputs, outputs, initializers),
                         opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8  # what onnxruntime 1.2x reads
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def build_detector(path: Path, *, half_box: float = 80.0, batched: bool = False,
                   fixed_batch_reshape: bool = False, keypoints: bool = True, anchors: int = 2) -> Path:
    """SCRFD's signature: ``input.1 [1,3,H,W]`` -> score_8/16/32, bbox_8/16/32, kps_8/16/32.

    score = sigmoid(10 * (avgpool_s(R - (G+B)/2) - 1.5)) on the blob ((px - 127.5)/128, RGB):
    pure red gives 1.99, grey 0, so a cell fires (>= 0.5) when about 75% of it is red.
    ``batched``: rank-3 outputs ``[1, n, C]`` instead of stock det_10g's rank-2 ``[n, C]``.
    ``fixed_batch_reshape``: the outputs' reshape names batch 1 outright, as some exports do,
    so the graph cannot take a batch of images.
    ``keypoints=False``: six outputs, no landmarks (an SCRFD insightface loads but nothing can align).
    ``anchors=1``: one row a cell, where insightface's decoding expects two.
    """
    nodes = [h.make_node("Conv", ["input.1", "redness_w"], ["red"])]
    inits = [nh.from_array(np.array([1, -0.5, -0.5], np.float32).reshape(1, 3, 1, 1), "redness_w"),
             nh.from_array(np.array(10.0, np.float32), "k"), nh.from_array(np.array(1.5, np.float32), "t"),
             nh.from_array(np.zeros((1, 1, 1, 1), np.float32), "zero")]
    kps = ((ARCFACE_TEMPLATE - 56.0) * (2 * half_box / 112.0) * 0.8).reshape(-1)
    outputs: dict[str, list] = {}
    for stride in (8, 16, 32):
        p = f"s{stride}_"
        nodes += [h.make_node("AveragePool", ["red"], [p + "pool"], kernel_shape=[stride] * 2, strides=[stride] * 2),
                  h.make_node("Sub", [p + "pool", "t"], [p + "d"]),
                  h.make_node("Mul", [p + "d", "k"], [p + "kd"]),
                  h.make_node("Sigmoid", [p + "kd"], [p + "score_map"]),
                  h.make_node("Mul", [p + "pool", "zero"], [p + "zeros"])]
        kinds = [("score", 1, None), ("bbox", 4, np.full(4, half_box / stride)), ("kps", 10, kps / stride)]
        for kind, width, const in kinds[: 3 if keypoints else 2]:
            if const is not None:  # constant distances in stride units, broadcast over the map
                inits.append(nh.from_array(const.astype(np.float32).reshape(1, width, 1, 1), p + kind + "_c"))
                nodes.append(h.make_node("Add", [p + "zeros", p + kind + "_c"], [p + kind + "_map"]))
            shape = [1, -1, width] if batched and fixed_batch_reshape else [0, -1, width] if batched else [-1, width]
            inits.append(nh.from_array(np.array(shape, np.int64), p + kind + "_shape"))
            nodes += [h.make_node("Transpose", [p + kind + "_map"], [p + kind + "_t"], perm=[0, 2, 3, 1]),
                      h.make_node("Concat", [p + kind + "_t"] * anchors, [p + kind + "_2"], axis=3),  # anchors
                      h.make_node("Reshape", [p + kind + "_2", p + kind + "_shape"], [f"{kind}_{stride}"])]
            dims = [1, f"n{stride}", width] if batched else [f"n{stride}", width]
            outputs.setdefault(kind, []).append(h.make_tensor_value_info(f"{kind}_{stride}", TensorProto.FLOAT, dims))
    image = h.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "height", "width"])
    return _save(nodes, "fake_scrfd", [image], outputs["score"] + outputs["bbox"] + outputs.get("kps", []), inits, path)


def build_recognizer(path: Path, *, dim: int = 512, seed: int = 0, flat: bool = False) -> Path:
    """ArcFace's signature: ``input.1 [N,3,112,112]`` -> ``fc1 [N,dim]``.

    Its nodes are unnamed, so ArcFaceONNX's name sniffing keeps mean = std = 127.5.
    ``flat``: the output is flattened to ``[N*dim]``, a graph whose declared size says nothing.
    """
    rng = np.random.default_rng(seed)
    inits = [nh.from_array((rng.standard_normal((16, 3, 8, 8)) * 0.1).astype(np.float32), "cw"),
             nh.from_array((rng.standard_normal(16) * 0.1).astype(np.float32), "cb"),
             nh.from_array(rng.standard_normal((dim, 16)).astype(np.float32), "fw"),
             nh.from_array((rng.standard_normal(dim) * 0.1).astype(np.float32), "fb")]
    nodes = [h.make_node("Conv", ["input.1", "cw", "cb"], ["c"], kernel_shape=[8, 8], strides=[8, 8]),
             h.make_node("Relu", ["c"], ["r"]), h.make_node("GlobalAveragePool", ["r"], ["g"]),
             h.make_node("Flatten", ["g"], ["f"], axis=1),
             h.make_node("Gemm", ["f", "fw", "fb"], ["fc1" if not flat else "g2"], transB=1)]
    if flat:
        inits.append(nh.from_array(np.array([-1], np.int64), "flat"))
        nodes.append(h.make_node("Reshape", ["g2", "flat"], ["fc1"]))
    image = h.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, 112, 112])
    features = h.make_tensor_value_info("fc1", TensorProto.FLOAT, ["rows"] if flat else ["N", dim])
    return _save(nodes, "fake_arcface", [image], [features], inits, path)


def build_head(path: Path, side: int, width: int) -> Path:
    """``[1, 3, side, side]`` -> ``[1, width]``: with side 192 and width 212 insightface takes it
    for a 106-point landmark model, with side 96 and width 3 for gender and age."""
    inits = [nh.from_array(np.ones((width, 3), np.float32), "w")]
    nodes = [h.make_node("GlobalAveragePool", ["data"], ["g"]), h.make_node("Flatten", ["g"], ["f"], axis=1),
             h.make_node("Gemm", ["f", "w"], ["out"], transB=1)]
    image = h.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, side, side])
    out = h.make_tensor_value_info("out", TensorProto.FLOAT, [1, width])
    return _save(nodes, "fake_head", [image], [out], inits, path)


def build_pack(folder: Path, *, others: bool = False, **detector_options) -> Path:
    """A pack folder named as buffalo_l's files are; ``others`` adds its landmark and
    gender-age models, which Immich does not use."""
    folder.mkdir(parents=True, exist_ok=True)
    build_detector(folder / "det_10g.onnx", **detector_options)
    build_recognizer(folder / "w600k_r50.onnx")
    if others:
        build_head(folder / "2d106det.onnx", 192, 212)
        build_head(folder / "genderage.onnx", 96, 3)
    return folder


def faces_image(width: int, height: int, centres: list[tuple[int, int]], side: int,
                background: tuple[int, int, int] = (90, 110, 100), seed: int | None = None,
                colours: list[tuple[int, int, int]] | None = None) -> Image.Image:
    """An RGB image with a red square of ``side`` pixels at each centre. With ``seed``, the
    background gets faint noise (no red), so no two images are alike. ``colours`` gives each
    square its own red; a paler red scores lower (see ``score_of``)."""
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[:] = background
    if seed is not None:
        noise = np.random.default_rng(seed).integers(0, 40, (height, width, 1), dtype=np.uint8)
        pixels[:] = np.minimum(pixels.astype(np.int16) + noise, 255).astype(np.uint8)
        pixels[:, :, 0] = np.minimum(pixels[:, :, 0], pixels[:, :, 1])  # never reddish
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for (x, y), colour in zip(centres, colours or [RED] * len(centres)):
        draw.rectangle([x - side // 2, y - side // 2, x - side // 2 + side - 1, y - side // 2 + side - 1], fill=colour)
    return image


def grid_centres(width: int, height: int, columns: int, rows: int, margin: int) -> list[tuple[int, int]]:
    """Centres spread evenly over the image, ``margin`` pixels from its edges."""
    xs = np.linspace(margin, width - margin, columns).round().astype(int)
    ys = np.linspace(margin, height - margin, rows).round().astype(int)
    return [(int(x), int(y)) for y in ys for x in xs]


def peaked_faces_image(width: int, height: int, centres: list[tuple[int, int]], side: int,
                       seed: int | None = None) -> Image.Image:
    """Like ``faces_image``, but each square's red fades from pure at its centre towards its
    edges (still red enough to fire), so one detector cell scores highest, as a real detector's
    scores peak on a face. ``faces_image``'s evenly red cells score exactly alike, and which of
    them wins is then decided by rounding: fine for the exact path, not for comparing two
    precisions. Centres at 18k + 9 px of a 1440-wide image fall mid-cell in the 640 letterbox."""
    pixels = np.asarray(faces_image(width, height, [], side, seed=seed)).copy()
    paint_peaked_faces(pixels, centres, side)
    return Image.fromarray(pixels)


def paint_peaked_faces(pixels: np.ndarray, centres: list[tuple[int, int]], side: int) -> None:
    """Paint ``peaked_faces_image``'s squares onto an (H, W, 3) RGB array, in place."""
    height, width = pixels.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width]
    for x, y in centres:
        inside = (np.abs(xs - x) < side / 2) & (np.abs(ys - y) < side / 2)
        fade = (np.hypot(xs - x, ys - y) / (side / 2) * 40).clip(0, 60).astype(np.uint8)
        pixels[inside] = np.stack([np.full_like(fade, 255), fade, fade], axis=-1)[inside]
