from __future__ import annotations

import json

import numpy as np
import pytest

from adapters.errors import RequestError
from adapters.vectors import vector_string


@pytest.mark.parametrize(
    ("features", "normalize", "expected"),
    [([3.0, 4.0], True, [0.6, 0.8]), ([3.0, 4.0], False, [3.0, 4.0]),
     ([3e38, 3e38], True, [2**-0.5, 2**-0.5]), ([1e-30, 0.0], True, [1.0, 0.0])],
)
def test_vector_string_normalises_without_overflow(features, normalize, expected):
    assert np.allclose(json.loads(vector_string(np.array(features, np.float32), normalize, "CLIP")), expected)


def test_raw_vectors_keep_their_float32_values():
    features = np.array([0.1, -2.5, 1e-8], np.float32)
    text = vector_string(features, False, "face")
    assert " " not in text
    assert np.array_equal(np.array(json.loads(text), np.float32), features)


@pytest.mark.parametrize("features", [[0.0, 0.0], [float("nan"), 1.0], [float("inf"), 1.0]])
@pytest.mark.parametrize("normalize", [True, False])
def test_embedding_that_search_cannot_use_is_a_500(features, normalize):
    with pytest.raises(RequestError) as caught:
        vector_string(np.array(features, np.float32), normalize, "face")
    assert caught.value.status == 500 and "face model" in caught.value.detail
