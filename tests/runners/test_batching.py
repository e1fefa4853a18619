from __future__ import annotations

import numpy as np

from runners.batching import Failure, run_grouped


def test_results_come_back_in_job_order_with_one_pass_per_model_and_shape():
    passes = []

    def forward(model, batch):
        passes.append((model, batch.shape))
        return batch.sum(axis=(1, 2)) + (1000 if model == "b" else 0)

    jobs = [
        ("a", np.full((2, 3), 1.0)),
        ("a", np.full((2, 4), 2.0)),
        ("b", np.full((2, 3), 3.0)),
        ("a", np.full((2, 3), 4.0)),
    ]
    assert run_grouped(jobs, forward) == [6.0, 16.0, 1018.0, 24.0]
    assert sorted(passes) == [("a", (1, 2, 4)), ("a", (2, 2, 3)), ("b", (1, 2, 3))]


def test_a_failing_pass_fails_only_its_own_jobs():
    def forward(model, batch):
        if model == "broken":
            raise RuntimeError("no such file")
        return batch * 2

    results = run_grouped([("ok", np.ones(2)), ("broken", np.ones(2)), ("ok", np.zeros(2))], forward)
    assert results[0].tolist() == [2, 2] and results[2].tolist() == [0, 0]
    assert results[1] == Failure("RuntimeError: no such file")


def test_a_forward_that_loses_items_fails_its_jobs():
    results = run_grouped([("a", np.zeros(2)), ("a", np.zeros(2))], lambda model, batch: batch[:1])
    assert all(isinstance(r, Failure) and "2 inputs gave 1 outputs" in r.message for r in results)


def test_a_pass_limit_splits_each_group_and_keeps_job_order():
    passes = []

    def forward(model, batch):
        passes.append(len(batch))
        return batch.sum(axis=1)

    jobs = [("a", np.full(2, float(i))) for i in range(5)]
    assert run_grouped(jobs, forward, max_items=lambda shape: 2) == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert passes == [2, 2, 1]


def test_a_pass_limit_below_one_still_runs_one_item_a_pass():
    passes = []
    run_grouped([("a", np.zeros(3)), ("a", np.ones(3))], lambda m, b: passes.append(len(b)) or b, lambda s: 0)
    assert passes == [1, 1]
