"""The benchmark's arithmetic: ratios against the bound, work done in the mixes, targets."""

from __future__ import annotations

import pytest

from bench.report import check_targets, markdown, plot, table

MIB = 2**20


def result(ocr_c4: float = 15.0, heavy_clip: float = 3.0) -> dict:
    bare = {"clip image": {"seconds": 0.1, "req_s": 10.0, "gflops": 35.0},
            "clip text": {"seconds": 0.03, "req_s": 33.3, "gflops": 9.0},
            "faces": {"seconds": 0.2, "req_s": 5.0, "gflops": 48.0},
            "ocr": {"seconds": 0.1, "req_s": 10.0, "gflops": 15.0}}
    single = []
    for name, c, req_s, p50 in [("clip image", 1, 15.0, 70), ("clip image", 2, 15.5, 130), ("clip image", 4, 16.0, 250),
                                ("clip image", 16, 16.0, 1000), ("faces", 1, 8.0, 125), ("faces", 2, 8.0, 250),
                                ("faces", 4, 8.0, 500), ("faces", 16, 8.0, 2000), ("ocr", 1, 13.5, 75),
                                ("ocr", 4, ocr_c4, 270), ("ocr", 16, 15.0, 1070), ("clip text", 1, 40.0, 25.0)]:
        b = bare[name]
        single.append({"workload": name, "concurrency": c, "req_s": req_s, "p50_ms": p50, "p95_ms": p50 * 1.2,
                       "errors": 0, "bare_req_s": b["req_s"], "bare_ms": 1000 * b["seconds"],
                       "in_use_req_s": 2 * b["req_s"], "in_use_ms": 500 * b["seconds"]})
    scan = [{"workload": "clip image", "concurrency": 2, "req_s": 6.0, "p50_ms": 300, "errors": 0},
            {"workload": "faces", "concurrency": 2, "req_s": 3.0, "p50_ms": 600, "errors": 0},
            {"workload": "ocr", "concurrency": 1, "req_s": 3.0, "p50_ms": 300, "errors": 0}]
    heavy = [dict(scan[0], concurrency=11, req_s=heavy_clip), dict(scan[1], concurrency=11),
             dict(scan[2], concurrency=10)]
    rss = {"bentoml serve": 90 * MIB, "model-runner": 120 * MIB, "immich-cn-ml": 240 * MIB}
    compare = {"fp32": [dict(single[0], req_s=8.0), dict(single[-1], req_s=20.0, p50_ms=45.0)],
               "int8": [dict(single[0], req_s=20.0)]}
    out = {"bare": bare, "single": single, "bare_scan": bare, "bare_heavy": bare, "errors": 0, "compare": compare,
           "rss_idle": rss, "rss_loaded": {**rss, "model-runner": 1100 * MIB},
           "rss_after": {**rss, "model-runner": 1100 * MIB},
           "scan": {"streams": scan, "rss_peak": {**rss, "model-runner": 1200 * MIB}},
           "heavy": {"streams": heavy, "rss_peak": {**rss, "model-runner": 1300 * MIB}}}
    out["table"] = table(out)
    return out


def test_ratios_and_work_are_against_the_bare_ort_fp32_models():
    t = result()["table"]
    row = next(r for r in t["rows"] if (r["workload"], r["concurrency"]) == ("faces", 1))
    assert row["ratio"] == 1.6 and row["ratio_in_use"] == 0.8  # against ORT fp32, and the runtime in use
    # 6 CLIP images x 0.1 s + 3 faces x 0.2 s + 3 OCR x 0.1 s of the bare models' time
    assert t["scan"]["of_bare"] == pytest.approx(1.5)
    assert t["scan"]["gflop_s"] == pytest.approx(6 * 35 + 3 * 48 + 3 * 15)
    assert t["rss_mib"]["peak_heavy"]["total"] == 90 + 1300 + 240
    assert [r["ratio"] for r in t["compare"]["fp32"]] == [0.8, pytest.approx(0.6, abs=0.002)]


def test_targets_pass_and_fail_where_they_should():
    checks = check_targets(result())
    assert checks["ocr c=4 >= 1.4x bare"]["ok"] and checks["faces c=1 >= 1.5x bare"]["ok"]
    assert checks["scan work >= 1.3x bare"]["ok"]
    assert checks["clip text p50 c=1 <= bare + 0 ms"]["ok"]  # 25 ms against the bare tower's 30
    assert checks["rss_loaded <= 1431 MiB"]["ok"]
    worse = check_targets(result(ocr_c4=13.0))
    assert not worse["ocr c=4 >= 1.4x bare"]["ok"]


def test_the_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "bound.png"
    plot(result(), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_markdown_puts_runs_side_by_side():
    one, two = result(), result(ocr_c4=13.0)
    for run in (one, two):
        run["targets"] = check_targets(run)
    text = markdown([one, two])
    lines = text.splitlines()
    assert "| ocr | 4 | 15.00 / 13.00 | 270 / 270 | 100 / 100 | 50 / 50 | 1.50 / 1.30 | 0.75 / 0.65 | ≥ 1.40x |" in lines
    assert "| int8 | clip image | 1 | 20.00 / 20.00 | 70 / 70 | 2.00 / 2.00 | 15.00 / 15.00 |" in lines
    # every table row has as many cells as its header
    for table in text.split("\n\n")[:4]:
        rows = table.splitlines()
        assert {row.count("|") for row in rows} == {rows[0].count("|")}
    assert lines[-1] == "Targets missed in any run: ocr c=4 >= 1.4x bare."
