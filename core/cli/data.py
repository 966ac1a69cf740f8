"""`img2text data tiny-coco DEST` (fetch, extract safely, verify) and `img2text data check DIR`.

The archive is the published GitHub snapshot of Tiny COCO; it unpacks to
``tiny_coco_dataset-master/tiny_coco/{annotations,train2017,val2017}``. Extraction refuses the
whole archive if any member would land outside DEST (``../``, absolute paths, links), before
writing anything.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.cli import EXIT_OK
from core.cli.options import add_quiet
from core.datasets import (
    EXPECTED_IMAGES,
    SPLITS,
    TINY_COCO_URL,
    describe_dataset,
    download,
    extract_zip,
    verify_tiny_coco,
)
from core.errors import DatasetError, DatasetNotFoundError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``data`` command group (``tiny-coco``, ``check``)."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    group = sub.add_parser("data", help="get and check data sets", formatter_class=fmt)
    data_sub = group.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")

    p = data_sub.add_parser(
        "tiny-coco",
        help="download, extract and verify Tiny COCO",
        description="Download the published Tiny COCO archive (100 COCO 2017 images with "
        "annotations), extract it safely into DEST and check it.",
        formatter_class=fmt,
    )
    p.add_argument("dest", type=Path, metavar="DEST", help="folder to extract into (created)")
    p.add_argument("--url", default=TINY_COCO_URL, help="archive URL")
    p.add_argument(
        "--archive", type=Path, metavar="ZIP", help="use this local zip instead of downloading"
    )
    p.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds")
    p.add_argument(
        "--force", action="store_true", help="extract again even if DEST already verifies"
    )
    add_quiet(p, help="no progress bar")
    p.set_defaults(func=_run_tiny_coco)

    p = data_sub.add_parser(
        "check",
        help="report which data layout a folder has, and its counts",
        description="Detect the layout of DIR (Tiny COCO, the notebook's "
        "tiny_coco_dataset-master layout, or a plain image folder) and count images and labels.",
        formatter_class=fmt,
    )
    p.add_argument("dir", type=Path, metavar="DIR", help="data folder")
    p.add_argument(
        "--split",
        action="append",
        metavar="S",
        help=f"split(s) to check; None means {', '.join(SPLITS)}",
    )
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    p.set_defaults(func=_run_check)


def _format_report(report: dict[str, Any]) -> str:
    lines = [f"data root: {report['root']}"]
    for split, c in report["splits"].items():
        if c["layout"] == "folder":
            lines.append(
                f"  {split}: no annotations found; plain image folder with {c['images']} images"
            )
            continue
        lines.append(
            f"  {split}: layout {c['layout']}, {c['images']} images, {c['with_captions']} with "
            f"captions, {c['with_categories']} with instance categories, {c['categories']} categories"
        )
        lines.extend(f"    warning: {w}" for w in c["warnings"])
    return "\n".join(lines)


def _run_tiny_coco(args: argparse.Namespace) -> int:
    dest: Path = args.dest
    if dest.exists() and not dest.is_dir():
        raise DatasetError(f"DEST exists and is not a folder: {dest}; choose a folder to extract into")
    if dest.is_dir() and not args.force:
        try:
            report = verify_tiny_coco(dest)
        except DatasetError:  # absent, incomplete or malformed: extract (again)
            pass
        else:
            print(_format_report(report) + "\nalready present (use --force to extract again)")
            return EXIT_OK
    dest.mkdir(parents=True, exist_ok=True)
    if args.archive is not None:
        if not args.archive.is_file():
            raise DatasetNotFoundError(f"archive not found: {args.archive}; pass the Tiny COCO zip you "
                                       "downloaded, or leave out --archive to download it")
        archive = args.archive
    else:
        archive = download(
            args.url, dest / "tiny_coco_dataset.zip", timeout=args.timeout, progress=not args.quiet
        )
    files = extract_zip(archive, dest)
    if args.archive is None:
        archive.unlink(missing_ok=True)  # extracted; the zip is only a duplicate now
    report = verify_tiny_coco(dest)
    print(f"extracted {files} files into {dest}")
    print(_format_report(report))
    counts = [c["images"] for c in report["splits"].values()]
    if any(n != EXPECTED_IMAGES for n in counts):
        print(
            f"note: the published archive has {EXPECTED_IMAGES} images per split", file=sys.stderr
        )
    print(f"use it with: --data {report['root']}")
    return EXIT_OK


def _run_check(args: argparse.Namespace) -> int:
    splits = tuple(args.split) if args.split else SPLITS
    report = describe_dataset(args.dir, splits)
    if args.format == "json":
        print(json.dumps(report, indent=2))
    else:
        print(_format_report(report))
    return EXIT_OK
