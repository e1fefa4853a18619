"""The benchmark's table, its targets (issue 17) and its plot.

Every ratio is the service's requests/s over the bound of ONNX Runtime at fp32 with its
defaults (what stock Immich runs): above 1, the service is faster than those bare models could
be. ``ratio_in_use`` is against the bare runtime the service runs (e.g. OpenVINO at bf16).
"""

from __future__ import annotations

from pathlib import Path

MIB = 2**20

#: (workload, concurrency) -> least ratio of the service's requests/s to the bare ORT fp32 bound.
SPEED_TARGETS = {("clip image", 1): 1.4, ("clip image", 4): 1.5, ("faces", 1): 1.5, ("faces", 4): 1.5,
                 ("ocr", 1): 1.3, ("ocr", 4): 1.4}
TEXT_MARGIN_MS = 0.0  # CLIP text p50 at c=1 at most the bare ORT fp32 text tower's latency
SCAN_WORK = 1.3  # of what the bare ORT fp32 models compute per second
RSS_IDLE = 550 * MIB
RSS_LOADED = 1.5e9
RSS_PEAK = 1.9e9


def _work(streams: list[dict], bare: dict[str, dict]) -> dict:
    """What a set of streams computed: GFLOP/s, and the share of the machine the bare models
    would need to do the same work (1.0: as much as the bare models can, one after another)."""
    gflops = sum(s["req_s"] * bare[s["workload"]]["gflops"] for s in streams)
    machine = sum(s["req_s"] * bare[s["workload"]]["seconds"] for s in streams)
    return {"gflop_s": round(gflops, 1), "of_bare": round(machine, 3)}


def table(result: dict) -> dict:
    bare = result["bare"]
    rows = []
    for row in result["single"]:
        rows.append(_row(row))
    out: dict = {"rows": rows, "compare": {precision: [_row(row) for row in rows_]
                                           for precision, rows_ in result.get("compare", {}).items()}}
    bare_gflop_s = {name: round(b["gflops"] * b["req_s"], 1) for name, b in bare.items()}
    out["bare_gflop_s"] = bare_gflop_s
    for key in ("scan", "heavy"):
        streams = result[key]["streams"]
        out[key] = {"streams": [{k: s[k] for k in ("workload", "concurrency", "req_s", "p50_ms", "errors")}
                                for s in streams], **_work(streams, result[f"bare_{key}"]),
                    "rss_peak_mib": round(sum(result[key]["rss_peak"].values()) / MIB)}
    out["rss_mib"] = {key: {"total": round(sum(result[key].values()) / MIB),
                            **{name: round(v / MIB) for name, v in result[key].items()}}
                      for key in ("rss_idle", "rss_loaded", "rss_after")}
    out["rss_mib"]["peak_heavy"] = {"total": round(sum(result["heavy"]["rss_peak"].values()) / MIB),
                                    **{n: round(v / MIB) for n, v in result["heavy"]["rss_peak"].items()}}
    return out


def _row(row: dict) -> dict:
    out = {**{k: row[k] for k in ("workload", "concurrency", "req_s", "p50_ms", "p95_ms", "errors",
                                  "bare_req_s", "bare_ms")},
           "ratio": round(row["req_s"] / row["bare_req_s"], 3)}
    if "in_use_req_s" in row:
        out.update(in_use_ms=row["in_use_ms"], ratio_in_use=round(row["req_s"] / row["in_use_req_s"], 3))
    return out


def check_targets(result: dict) -> dict[str, dict]:
    t = result["table"]
    by = {(r["workload"], r["concurrency"]): r for r in t["rows"]}
    checks: dict[str, dict] = {}
    for (name, c), least in SPEED_TARGETS.items():
        ratio = by[(name, c)]["ratio"]
        checks[f"{name} c={c} >= {least}x bare"] = {"value": ratio, "ok": ratio >= least}
    text = by[("clip text", 1)]
    limit = text["bare_ms"] + TEXT_MARGIN_MS
    checks[f"clip text p50 c=1 <= bare + {TEXT_MARGIN_MS:g} ms"] = {"value": text["p50_ms"], "limit": round(limit, 1),
                                                                     "ok": text["p50_ms"] <= limit}
    scan = t["scan"]
    checks[f"scan work >= {SCAN_WORK}x bare"] = {"value": scan["of_bare"], "ok": scan["of_bare"] >= SCAN_WORK}
    for key, limit in (("rss_idle", RSS_IDLE), ("rss_loaded", RSS_LOADED)):
        total = sum(result[key].values())
        checks[f"{key} <= {limit / MIB:.0f} MiB"] = {"value_mib": round(total / MIB), "ok": total <= limit}
    peak = sum(result["heavy"]["rss_peak"].values())
    checks[f"peak in heavy mix <= {RSS_PEAK / MIB:.0f} MiB"] = {"value_mib": round(peak / MIB), "ok": peak <= RSS_PEAK}
    checks["no errors"] = {"value": result["errors"], "ok": result["errors"] == 0}
    return checks


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = result["table"]
    fig, (speed, memory) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [2.2, 1]})
    rows = [r for r in t["rows"] if r["workload"] != "clip text"]
    labels = [f"{r['workload']}\nc={r['concurrency']}" for r in rows]
    colours = {"clip image": "#4878d0", "faces": "#ee854a", "ocr": "#6acc64"}
    speed.bar(range(len(rows)), [r["ratio"] for r in rows], color=[colours[r["workload"]] for r in rows])
    for i, r in enumerate(rows):
        target = SPEED_TARGETS.get((r["workload"], r["concurrency"]))
        if target:
            speed.hlines(target, i - 0.4, i + 0.4, colors="black", linestyles="dashed")
        speed.text(i, r["ratio"] + 0.01, f"{r['ratio']:.2f}", ha="center", fontsize=8)
    n = len(rows)
    for i, key in enumerate(("scan", "heavy")):
        speed.bar(n + i, t[key]["of_bare"], color="#956cb4")
        speed.text(n + i, t[key]["of_bare"] + 0.01, f"{t[key]['of_bare']:.2f}", ha="center", fontsize=8)
        labels.append("library\nscan" if key == "scan" else "heavy\nmix (32)")
    speed.hlines(SCAN_WORK, n - 0.4, n + 0.4, colors="black", linestyles="dashed")
    speed.set_xticks(range(len(labels)), labels, fontsize=7)
    speed.set_ylabel("requests/s ÷ bare ORT fp32 models (mixes: work ÷ bare)")
    speed.set_title("Speed against the bare ONNX Runtime fp32 models (dashed: targets)")

    rss = t["rss_mib"]
    names = ["idle", "loaded", "peak (heavy mix)"]
    keys = ["rss_idle", "rss_loaded", "peak_heavy"]
    limits = [RSS_IDLE / MIB, RSS_LOADED / MIB, RSS_PEAK / MIB]
    processes = sorted({p for k in keys for p in rss[k] if p != "total"})
    bottoms = [0.0] * len(keys)
    for process in processes:
        values = [rss[k].get(process, 0) for k in keys]
        memory.bar(names, values, bottom=bottoms, label=process)
        bottoms = [b + v for b, v in zip(bottoms, values)]
    for i, limit in enumerate(limits):
        memory.hlines(limit, i - 0.4, i + 0.4, colors="black", linestyles="dashed")
        memory.text(i, bottoms[i] + 20, f"{bottoms[i]:.0f}", ha="center", fontsize=8)
    memory.set_ylabel("RSS of the process tree, MiB")
    memory.set_title("Memory (dashed: targets)")
    memory.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(results: list[dict]) -> str:
    """The figures of one or more runs (``bound.py``'s JSON) side by side, as the Markdown
    tables bench/BENCHMARKS.md shows; each run's ratio is against its own bare timings."""
    tables = [r["table"] for r in results]
    runs = " / ".join(f"run {i + 1}" for i in range(len(results)))
    lines = [f"| workload | c | req/s ({runs}) | p50 ms | bare ORT fp32 ms | bare in use ms | ratio to ORT fp32 "
             "| ratio to in use | target |", "|---|---|---|---|---|---|---|---|---|"]
    for i, row in enumerate(tables[0]["rows"]):
        same = [t["rows"][i] for t in tables]
        key = (row["workload"], row["concurrency"])
        target = (f"≥ {SPEED_TARGETS[key]:.2f}x" if key in SPEED_TARGETS
                  else f"p50 ≤ bare + {TEXT_MARGIN_MS:g} ms" if row["workload"] == "clip text" else "")
        lines.append("| " + " | ".join([
            row["workload"], str(row["concurrency"]),
            " / ".join(f"{r['req_s']:.2f}" for r in same),
            " / ".join(f"{r['p50_ms']:.0f}" for r in same),
            " / ".join(f"{r['bare_ms']:.0f}" for r in same),
            " / ".join(f"{r['in_use_ms']:.0f}" if "in_use_ms" in r else "" for r in same),
            " / ".join(f"{r['ratio']:.2f}" for r in same),
            " / ".join(f"{r['ratio_in_use']:.2f}" if "ratio_in_use" in r else "" for r in same),
            target]) + " |")
    compared = sorted({precision for t in tables for precision in t.get("compare", {})})
    if compared:
        lines += ["", f"| the service at | workload | c | req/s ({runs}) | p50 ms | ratio to ORT fp32 "
                      "| this run's service, req/s |", "|---|---|---|---|---|---|---|"]
        for precision in compared:
            for i, row in enumerate(tables[0]["compare"][precision]):
                same = [t["compare"][precision][i] for t in tables]
                main = [next((r for r in t["rows"] if (r["workload"], r["concurrency"])
                              == (row["workload"], row["concurrency"])), None) for t in tables]
                lines.append("| " + " | ".join([
                    precision, row["workload"], str(row["concurrency"]),
                    " / ".join(f"{r['req_s']:.2f}" for r in same),
                    " / ".join(f"{r['p50_ms']:.0f}" for r in same),
                    " / ".join(f"{r['ratio']:.2f}" for r in same),
                    " / ".join(f"{m['req_s']:.2f}" if m else "" for m in main)]) + " |")
    lines += ["", f"| mix ({runs}) | streams: req/s | work ÷ bare | GFLOP/s | peak RSS MiB |",
              "|---|---|---|---|---|"]
    for key, name in (("scan", "library scan"), ("heavy", "heavy mix (32 clients)")):
        mixes = [t[key] for t in tables]
        streams = "; ".join(
            f"{s['workload']} c={s['concurrency']}: " + " / ".join(f"{m['streams'][j]['req_s']:.2f}" for m in mixes)
            for j, s in enumerate(mixes[0]["streams"]))
        lines.append(f"| {name} | {streams} | " + " / ".join(f"{m['of_bare']:.2f}" for m in mixes) + " | "
                     + " / ".join(f"{m['gflop_s']:.0f}" for m in mixes) + " | "
                     + " / ".join(str(m["rss_peak_mib"]) for m in mixes) + " |")
    lines += ["", "| RSS of the process tree, MiB | " + " | ".join(f"run {i + 1}" for i in range(len(results)))
              + " | target |", "|---|" + "---|" * (len(results) + 1)]
    limits = {"rss_idle": RSS_IDLE / MIB, "rss_loaded": RSS_LOADED / MIB, "peak_heavy": RSS_PEAK / MIB}
    for key, name in (("rss_idle", "idle after start"), ("rss_loaded", "every model loaded"),
                      ("peak_heavy", "peak in the heavy mix")):
        cells = [", ".join([str(t["rss_mib"][key]["total"])] + [f"{p} {v}" for p, v in t["rss_mib"][key].items()
                                                              if p != "total"]) for t in tables]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | ≤ {limits[key]:.0f} |")
    failed = sorted({name for r in results for name, check in r["targets"].items() if not check["ok"]})
    lines += ["", "Targets missed in any run: " + ("; ".join(failed) if failed else "none") + "."]
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description="Print runs of bench.bound as BENCHMARKS.md's Markdown tables.")
    parser.add_argument("runs", nargs="+", type=Path, help="OUT.json files written by bench.bound")
    print(markdown([json.loads(path.read_text()) for path in parser.parse_args().runs]))
