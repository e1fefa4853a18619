"""OCR pre- and post-processing, as plain functions (they run in the entry service).

The detector's input size follows Immich (shorter side to ``maxResolution``, sides rounded to
multiples of 32); DB box extraction, line ordering, perspective crops and CTC decoding are
rapidocr's own code, called here, not rewritten. The detector input travels to the runner as
8-bit BGR, a quarter of its float size; the runner normalises it (``runners.ocr``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from rapidocr.ch_ppocr_det import TextDetector
from rapidocr.ch_ppocr_det.utils import DBPostProcess
from rapidocr.ch_ppocr_rec.utils import CTCLabelDecode
from rapidocr.utils.process_img import get_rotate_crop_image

MIN_SIDE = 32  # smaller images have no readable text (and the reference skips them too)
MAX_DETECTOR_SIDE = 4096  # keeps a long panorama from becoming a gigantic detector input
REC_HEIGHT = 48
REC_MIN_WIDTH = 320
REC_WIDTH_STEP = 160
REC_MAX_WIDTH = 3200


@dataclass
class Lines:
    """Detected text lines of one image: quadrilaterals in image pixels, top-to-bottom order."""

    image: np.ndarray  # the whole image, BGR uint8, for cropping
    boxes: np.ndarray  # (N, 4, 2) float32, clockwise from top-left
    scores: np.ndarray  # (N,) float32

    @classmethod
    def none(cls, image: np.ndarray) -> Lines:
        return cls(image, np.zeros((0, 4, 2), np.float32), np.zeros(0, np.float32))


def detector_input(bgr: np.ndarray, max_resolution: int) -> np.ndarray | None:
    """The DB detector's (H, W, 3) uint8 BGR input, before normalisation, from an 8-bit BGR
    image; None for an image too small to read.

    OpenCV resizes: area averaging when shrinking, bicubic when enlarging. Pillow's Lanczos
    (the Immich reference's) took 19 ms of a preview's 30 ms here, for the same text on every
    test image.
    """
    height, width = bgr.shape[:2]
    if width < MIN_SIDE or height < MIN_SIDE:
        return None
    ratio = max_resolution / min(width, height)
    ratio = min(ratio, MAX_DETECTOR_SIDE / max(width, height))
    size = (_round32(width * ratio), _round32(height * ratio))
    shrinking = size[0] * size[1] < width * height
    return cv2.resize(bgr, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def find_lines(probability: np.ndarray, image: np.ndarray, min_score: float) -> Lines:
    """DB post-processing of the detector's (H, W) map, boxes ordered as rapidocr orders them."""
    post = DBPostProcess(
        thresh=0.3, box_thresh=min_score, max_candidates=1000, unclip_ratio=1.6, use_dilation=True, score_mode="fast"
    )
    height, width = image.shape[:2]
    # A broken pass reads nothing. A finite sum proves every value finite (a NaN or an infinity
    # makes the sum one too), in a fifth of nan_to_num's time on a 992x736 map.
    if not np.isfinite(probability.sum()):
        probability = np.nan_to_num(probability, nan=0.0, posinf=1.0, neginf=0.0)
    boxes, scores = post(probability[None, None], (height, width))
    if len(boxes) == 0:
        return Lines.none(image)
    # rapidocr's sorted_boxes reorders whole rows but reads only point 0; a fifth "point"
    # carrying each box's index tells which score goes with which box afterwards.
    tagged = np.concatenate([boxes, np.stack([np.arange(len(boxes)), np.zeros(len(boxes))], 1)[:, None]], axis=1)
    ordered = TextDetector.sorted_boxes(tagged.astype(np.float64))
    order = ordered[:, 4, 0].astype(int)
    return Lines(image, ordered[:, :4].astype(np.float32), np.asarray(scores, np.float32)[order])


def line_crops(lines: Lines) -> list[np.ndarray]:
    """Each line cut out and straightened (tall crops turned upright) by rapidocr."""
    return [get_rotate_crop_image(lines.image, box.copy()) for box in lines.boxes]


def recogniser_input(crop: np.ndarray) -> np.ndarray:
    """(3, 48, W) float32: height 48 keeping the aspect ratio, normalised to [-1, 1], then
    zero-padded on the right to a width from a fixed ladder.

    rapidocr pads a batch to its widest line; a fixed ladder makes a line's input, and so its
    text, independent of which other requests' lines share its batch.
    """
    height, width = crop.shape[:2]
    if height == 0 or width == 0:  # nothing to read; decodes to an empty, zero-score line
        return np.zeros((3, REC_HEIGHT, REC_MIN_WIDTH), np.float32)
    resized_width = min(REC_MAX_WIDTH, max(1, math.ceil(REC_HEIGHT * width / max(height, 1))))
    padded_width = max(REC_MIN_WIDTH, math.ceil(resized_width / REC_WIDTH_STEP) * REC_WIDTH_STEP)
    resized = cv2.resize(crop, (resized_width, REC_HEIGHT)).astype(np.float32)
    out = np.zeros((3, REC_HEIGHT, padded_width), np.float32)
    out[:, :, :resized_width] = (resized.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
    return out


class Decoder:
    """CTC decoding with rapidocr's decoder, for one recogniser's alphabet."""

    def __init__(self, keys: list[str]) -> None:
        self._ctc = CTCLabelDecode(character=list(keys))  # it inserts blank and space in place

    @property
    def classes(self) -> int:
        return len(self._ctc.character)

    def __call__(self, indices: np.ndarray, probabilities: np.ndarray) -> tuple[str, float]:
        [(text, score)], _ = self._ctc.decode(indices[None], probabilities[None], remove_duplicate=True)
        return text, float(score)


def _round32(value: float) -> int:
    return max(32, int(round(int(value) / 32) * 32))
