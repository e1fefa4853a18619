"""``python -m runners.models``: list the models, import one into the BentoML model store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runners.models import ocr
from runners.models.download import DownloadError
from runners.models.ocr_import import ModelImportError, import_ocr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runners.models", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every model, where it comes from, and whether it is here")
    importer = commands.add_parser("import", help="import a model into the BentoML model store")
    importer.add_argument("family", choices=["ocr"])
    importer.add_argument("name", help="model name, e.g. PP-OCRv5_server")
    importer.add_argument("--from", dest="source", type=Path, help="a folder holding the files (no download)")
    args = parser.parse_args(argv)

    if args.command == "list":
        return _list()
    try:
        tag = import_ocr(args.name, args.source)
    except DownloadError as exc:
        print(
            f"error: {exc}\n"
            f"This machine could not fetch the model. Download the detector and recogniser .onnx files on a "
            f"connected machine, put them in one folder, and run:\n"
            f"  python -m runners.models import {args.family} {args.name} --from FOLDER",
            file=sys.stderr,
        )
        return 1
    except ModelImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"imported {args.family} model {args.name} as {tag}")
    return 0


def _list() -> int:
    present = {files.name: files.origin for files in ocr.available()}
    rows = [("FAMILY", "NAME", "COMES FROM", "PRESENT", "")]
    for name in sorted(set(ocr.CATALOG) | set(present)):
        model = ocr.CATALOG.get(name)
        sources = []
        if model is not None and model.wheel is not None:
            sources.append(f"wheel {model.wheel.distribution}")
        if model is not None and model.download is not None:
            sources.append("download (rapidocr's model list)")
        sources = sources or ["imported"]
        summary = model.summary if model is not None else ""
        rows.append(("ocr", name, " or ".join(sources), present.get(name, "no"), summary))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])
    return 0
