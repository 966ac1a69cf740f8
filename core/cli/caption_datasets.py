"""``img2text caption`` into training-set layouts: sidecar files, ``imagefolder``, webdataset shards.

* ``--sidecar``: one caption file per image next to it (or under ``-o OUT_DIR``, mirroring the
  source tree); existing caption files are skipped unless ``--overwrite``/``--append``/``--prepend``.
* ``--format imagefolder -o DIR``: ``DIR/metadata.jsonl`` (``file_name``, ``text``), images copied
  or hard-linked (``--link``) into ``DIR`` when they live elsewhere.
* ``--format webdataset -o DIR``: ``DIR/shard-NNNNN.tar`` of ``--shard-size`` samples each.

The run ends with one line: written / skipped / failed counts. One plan per layout is in
``core.cli.caption_plans``; the writers are in ``core.captioning`` (``sidecars``,
``imagefolder``, ``webdataset_out``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from core import ConfigError
from core.captioning import Triggers, caption_extension
from core.cli.caption_plans import ImagefolderPlan, SidecarPlan, Tally, WebdatasetPlan

DATASET_FORMATS = ("imagefolder", "webdataset")


def register(out: argparse._ArgumentGroup, again: argparse._MutuallyExclusiveGroup) -> None:
    out.add_argument("--sidecar", action="store_true",
                     help="write one caption file per image next to it (or under -o OUT_DIR, "
                     "mirroring the source tree); existing caption files are skipped")
    out.add_argument("--caption-extension", default=".txt", metavar="EXT",
                     help="--sidecar: the caption files' extension (kohya: .txt or .caption)")
    out.add_argument("--link", action="store_true",
                     help="--format imagefolder: hard-link images that live outside -o DIR instead "
                     "of copying them")
    again.add_argument("--append", action="store_true",
                       help="--sidecar: add the new caption after an existing caption file's text")
    again.add_argument("--prepend", action="store_true",
                       help="--sidecar: add the new caption before an existing caption file's text")


def wanted(args: argparse.Namespace) -> bool:
    return bool(args.sidecar or args.format in DATASET_FORMATS)


def _check_args(args: argparse.Namespace) -> str:
    if args.sidecar and args.format != "text":
        raise ConfigError(f"--sidecar writes caption files, not --format {args.format}; drop one of them")
    fmt = "sidecar" if args.sidecar else args.format
    if fmt != "sidecar" and args.output is None:
        raise ConfigError(f"--format {fmt} needs -o DIR (the folder to write)")
    if fmt != "sidecar" and (args.append or args.prepend):
        raise ConfigError("--append/--prepend add to sidecar caption files: use them with --sidecar")
    if args.link and fmt != "imagefolder":
        raise ConfigError("--link hard-links images into an imagefolder: use it with --format imagefolder")
    if fmt != "webdataset" and ("-" in args.paths):
        raise ConfigError(f"{fmt} output names files after the images: '-' (stdin) has no name; "
                          "use --format webdataset or jsonl")
    if args.output is not None and args.output.exists() and not args.output.is_dir():
        raise ConfigError(f"{args.output}: is a file; {fmt} output goes to a folder (-o DIR)")
    return fmt


def _has_output(fmt: str, out: Path | None) -> bool:
    from core.captioning import METADATA_NAME

    if out is None or not out.is_dir():
        return False
    if fmt == "imagefolder":
        meta = out / METADATA_NAME
        return meta.is_file() and meta.stat().st_size > 0
    if fmt == "webdataset":
        return any(out.glob("shard-*.tar"))
    return False


def _inputs(args: argparse.Namespace, fmt: str) -> list[tuple[str, Any, str | None]]:
    """``(key, image, error)`` per input: file paths for sidecar/imagefolder, anything for webdataset."""
    from core import iter_image_files
    from core.cli.caption import _split_sources

    files, items = _split_sources(args)
    if items and fmt != "webdataset":
        raise ConfigError(f"{fmt} output is written next to (or named after) image files; tar and "
                          "parquet sources have none: use --format webdataset or jsonl")
    out: list[tuple[str, Any, str | None]] = [
        (str(p), str(p), None) for p in iter_image_files(files, recursive=not args.no_recursive)]
    out += [(i.key, i.image, i.error) for i in items]
    if "-" in args.paths:
        out.append(("-", sys.stdin.buffer.read(), None))
    return out


def run(args: argparse.Namespace, gen: dict[str, Any], triggers: Triggers) -> int:
    from core.cli.caption import check_output

    fmt = _check_args(args)
    if fmt == "sidecar":  # existing caption files are skipped, not refused: no existence check
        exists = bool(args.resume and args.output is not None)
    else:
        exists = _has_output(fmt, args.output)
    saved = check_output(args, gen, triggers, exists=exists)
    inputs = _inputs(args, fmt)
    tally = Tally()
    plan: Any
    if fmt == "sidecar":
        plan = SidecarPlan(args, caption_extension(args.caption_extension))
    elif fmt == "imagefolder":
        plan = ImagefolderPlan(args, saved is not None)
    else:
        plan = WebdatasetPlan(args, saved is not None)
    todo = plan.select(inputs, tally)
    if not todo:
        print(tally.line(str(args.output or "")), file=sys.stderr)
        return 1 if tally.failed else 0
    captioner, meta = _load_and_record(args, gen, triggers, fmt, saved)
    plan.start(meta)
    _caption_into(args, captioner, gen, triggers, todo, plan, tally)
    print(tally.line(str(args.output or "")), file=sys.stderr)
    return 1 if tally.failed else 0


def _load_and_record(args: argparse.Namespace, gen: dict[str, Any], triggers: Triggers, fmt: str,
                     saved: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]:
    from core.cli.caption import MODEL_KEYS, _differences, _load_captioner, _refuse, meta_path
    from core.fileio import atomic_write_json

    captioner = _load_captioner(args)  # refused before torch loads when offline and not cached
    meta = {**captioner.info, "generation": captioner.options(**gen).to_dict(),  # the family's defaults filled in
            "format": fmt, **triggers.to_meta()}
    if saved is not None and (diffs := _differences(saved, meta, MODEL_KEYS)):
        _refuse(args.output, diffs)
    if args.output is not None:
        args.output.mkdir(parents=True, exist_ok=True)
        atomic_write_json(meta_path(args.output), meta)
    return captioner, meta


def _caption_into(args: argparse.Namespace, captioner: Any, gen: dict[str, Any], triggers: Triggers,
                  todo: list[tuple[str, Any]], plan: Any, tally: Tally) -> None:
    from core.cli.caption import captioned

    records = captioned(args, captioner, todo, gen, triggers)
    try:
        for record in records:
            plan.write(record, tally)
        plan.close()
    except BaseException as exc:
        plan.abort(exc)
        raise
    finally:
        records.close()  # its progress bar
