from __future__ import annotations

import numpy as np
from PIL import Image

from runners.pixels import flatten, to_bgr


def test_flatten_keeps_text_readable_in_every_mode():
    grey = np.full((40, 80), 250, np.uint8)
    grey[10:30, 10:70] = 10  # dark "text" on light ground
    cases = {
        "L": Image.fromarray(grey),
        "I;16": Image.fromarray(grey.astype(np.uint16) * 257),
        "F": Image.fromarray(grey.astype(np.float32) / 255),
        # black text on a transparent ground: alpha carries the text
        "RGBA": Image.fromarray(np.dstack([np.zeros((40, 80, 3), np.uint8), 255 - grey])),
        "P": Image.fromarray(grey).convert("P"),
    }
    for mode, image in cases.items():
        rgb = np.asarray(flatten(image))
        assert rgb.shape == (40, 80, 3), mode
        assert rgb[20, 40].max() < 60 and rgb[2, 2].min() > 200, mode  # dark text, light ground


def test_to_bgr_swaps_red_and_blue():
    bgr = to_bgr(Image.new("RGB", (3, 2), (10, 20, 30)))
    assert bgr.shape == (2, 3, 3) and bgr.flags["C_CONTIGUOUS"]
    assert bgr[0, 0].tolist() == [30, 20, 10]


def test_a_jpeg_decodes_as_opencv_decodes_it():
    # Immich's reference decodes with cv2.imdecode; the service with Pillow. For a preview JPEG
    # both give the same pixels, so faces found here are those the reference finds.
    import io

    import cv2

    colour = Image.merge("RGB", [Image.effect_noise((640, 480), sigma) for sigma in (20, 60, 100)])
    for subsampling in (2, 0):  # 4:2:0, as Immich writes previews, and 4:4:4
        out = io.BytesIO()
        colour.save(out, "JPEG", quality=80, subsampling=subsampling)
        data = out.getvalue()
        ours = to_bgr(flatten(Image.open(io.BytesIO(data))))
        assert np.array_equal(ours, cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)), subsampling
