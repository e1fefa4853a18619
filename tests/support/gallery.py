"""A gallery of real photographs for nearest-neighbour tests: crops of the sample photos that
ship in scikit-image's wheel (an astronaut, a cat, coffee, a rocket, coins ...), offline.

Crops of one photo are each other's natural neighbours, as a library's bursts and near
duplicates are; neighbours across photos are what a search ranks next.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

#: skimage.data's photographs that ship in the wheel (others download on first use).
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
          "colorwheel", "logo", "stereo_motorcycle", "coins", "camera", "page", "text", "brick", "grass",
          "gravel", "horse", "moon", "clock")


def photos() -> list[Image.Image]:
    import skimage.data

    out = []
    for name in PHOTOS:
        pixels = getattr(skimage.data, name)()
        if isinstance(pixels, tuple):  # stereo pairs: the left image
            pixels = pixels[0]
        image = Image.fromarray(np.asarray(pixels))
        out.append(image.convert("RGB"))
    return out


def gallery(count: int = 300, side: int = 320, seed: int = 0) -> list[bytes]:
    """``count`` JPEGs: random crops (half to all of each side), some mirrored, of the photos in
    turn, scaled to ``side`` pixels on the longer side."""
    rng = np.random.default_rng(seed)
    sources = photos()
    out = []
    for index in range(count):
        photo = sources[index % len(sources)]
        width, height = photo.size
        w, h = int(width * rng.uniform(0.5, 1.0)), int(height * rng.uniform(0.5, 1.0))
        x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        crop = photo.crop((x, y, x + w, y + h))
        if rng.random() < 0.3:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        scale = side / max(crop.size)
        crop = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))),
                           Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        crop.save(buffer, "JPEG", quality=85)
        out.append(buffer.getvalue())
    return out


def neighbour_overlap(exact: np.ndarray, other: np.ndarray, k: int = 10, tie: float = 0.0) -> np.ndarray:
    """For each row, the share of its ``k`` nearest neighbours under ``other`` (by cosine, itself
    left out) that are among its ``k`` nearest under ``exact``; with ``tie``, a neighbour whose
    exact cosine is within ``tie`` of the exact ``k``-th's counts as among them (neighbours the
    exact embeddings themselves barely tell apart)."""
    def similarities(vectors: np.ndarray) -> np.ndarray:
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        similarity = unit @ unit.T
        np.fill_diagonal(similarity, -np.inf)
        return similarity

    truth, found = similarities(exact), similarities(other)
    kth = -np.sort(-truth, axis=1)[:, k - 1]
    nearest = np.argsort(-found, axis=1)[:, :k]
    kept = np.take_along_axis(truth, nearest, axis=1) >= (kth - tie)[:, None]
    return kept.mean(axis=1)
