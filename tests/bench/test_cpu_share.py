"""bench/cpu_share.py: its arithmetic, and a measurement against a real server."""

from __future__ import annotations

from bench import workloads
from bench.cpu_share import measure, share


def test_share_is_cpu_per_request_of_each_process_and_its_busiest_threads():
    before = {"model-runner": {0: 10.0, 11: 2.0, 12: 8.0}, "immich-cn-ml": {0: 1.0, 21: 1.0}}
    after = {"model-runner": {0: 12.0, 11: 2.5, 12: 9.5, 13: 0.25}, "immich-cn-ml": {0: 1.5, 21: 1.5}}
    got = share(before, after, requests=10, top=2)
    assert got["model-runner"] == {"cpu_ms_per_request": 200.0, "threads_ms_per_request": [150.0, 50.0]}
    assert got["immich-cn-ml"] == {"cpu_ms_per_request": 50.0, "threads_ms_per_request": [50.0]}


def test_measures_an_ocr_stream_on_a_real_server(lonely_server):
    result = measure(lonely_server.url, lonely_server.pid, workloads.ocr(), concurrency=2, requests=6)
    assert result["requests"] == 6 and result["errors"] == 0
    assert result["wall_ms_per_request"] > 0 and result["client_cpu_ms_per_request"] > 0
    processes = result["processes"]
    assert {"bentoml serve", "immich-cn-ml", "model-runner"} <= set(processes)
    # OCR decodes and post-processes in the entry service and runs its passes in the runner
    for name in ("immich-cn-ml", "model-runner"):
        assert processes[name]["cpu_ms_per_request"] > 1, processes
        assert processes[name]["threads_ms_per_request"][0] > 0, processes
