"""MT Photos' answer formats, number by number (CONTRACTS.md §3)."""

from __future__ import annotations

import numpy as np

from adapters.mt_photos.answers import failure, ocr_result, represent_result, validation_error, vector_result


def test_ocr_boxes_are_the_quadrilaterals_bounds_as_the_reference_writes_numbers():
    quads = np.array([
        [[4, 7], [287, 7], [287, 28], [4, 28]],  # upright: x/y the top-left corner
        [[10.123, 50.5], [100.987, 40.25], [103.5, 60.0], [12.0, 70.456]],  # tilted: its bounds
    ], np.float32)
    answer = ocr_result(quads, ["收据", "Total ¥12.50"], np.array([0.98765, 0.5], np.float32))
    assert answer == {"result": {
        "texts": ["收据", "Total ¥12.50"],
        "scores": ["0.99", "0.50"],
        "boxes": [
            {"x": "4.0", "y": "7.0", "width": "283.0", "height": "21.0"},
            {"x": "10.12", "y": "40.25", "width": "93.38", "height": "30.21"},
        ],
    }}


def test_no_lines_is_three_empty_lists():
    empty = ocr_result(np.zeros((0, 4, 2), np.float32), [], np.zeros(0, np.float32))
    assert empty == {"result": {"texts": [], "scores": [], "boxes": []}}


def test_vectors_are_sixteen_decimal_strings_of_the_float32_values_unnormalised():
    features = np.array([0.3305919170379639, -0.4954293668270111, 2.0], np.float32)
    answer = vector_result(features)
    assert answer == {"result": [f"{float(v):.16f}" for v in features]}
    assert answer["result"][2] == "2.0000000000000000"  # as given: not made unit length
    assert all(len(value.split(".")[1]) == 16 for value in answer["result"])


def test_faces_have_normed_embeddings_and_truncated_int_areas():
    boxes = np.array([[10.7, 20.2, 50.6, 80.9, 0.91], [-3.5, 4.0, 30.2, 44.8, 0.7]], np.float32)
    embeddings = np.array([[3.0, 4.0], [0.0, -2.0]], np.float32)
    answer = represent_result("buffalo_l", boxes, embeddings)
    assert answer["detector_backend"] == "insightface" and answer["recognition_model"] == "buffalo_l"
    first, second = answer["result"]
    assert first["embedding"] == [0.6000000238418579, 0.800000011920929]  # float32 /norm, as insightface
    assert first["facial_area"] == {"x": 10, "y": 20, "w": 39, "h": 60}  # int(x2 - x1), not int(x2) - int(x1)
    assert second["facial_area"] == {"x": -3, "y": 4, "w": 33, "h": 40}  # int() truncates towards zero
    assert all(isinstance(v, int) for v in first["facial_area"].values())
    assert abs(first["face_confidence"] - 0.91) < 1e-6 and isinstance(first["face_confidence"], float)
    assert second["embedding"] == [0.0, -1.0]


def test_failures_and_validation_errors_have_the_references_shapes():
    assert failure("height or width out of range") == {"result": [], "msg": "height or width out of range"}
    assert validation_error("missing", ["header", "api-key"], "Field required") == {
        "detail": [{"type": "missing", "loc": ["header", "api-key"], "msg": "Field required", "input": None}]}
