"""How close the service comes to the models' own speed, and what memory it needs: one run.

    .venv/bin/python -m bench.bound [--seconds 15] [--mix-seconds 60] [--out bench-results]

In one run, on the same machine and model files:
1. the bare models (``bench.bare``), batch 1, no HTTP, no decoding; for faces and OCR the sum
   of the passes one image needs: ONNX Runtime at fp32 with its defaults (the bound every ratio
   is against: what stock Immich runs), and the runtime the service runs (its settings' plan,
   e.g. OpenVINO bf16, with the runner's own sessions);
2. the service over HTTP (``bench.load``): CLIP image, faces (3 a photo) and OCR (1440x1080
   previews, several lines) at concurrency 1, 2/4 and 16, CLIP text at 1;
3. a library scan: CLIP at 2 + faces at 2 + OCR at 1 at once (Immich's default job
   concurrency), and a heavy mix: 32 clients (11 CLIP, 11 faces, 10 OCR), each ``--mix-seconds``;
4. the resident memory of the whole process tree (``bench.rss``): idle right after start, with
   every model loaded, and at its peak during the heavy mix;
5. the same service at ``IMMICH_CN_ML_PRECISION=fp32`` (``--compare``, CLIP, faces and OCR at
   concurrency 1 and 4, text at 1), and at ``int8`` (CLIP image and text), beside it.

This machine's speed drifts by a fifth within a minute (the bare OCR detector alone: 59 to
90 ms), so every point is measured in slices that alternate with timings of the bare models,
and compared with the bare timings taken between its own slices. It prints one table and writes
``OUT.json`` and ``OUT.png``; bench/BENCHMARKS.md explains the figures. Models (``bench.models``) are the real architectures with random weights, imported
once into ``--home`` (default: a folder under the system's temp dir, kept between runs).
Needs the export extra (`make tools`) and the bench extra (matplotlib). Settings for the
service under test can be given as ``--env NAME=VALUE``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import bare, load, models, rss, workloads
from bench.report import check_targets, plot, table
from tests.support.bento_server import BentoServer

SCAN = [("clip image", 2), ("faces", 2), ("ocr", 1)]
HEAVY = [("clip image", 11), ("faces", 11), ("ocr", 10)]
SINGLE = [("clip image", (1, 2, 4, 16)), ("faces", (1, 2, 4, 16)), ("ocr", (1, 4, 16)), ("clip text", (1,))]
#: The service at other precisions, beside the one under test: (precision, points).
COMPARE = [("fp32", [("clip image", (1, 4)), ("faces", (1, 4)), ("ocr", (1, 4)), ("clip text", (1,))]),
           ("int8", [("clip image", (1, 4)), ("clip text", (1,))])]


def runtime_in_use(env: dict[str, str]) -> bare.Create:
    """The sessions the service's runner makes under ``env`` (its plan: runtime and precision
    per model), one per file, kept for the run."""
    from config.settings import Settings
    from runners.engines import Engines

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        engines = Engines(Settings())
    finally:
        os.environ.clear()
        os.environ.update(saved)
    made: dict[tuple[Path, str], Any] = {}

    def create(path: Path, api: str) -> Any:
        if (path, api) not in made:
            made[(path, api)] = engines.create(path, api)
        return made[(path, api)]

    return create


def pipelines(home: Path) -> dict[str, bare.Pipeline]:
    from runners.models.ocr import resolve

    clip_folder = Path(glob.glob(str(home / "models" / "clip-*" / "*" / "visual.onnx"))[0]).parent
    face_folder = Path(glob.glob(str(home / "models" / "face-*" / "*" / "detector.onnx"))[0]).parent
    ocr = resolve(workloads.OCR_MODEL)
    found = [*bare.clip_pipelines(clip_folder), bare.face_pipeline(face_folder, workloads.FACES_PER_IMAGE),
             bare.ocr_pipeline(ocr.det, ocr.rec, workloads.scene())]
    return {pipeline.name: pipeline for pipeline in found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per single-workload point")
    parser.add_argument("--slices", type=int, default=3, help="slices each point is measured in, between bare timings")
    parser.add_argument("--mix-seconds", type=float, default=60.0, help="seconds of the library scan and the heavy mix")
    parser.add_argument("--rounds", type=int, default=20, help="passes per bare-model timing")
    parser.add_argument("--home", type=Path, default=Path(tempfile.gettempdir()) / "immich-cn-ml-bench",
                        help="BENTOML_HOME for the benchmark's models (kept between runs)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a setting for the service")
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="OUT.json and OUT.png are written")
    parser.add_argument("--only", choices=["single", "mixes"], help="measure only the single workloads, or only the mixes "
                        "(for quick comparisons; no table, targets or plot)")
    parser.add_argument("--no-compare", action="store_true", help="skip the service at fp32 and int8 (point 5)")
    args = parser.parse_args()

    models.prepare(args.home)
    env = dict(item.split("=", 1) for item in args.env)
    loads = {w.name: w for w in (workloads.clip_image(), workloads.clip_text(), workloads.faces(), workloads.ocr())}
    result: dict = {"env": env, "started": time.strftime("%Y-%m-%d %H:%M:%S")}

    print("bare models ...", flush=True)
    bare_pipelines = pipelines(args.home)
    in_use = runtime_in_use(env)
    result["bare"] = {name: bare.measure(p, args.rounds) for name, p in bare_pipelines.items()}
    result["bare_in_use"] = {name: bare.measure(p, args.rounds, in_use) for name, p in bare_pipelines.items()}

    def sliced(url: str, streams: list[tuple[str, int]], seconds: float, slices: int) -> tuple[list[load.Tally], dict]:
        """The streams run for ``seconds`` in all, in ``slices`` between timings of their bare
        models (ONNX Runtime's fp32 bound, and the runtime in use); (their tallies, each model's
        mean bare figures over the slices: {"ort": ..., "in_use": ...})."""
        tallies = [load.Tally() for _ in streams]
        timed: dict[str, dict[str, list[dict]]] = {}
        for index in range(slices):
            for name, _ in streams:
                rounds = max(3, args.rounds // 4)
                timed.setdefault(name, {}).setdefault("ort", []).append(bare.measure(bare_pipelines[name], rounds))
                timed[name].setdefault("in_use", []).append(bare.measure(bare_pipelines[name], rounds, in_use))
            got = load.run(url, [(loads[name], c) for name, c in streams], seconds=seconds / slices,
                           warmup=2 if index == 0 else 0)
            for tally, part in zip(tallies, got):
                tally.add(part)
        means = {name: {kind: {"seconds": sum(t["seconds"] for t in runs) / len(runs), "gflops": runs[0]["gflops"]}
                        for kind, runs in kinds.items()} for name, kinds in timed.items()}
        for kinds in means.values():
            for figures in kinds.values():
                figures["req_s"] = 1 / figures["seconds"]
        return tallies, means

    def points(url: str, plan: list[tuple[str, tuple[int, ...]]]) -> list[dict]:
        rows = []
        for name, concurrencies in plan:
            for concurrency in concurrencies:
                [tally], now = sliced(url, [(name, concurrency)], args.seconds, args.slices)
                ort, used = now[name]["ort"], now[name]["in_use"]
                row = {"workload": name, "concurrency": concurrency, **tally.summary(),
                       "bare_req_s": round(ort["req_s"], 3), "bare_ms": round(1000 * ort["seconds"], 1),
                       "in_use_req_s": round(used["req_s"], 3), "in_use_ms": round(1000 * used["seconds"], 1)}
                rows.append(row)
                print(f"  {name} c={concurrency}: {row}", flush=True)
        return rows

    server = BentoServer(".", args.home, env, exact=False).start()
    try:
        pid = server.pid
        time.sleep(3)
        result["rss_idle"] = rss.by_process(pid)
        result["single"] = points(server.url, SINGLE) if args.only != "mixes" else []
        time.sleep(3)  # idle: the runner gives back what the passes left behind
        result["rss_loaded"] = rss.by_process(pid)

        for key, streams in (("scan", SCAN), ("heavy", HEAVY)) if args.only != "single" else ():
            # One stretch, not slices: pauses would let the service hand memory back and hide
            # its peak. The bound is timed before and after, and the mean taken.
            before = {name: bare.measure(bare_pipelines[name], args.rounds // 2) for name, _ in streams}
            with rss.PeakSampler(pid) as sampler:
                tallies = load.run(server.url, [(loads[name], c) for name, c in streams], seconds=args.mix_seconds)
            after = {name: bare.measure(bare_pipelines[name], args.rounds // 2) for name, _ in streams}
            result[f"bare_{key}"] = {name: {"seconds": (before[name]["seconds"] + after[name]["seconds"]) / 2,
                                            "gflops": before[name]["gflops"]} for name in before}
            result[key] = {
                "streams": [{"workload": name, "concurrency": c, **t.summary()} for (name, c), t in zip(streams, tallies)],
                "rss_peak": sampler.peak_split,
            }
            print(f"  {key}: {result[key]['streams']}", flush=True)
        time.sleep(3)
        result["rss_after"] = rss.by_process(pid)
        result["errors"] = sum(s["errors"] for s in result["single"]) + sum(
            s["errors"] for key in ("scan", "heavy") for s in result.get(key, {}).get("streams", []))
    finally:
        server.stop()

    result["compare"] = {}
    for precision, plan in COMPARE if not (args.no_compare or args.only) else []:
        print(f"the service at {precision} ...", flush=True)
        other = BentoServer(".", args.home, {**env, "IMMICH_CN_ML_PRECISION": precision}, exact=False).start()
        try:
            result["compare"][precision] = points(other.url, plan)
        finally:
            other.stop()
        result["errors"] += sum(row["errors"] for row in result["compare"][precision])

    if args.only:
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=2))
        print(json.dumps({k: v for k, v in result.items() if k.startswith("rss") or k in ("scan", "heavy")}, indent=1))
        return
    result["table"] = table(result)
    result["targets"] = check_targets(result)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    plot(result, args.out.with_suffix(".png"))
    print(json.dumps({"table": result["table"], "targets": result["targets"]}, indent=1))
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
