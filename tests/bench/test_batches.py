"""bench.batches: batches of each size from BentoML's cumulative histogram."""

from __future__ import annotations

from bench.batches import per_bucket


def test_batches_of_each_size_between_two_readings():
    before = {"1.0": 4, "2.0": 4, "4.0": 4, "+Inf": 4}
    after = {"1.0": 6, "2.0": 9, "4.0": 9, "+Inf": 12}
    assert per_bucket(before, after) == {"<=1.0": 2, "<=2.0": 3, "<=+Inf": 3}
