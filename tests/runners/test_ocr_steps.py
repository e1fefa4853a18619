from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from runners.ocr_steps import (
    REC_HEIGHT,
    Decoder,
    Lines,
    detector_input,
    find_lines,
    line_crops,
    recogniser_input,
)
from runners.pixels import to_bgr


def bgr(width: int, height: int, colour=(0, 0, 0)) -> np.ndarray:
    return to_bgr(Image.new("RGB", (width, height), colour))


def test_detector_input_scales_the_shorter_side_to_max_resolution_in_steps_of_32():
    pixels = detector_input(bgr(1440, 1080), 736)
    assert pixels.shape == (736, 992, 3) and pixels.dtype == np.uint8
    assert detector_input(bgr(100, 40), 736).shape == (736, 1824, 3)  # 1839 -> 57 x 32


def test_detector_input_keeps_bgr_order_and_flat_colours():
    pixels = detector_input(bgr(1440, 1080, (255, 0, 0)), 736)  # shrunk: area averaging
    assert pixels[10, 10].tolist() == [0, 0, 255]
    pixels = detector_input(bgr(40, 40, (0, 128, 0)), 64)  # enlarged: bicubic
    assert pixels[10, 10].tolist() == [0, 128, 0]


def test_images_under_32_px_have_no_detector_input():
    assert detector_input(bgr(31, 400), 736) is None
    assert detector_input(bgr(400, 31), 736) is None


def test_panoramas_are_capped():
    pixels = detector_input(bgr(12000, 400), 736)
    assert pixels.shape[1] <= 4096


def test_find_lines_orders_boxes_and_keeps_each_score_with_its_box():
    probability = np.zeros((200, 400), np.float32)
    probability[120:150, 20:300] = 0.95  # lower line
    probability[20:50, 200:380] = 0.75  # upper line, right
    probability[22:52, 20:150] = 0.85  # upper line, left (tops within 10 px: same row)
    image = np.zeros((200, 400, 3), np.uint8)
    lines = find_lines(probability, image, min_score=0.5)
    lefts = lines.boxes[:, 0, 0]
    tops = lines.boxes[:, 0, 1]
    assert len(lines.boxes) == 3
    assert tops[2] > tops[0] and tops[2] > tops[1] and lefts[0] < lefts[1]
    # Each score is the mean probability inside its (slightly grown) box: same ranking as drawn.
    assert list(np.argsort(lines.scores)) == [1, 0, 2]


def test_box_threshold_drops_weak_boxes():
    probability = np.zeros((100, 200), np.float32)
    probability[20:50, 20:180] = 0.6
    assert len(find_lines(probability, np.zeros((100, 200, 3), np.uint8), min_score=0.7).boxes) == 0


def test_tall_crops_are_turned_upright():
    image = to_bgr(Image.new("RGB", (100, 300), (255, 255, 255)))
    box = np.array([[10, 10], [40, 10], [40, 290], [10, 290]], np.float32)
    [crop] = line_crops(Lines(image, box[None], np.ones(1, np.float32)))
    assert crop.shape[0] < crop.shape[1]


def test_recogniser_input_pads_to_a_fixed_ladder_of_widths():
    # Crops twice the input height: resized to half their width, then padded up the ladder.
    for width, padded in [(40, 320), (480, 320), (700, 480), (1600, 800), (1700, 960), (100_000, 3200)]:
        crop = np.full((REC_HEIGHT * 2, width, 3), 255, np.uint8)
        tensor = recogniser_input(crop)
        assert tensor.shape == (3, REC_HEIGHT, padded), width
    tensor = recogniser_input(np.full((48, 100, 3), 255, np.uint8))
    assert tensor[:, :, :100].min() == 1.0 and tensor[:, :, 100:].max() == 0.0


def test_decoder_collapses_repeats_and_drops_blanks():
    decoder = Decoder(["甲", "乙", "丙"])  # classes: blank, 甲, 乙, 丙, space
    assert decoder.classes == 5
    indices = np.array([1, 1, 0, 1, 2, 2, 0, 4, 3])
    probabilities = np.array([0.9, 0.9, 0.5, 0.8, 0.7, 0.7, 0.5, 0.6, 1.0])
    text, score = decoder(indices, probabilities)
    assert text == "甲甲乙 丙"
    assert abs(score - np.mean([0.9, 0.8, 0.7, 0.6, 1.0])) < 1e-4


def test_nan_probabilities_find_nothing():
    probability = np.full((64, 64), np.nan, np.float32)
    lines = find_lines(probability, np.zeros((64, 64, 3), np.uint8), 0.5)
    assert len(lines.boxes) == 0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 3e38])
def test_a_map_with_broken_values_reads_as_if_they_were_cleaned(bad):
    # A NaN reads 0, +inf 1, -inf 0 (nan_to_num); a huge finite value (the float32 sum overflows)
    # stays as it is. Either way the same lines as from the cleaned map.
    probability = np.zeros((64, 128), np.float32)
    probability[20:40, 10:110] = 0.9
    probability[30, 60] = bad  # inside the line
    probability[5, 5] = bad  # outside it
    image = np.zeros((64, 128, 3), np.uint8)
    found = find_lines(probability, image, 0.5)
    cleaned = find_lines(np.nan_to_num(probability, nan=0.0, posinf=1.0, neginf=0.0), image, 0.5)
    assert len(found.boxes) >= 1
    np.testing.assert_array_equal(found.boxes, cleaned.boxes)
    np.testing.assert_array_equal(found.scores, cleaned.scores)


def test_empty_crop_becomes_a_blank_line():
    assert recogniser_input(np.zeros((0, 10, 3), np.uint8)).shape == (3, REC_HEIGHT, 320)
