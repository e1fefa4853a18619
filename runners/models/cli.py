"""``python -m runners.models``: list the models, import one into the model store (BentoML's, or
the cache folder when ``MACHINE_LEARNING_CACHE_FOLDER`` is set)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runners.models import clip, face, ocr, sources, store
from runners.models.clip_transformers import is_transformers_folder
from runners.models.disk import DiskFull, full_message, is_full
from runners.models.download import DownloadError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runners.models", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every model, where it comes from, and whether it is here")
    importer = commands.add_parser(
        "import", help="import a model into the model store (the cache folder when MACHINE_LEARNING_CACHE_FOLDER is set)"
    )
    importer.add_argument("family", choices=["ocr", "clip", "face"])
    importer.add_argument(
        "name", nargs="?",
        help="OCR model name (PP-OCRv5_server), Chinese-CLIP architecture (ViT-B-16) or InsightFace pack "
        f"({', '.join(face.PACKS)}; default {face.DEFAULT_PACK})",
    )
    importer.add_argument(
        "--from", dest="source", type=Path,
        help="ocr: a folder holding the .onnx files; clip: a cn-clip checkpoint (.pt), or a transformers "
        "ChineseCLIPModel folder (OFA-Sys' chinese-clip-vit-*, QA-CLIP; the architecture is read from it); "
        "face: the pack's folder or .zip. No download.",
    )
    importer.add_argument(
        "--config", type=Path,
        help="clip only: a cn-clip model configuration (vision and text JSON merged) for a non-standard checkpoint",
    )
    importer.add_argument(
        "--name", dest="as_name",
        help="clip from a transformers folder only: the name to serve it under, <NAME>/<Immich's name for its "
        "architecture> (default: the folder's name)",
    )
    importer.add_argument(
        "--source", dest="hub", choices=list(sources.SOURCES),
        help="clip only: where the checkpoint is downloaded from (default: IMMICH_CN_ML_MODEL_SOURCE, else "
        "huggingface; HF_ENDPOINT and IMMICH_CN_ML_MODELSCOPE_ENDPOINT point them at mirrors)",
    )
    args = parser.parse_args(argv)

    if args.command == "list":
        return _list()
    if args.hub is not None and args.family != "clip":
        parser.error("--source is for clip: OCR models come from rapidocr's list (ModelScope), face packs from "
                     "IMMICH_CN_ML_INSIGHTFACE_BASE_URL")
    transformers_folder = args.family == "clip" and args.source is not None and is_transformers_folder(args.source)
    if args.as_name is not None and not transformers_folder:
        parser.error("--name is for a Chinese-CLIP model in transformers' format (import clip --from FOLDER)")
    if args.name is None:
        if args.family == "face":
            args.name = face.DEFAULT_PACK
        elif transformers_folder:
            pass  # the folder tells its architecture
        else:
            parser.error(f"import {args.family} needs a model name")
    try:
        tag = _import(args)
    except DownloadError as exc:
        what, where = _what_to_fetch(args.family, args.name)
        print(
            f"error: {exc}\nOr download the {what} on a connected machine and run:\n"
            f"  python -m runners.models import {args.family} {args.name} --from {where}",
            file=sys.stderr,
        )
        return 1
    except (ValueError, DiskFull) as exc:  # the importers' own errors: a reason for the user
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # an export that broke: say so in one line, nothing half-stored
        what = f"importing {args.family} {args.name or args.source}"
        if is_full(exc):  # the disk of a temporary folder filled up, say
            print(f"error: {full_message(exc, what)}", file=sys.stderr)
        else:
            print(f"error: {what} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"imported {args.family} model {args.name or args.source} as {tag}")
    print(f"stored in {store.where_imports_go()}")
    return 0


def _import(args: argparse.Namespace) -> str:
    if args.family == "ocr":
        from runners.models.ocr_import import import_ocr

        return import_ocr(args.name, args.source)
    if args.family == "face":
        from runners.models.face_import import import_face

        return import_face(args.name, args.source)
    if args.source is not None and is_transformers_folder(args.source):
        from runners.models.clip_transformers import import_transformers_clip

        return import_transformers_clip(args.source, args.as_name, args.name)
    from runners.models.clip_export import import_clip

    return import_clip(args.name, args.source, args.config, args.hub)


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
    imported = clip.available()
    stored = {files.name: f"model store ({files.folder})" for files in imported}
    for arch in clip.ARCHS.values():
        rows.append(("clip", arch.served_name, f"import clip {arch.arch} (download or --from)",
                     stored.get(arch.served_name, "no"), f"Chinese-CLIP {arch.arch}, {arch.dim} dimensions"))
    served = {arch.served_name for arch in clip.ARCHS.values()}
    for files in imported:  # imported from transformers' format, under a name of its own
        if files.name not in served:
            rows.append(("clip", files.name, "imported (transformers format)", stored[files.name],
                         f"{files.metadata.get('arch', 'Chinese-CLIP')}, {files.dim} dimensions"))
    stored_faces = {files.name: f"model store ({files.folder})" for files in face.available()}
    for name in [*face.PACKS, *sorted(set(stored_faces) - set(face.PACKS))]:
        rows.append(("face", name, "import face PACK (download or --from)" if name in face.PACKS else "imported",
                     stored_faces.get(name, "no"), face.PACKS.get(name, "InsightFace pack")))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])
    return 0


def _what_to_fetch(family: str, name: str) -> tuple[str, str]:
    """(what to download by hand, what --from then takes) when a download failed."""
    if family == "ocr":
        return "detector and recogniser .onnx files", "FOLDER"
    if family == "clip":
        return "checkpoint (.pt)", "FILE"
    from runners.models.face_import import pack_url

    return f"pack from {pack_url(name)}", "FILE.zip"
