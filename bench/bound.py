"""How close the service comes to the models' own speed, and what memory it needs: one run.

    .venv/bin/python -m bench.bound [--seconds 15] [--mix-seconds 60] [--out bench-results]

In one run, on the same machine and model files:
1. the bare models (``bench.bare``): ONNX Runtime alone, batch 1, no HTTP, no decoding; for
   faces and OCR the sum of the passes one image needs (the physical bound);
2. the service over HTTP (``bench.load``): CLIP image, faces (3 a photo) and OCR (1440x1080
   previews, several lines) at concurrency 1, 2/4 and 16, CLIP text at 1;
3. a library scan: CLIP at 2 + faces at 2 + OCR at 1 at once (Immich's default job
   concurrency), and a heavy mix: 32 clients (11 CLIP, 11 faces, 10 OCR), each ``--mix-seconds``;
4. the resident memory of the whole process tree (``bench.rss``): idle right after start, with
   every model loaded, and at its peak during the heavy mix.

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
import tempfile
import time
from pathlib import Path

from bench import bare, load, models, rss, workloads
from bench.report import check_targets, plot, table
from tests.support.bento_server import BentoServer

SCAN = [("clip image", 2), ("faces", 2), ("ocr", 1)]
HEAVY = [("clip image", 11), ("faces", 11), ("ocr", 10)]
SINGLE = [("clip image", (1, 2, 4, 16)), ("faces", (1, 2, 4, 16)), ("ocr", (1, 4, 16)), ("clip text", (1,))]


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
    args = parser.parse_args()

    models.prepare(args.home)
    env = dict(item.split("=", 1) for item in args.env)
    loads = {w.name: w for w in (workloads.clip_image(), workloads.clip_text(), workloads.faces(), workloads.ocr())}
    result: dict = {"env": env, "started": time.strftime("%Y-%m-%d %H:%M:%S")}

    print("bare models ...", flush=True)
    bare_pipelines = pipelines(args.home)
    result["bare"] = {name: bare.measure(p, args.rounds) for name, p in bare_pipelines.items()}

    server = BentoServer(".", args.home, env).start()
    try:
        pid = server.pid
        time.sleep(3)
        result["rss_idle"] = rss.by_process(pid)

        def sliced(streams: list[tuple[str, int]], seconds: float, slices: int) -> tuple[list[load.Tally], dict]:
            """The streams run for ``seconds`` in all, in ``slices`` between timings of their bare
            models; (their tallies, each model's mean bare figures over the slices)."""
            tallies = [load.Tally() for _ in streams]
            timed: dict[str, list[dict]] = {}
            for index in range(slices):
                for name, _ in streams:
                    timed.setdefault(name, []).append(bare.measure(bare_pipelines[name], max(3, args.rounds // 4)))
                got = load.run(server.url, [(loads[name], c) for name, c in streams], seconds=seconds / slices,
                               warmup=2 if index == 0 else 0)
                for tally, part in zip(tallies, got):
                    tally.add(part)
            means = {name: {"seconds": sum(t["seconds"] for t in runs) / len(runs), "gflops": runs[0]["gflops"]}
                     for name, runs in timed.items()}
            for figures in means.values():
                figures["req_s"] = 1 / figures["seconds"]
            return tallies, means

        result["single"] = []
        for name, concurrencies in SINGLE if args.only != "mixes" else []:
            for concurrency in concurrencies:
                [tally], now = sliced([(name, concurrency)], args.seconds, args.slices)
                row = {"workload": name, "concurrency": concurrency, **tally.summary(),
                       "bare_req_s": round(now[name]["req_s"], 3), "bare_ms": round(1000 * now[name]["seconds"], 1)}
                result["single"].append(row)
                print(f"  {name} c={concurrency}: {row}", flush=True)
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
            s["errors"] for key in ("scan", "heavy") for s in result[key]["streams"])
    finally:
        server.stop()

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
