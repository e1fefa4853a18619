"""Uploaded images as the models read them: 8-bit RGB, or BGR for models trained on OpenCV's order."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image


def flatten(image: Image.Image) -> Image.Image:
    """The image as 8-bit RGB the way a reader sees it.

    ``convert("RGB")`` alone would clip 16-bit and float greys to white, and drop alpha so that
    black text on a transparent background turns black on black: those are scaled to 8 bits,
    and transparency is laid on white.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        pixels = np.asarray(image, np.float64)
        span = pixels.max() - pixels.min()
        scaled = (pixels - pixels.min()) * (255.0 / span) if span > 0 else np.zeros_like(pixels)
        return Image.fromarray(scaled.astype(np.uint8)).convert("RGB")
    if image.mode == "RGB":
        return image  # already what the models read (images are never changed in place)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def to_bgr(rgb: Image.Image) -> np.ndarray:
    """PaddleOCR and InsightFace models read BGR (OpenCV's order). OpenCV's own swap: a third of
    the time of a numpy reversal and copy on a 1440x1080 preview."""
    return cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2BGR)
