"""``python -m runners.models``: list the models, import one into the BentoML model store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runners.models import clip, ocr
from runners.models.download import DownloadError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runners.models", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every model, where it comes from, and whether it is here")
    importer = commands.add_parser("import", help="import a model into the BentoML model store")
    importer.add_argument("family", choices=["ocr", "clip"])
    importer.add_argument("name", help="OCR model name (PP-OCRv5_server) or Chinese-CLIP architecture (ViT-B-16)")
    importer.add_argument(
        "--from", dest="source", type=Path,
        help="ocr: a folder holding the .onnx files; clip: a cn-clip checkpoint (.pt). No download.",
    )
    importer.add_argument(
        "--config", type=Path,
        help="clip only: a cn-clip model configuration (vision and text JSON merged) for a non-standard checkpoint",
    )
    args = parser.parse_args(argv)

    if args.command == "list":
        return _list()
    try:
        tag = _import(args)
    except DownloadError as exc:
        what = "detector and recogniser .onnx files" if args.family == "ocr" else "checkpoint (.pt)"
        where = "FOLDER" if args.family == "ocr" else "FILE"
        print(
            f"error: {exc}\nThis machine could not fetch the model. Download the {what} on a connected machine "
            f"and run:\n  python -m runners.models import {args.family} {args.name} --from {where}",
            file=sys.stderr,
        )
        return 1
    except ValueError as exc:  # the importers' own errors: a reason for the user
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # an export that broke: say so in one line, nothing half-stored
        print(f"error: importing {args.family} {args.name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"imported {args.family} model {args.name} as {tag}")
    return 0


def _import(args: argparse.Namespace) -> str:
    if args.family == "ocr":
        from runners.models.ocr_import import import_ocr

        return import_ocr(args.name, args.source)
    from runners.models.clip_export import import_clip

    return import_clip(args.name, args.source, args.config)


def _list() -> int:
    rows = [("FAMILY", "NAME", "COMES FROM", "PRESENT", "")]
    present = {files.name: files.origin for files in ocr.available()}
    for name in sorted(set(ocr.CATALOG) | set(present)):
        model = ocr.CATALOG.get(name)
        sources = []
        if model is not None and model.wheel is not None:
            sources.append(f"wheel {model.wheel.distribution}")
        if model is not None and model.download is not None:
            sources.append("download (rapidocr's model list)")
        summary = model.summary if model is not None else ""
        rows.append(("ocr", name, " or ".join(sources) or "imported", present.get(name, "no"), summary))
    stored = {files.name: f"model store ({files.folder})" for files in clip.available()}
    for arch in clip.ARCHS.values():
        rows.append(("clip", arch.served_name, f"import clip {arch.arch} (download or --from)",
                     stored.get(arch.served_name, "no"), f"Chinese-CLIP {arch.arch}, {arch.dim} dimensions"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])
    return 0
