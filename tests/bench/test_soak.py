"""bench/soak.py: its answer comparison, and a 2-minute soak on the tests' tiny models."""

from __future__ import annotations

import json
import subprocess
import sys

from bench.soak import same
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
