"""bench/soak.py: its answer comparison, and a 2-minute soak on the tests' tiny models."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.soak import SCAN_CLIENTS, judge_memory, plan, same
from tests.support.bento_server import ROOT


def test_answers_are_the_same_within_float_tolerance_and_different_otherwise():
    alone = {"clip": "[0.12345678, -0.5, 0.25]", "imageHeight": 1080,
             "result": {"texts": ["收据"], "scores": ["0.98"], "boxes": [{"x": "4.0"}]}}
    batched = {"clip": "[0.12345679, -0.5000001, 0.25]", "imageHeight": 1080,
               "result": {"texts": ["收据"], "scores": ["0.99"], "boxes": [{"x": "4.0"}]}}
    assert same(batched, alone)
    for other in ({**alone, "clip": "[0.9, -0.1, 0.3]"}, {**alone, "imageHeight": 1079.9 - 100},
                  {**alone, "result": {**alone["result"], "texts": ["发票"]}}, {**alone, "extra": 1},
                  {**alone, "clip": "[0.12345678, -0.5]"}):
        assert not same(other, alone), other
    assert same(True, True) and not same(True, 1)


def test_a_scan_is_immichs_job_concurrency_with_a_burst_in_every_segment():
    segments = plan(minutes=60, concurrency=32, warmup=0, scan=True, rest_every=120, burst_seconds=20)
    assert len(segments) == 30 and {s.seconds for s in segments} == {120}
    assert dict(segments[0].kinds) == SCAN_CLIENTS == {"clip image": 2, "faces": 2, "ocr": 1}
    assert segments[0].burst == 32 and segments[0].width == 37
    mixed = plan(minutes=2, concurrency=32, warmup=40, scan=False, rest_every=120, burst_seconds=20)
    assert [(s.seconds, s.mixed) for s in mixed] == [(40, 32), (80, 32)]
    with pytest.raises(ValueError, match="warm-up"):
        plan(minutes=1, concurrency=32, warmup=60, scan=False, rest_every=120, burst_seconds=20)
    with pytest.raises(ValueError, match="burst"):
        plan(minutes=10, concurrency=32, warmup=0, scan=True, rest_every=20, burst_seconds=20)


def test_an_hours_growth_is_judged_after_10_minutes_and_over_the_last_40():
    def at_rest(values):  # a sample every 2 minutes, the tree split in two processes
        return [(120.0 * (n + 1), {"entry": 100 * 2**20, "runner": value * 2**20}) for n, value in enumerate(values)]

    flat = judge_memory(at_rest([500, 600] + [610] * 28), 3600, scan=True)
    assert flat == {"after_10_min": {"growth": 0.0, "limit": 0.05}, "last_40_min": {"growth": 0.0, "limit": 0.02}}
    # Growing 2 MiB every 2 minutes: 40 MiB over the last 40 minutes of a 710 MiB tree.
    growing = judge_memory(at_rest([600 + 2 * n for n in range(30)]), 3600, scan=True)
    assert 0.05 < growing["last_40_min"]["growth"] < 0.06 and growing["after_10_min"]["growth"] > 0.05
    short = judge_memory(at_rest([600, 630]), 240, scan=True)
    assert short == {"after_warmup": {"growth": round(30 / 700, 4), "limit": 0.10}}


def test_a_two_minute_soak_at_concurrency_32_has_no_error_no_crosstalk_and_no_growth(mt_home):
    run = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--minutes", "2", "--warmup", "40", "--home", str(mt_home)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert "{" in run.stdout, run.stderr[-3000:]
    result = json.loads(run.stdout[run.stdout.index("{"):])
    assert run.returncode == 0 and result["passed"], (result["failures"], run.stdout, run.stderr[-3000:])
    assert result["requests"] > 500 and result["concurrency"] == 32
    assert {"clip image", "faces", "ocr", "mt /ocr", "mt /represent", "mt /clip/txt"} <= set(result["by_kind"])
    print(json.dumps(result["rss_mib"]), result["requests"])
