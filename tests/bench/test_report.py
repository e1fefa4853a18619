"""The benchmark's arithmetic: ratios against the bound, work done in the mixes, targets."""

from __future__ import annotations

import pytest

from bench.report import check_targets, markdown, plot, table

MIB = 2**20


def result(ocr_c4: float = 10.0, heavy_clip: float = 3.0) -> dict:
    bare = {"clip image": {"seconds": 0.1, "req_s": 10.0, "gflops": 35.0},
            "clip text": {"seconds": 0.03, "req_s": 33.3, "gflops": 9.0},
            "faces": {"seconds": 0.2, "req_s": 5.0, "gflops": 48.0},
            "ocr": {"seconds": 0.1, "req_s": 10.0, "gflops": 15.0}}
    single = []
    for name, c, req_s, p50 in [("clip image", 1, 8.5, 110), ("clip image", 2, 9.0, 220), ("clip image", 4, 9.0, 440),
                                ("clip image", 16, 9.0, 1700), ("faces", 1, 4.0, 240), ("faces", 2, 4.5, 440),
                                ("faces", 4, 4.5, 880), ("faces", 16, 4.5, 3500), ("ocr", 1, 9.5, 105),
                                ("ocr", 4, ocr_c4, 400), ("ocr", 16, 10.0, 1600), ("clip text", 1, 25.0, 38.0)]:
        b = bare[name]
        single.append({"workload": name, "concurrency": c, "req_s": req_s, "p50_ms": p50, "p95_ms": p50 * 1.2,
                       "errors": 0, "bare_req_s": b["req_s"], "bare_ms": 1000 * b["seconds"]})
    scan = [{"workload": "clip image", "concurrency": 2, "req_s": 3.0, "p50_ms": 600, "errors": 0},
            {"workload": "faces", "concurrency": 2, "req_s": 2.0, "p50_ms": 900, "errors": 0},
            {"workload": "ocr", "concurrency": 1, "req_s": 2.0, "p50_ms": 500, "errors": 0}]
    heavy = [dict(scan[0], concurrency=11, req_s=heavy_clip), dict(scan[1], concurrency=11),
             dict(scan[2], concurrency=10)]
    rss = {"bentoml serve": 90 * MIB, "model-runner": 120 * MIB, "immich-cn-ml": 240 * MIB}
    out = {"bare": bare, "single": single, "bare_scan": bare, "bare_heavy": bare, "errors": 0,
           "rss_idle": rss, "rss_loaded": {**rss, "model-runner": 1100 * MIB},
           "rss_after": {**rss, "model-runner": 1100 * MIB},
           "scan": {"streams": scan, "rss_peak": {**rss, "model-runner": 1200 * MIB}},
           "heavy": {"streams": heavy, "rss_peak": {**rss, "model-runner": 1300 * MIB}}}
    out["table"] = table(out)
    return out


def test_ratios_and_work_are_against_the_bare_models():
    t = result()["table"]
    row = next(r for r in t["rows"] if (r["workload"], r["concurrency"]) == ("faces", 1))
    assert row["ratio"] == 0.8
    # 3.0 CLIP images x 0.1 s + 2 faces x 0.2 s + 2 OCR x 0.1 s of the bare models' time
    assert t["scan"]["of_bare"] == pytest.approx(0.9)
    assert t["scan"]["gflop_s"] == pytest.approx(3 * 35 + 2 * 48 + 2 * 15)
    assert t["rss_mib"]["peak_heavy"]["total"] == 90 + 1300 + 240


def test_targets_pass_and_fail_where_they_should():
    checks = check_targets(result())
    assert checks["ocr c=4 >= 1.0x bare"]["ok"]
    assert checks["scan work >= 0.7x bare"]["ok"]
    assert checks["clip text p50 c=1 <= bare + 10 ms"]["ok"]
    assert not checks["scan faces c=2 >= 0.5x alone"]["ok"]  # 2.0 of 4.5 alone
    worse = check_targets(result(ocr_c4=9.0, heavy_clip=1.0))
    assert not worse["ocr c=4 >= 1.0x bare"]["ok"]
    assert not worse["heavy mix work >= scan work"]["ok"]


def test_the_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "bound.png"
    plot(result(), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_markdown_puts_runs_side_by_side():
    one, two = result(), result(ocr_c4=9.0, heavy_clip=1.0)
    for run in (one, two):
        run["targets"] = check_targets(run)
    text = markdown([one, two])
    lines = text.splitlines()
    assert "| ocr | 4 | 10.00 / 9.00 | 400 / 400 | 100 / 100 | 1.00 / 0.90 | ≥ 1.00x |" in lines
    # every table row has as many cells as its header
    for table in text.split("\n\n")[:3]:
        rows = table.splitlines()
        assert {row.count("|") for row in rows} == {rows[0].count("|")}
    assert lines[-1] == ("Targets missed in any run: heavy mix work >= scan work; "
                         "ocr c=4 >= 1.0x bare; scan clip image c=2 >= 0.5x alone; "
                         "scan faces c=2 >= 0.5x alone; scan ocr c=1 >= 0.5x alone.")
