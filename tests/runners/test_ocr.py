"""The OCR runner's input conversion: 8-bit BGR in, the detector's normalised tensor out."""

from __future__ import annotations

import numpy as np
from rapidocr.ch_ppocr_det.utils import DetPreProcess

from runners.ocr import detector_tensor


def test_detector_tensor_is_rapidocrs_normalisation_bit_for_bit():
    pixels = np.random.default_rng(0).integers(0, 256, (2, 64, 96, 3), dtype=np.uint8)
    reference = DetPreProcess(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])
    want = np.stack([reference.permute(reference.normalize(image)).astype(np.float32) for image in pixels])
    got = detector_tensor(pixels)
    assert got.dtype == np.float32 and got.shape == (2, 3, 64, 96) and got.flags["C_CONTIGUOUS"]
    assert np.array_equal(got, want)


def test_detector_tensor_spans_minus_one_to_one():
    assert detector_tensor(np.array([[[[0, 255, 0]]]], np.uint8)).reshape(-1).tolist() == [-1.0, 1.0, -1.0]
