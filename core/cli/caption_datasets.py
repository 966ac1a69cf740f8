"""``img2text caption`` into training-set layouts: sidecar files, ``imagefolder``, webdataset shards.

* ``--sidecar``: one caption file per image next to it (or under ``-o OUT_DIR``, mirroring the
  source tree); existing caption files are skipped unless ``--overwrite``/``--append``/``--prepend``.
* ``--format imagefolder -o DIR``: ``DIR/metadata.jsonl`` (``file_name``, ``text``), images copied
  or hard-linked (``--link``) into ``DIR`` when they live elsewhere.
* ``--format webdataset -o DIR``: ``DIR/shard-NNNNN.tar`` of ``--shard-size`` samples each.

The run ends with one line: written / skipped / failed counts. The writers are in
``core.captioning`` (``sidecars``, ``imagefolder``, ``webdataset_out``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core import ConfigError, Img2TextError
from core.captioning import (
    CaptionRecord,
    Triggers,
    caption_extension,
    input_roots,
    mirror_name,
    remove_stale_temps,
    sidecar_path,
)

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


@dataclass
class Tally:
    written: int = 0
    skipped: int = 0
    failed: int = 0
    problems: list[str] = field(default_factory=list)

    def fail(self, key: str, reason: str) -> None:
        self.failed += 1
        tqdm.write(f"img2text: failed {key}: {reason}", file=sys.stderr)

    def line(self, where: str) -> str:
        return (f"img2text: {self.written} written, {self.skipped} skipped, {self.failed} failed"
                + (f" -> {where}" if where else ""))


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
        plan = _SidecarPlan(args, caption_extension(args.caption_extension))
    elif fmt == "imagefolder":
        plan = _ImagefolderPlan(args, saved is not None)
    else:
        plan = _WebdatasetPlan(args, saved is not None)
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


class _SidecarPlan:
    def __init__(self, args: argparse.Namespace, ext: str) -> None:
        self.ext, self.out = ext, args.output
        self.roots = input_roots(a for a in args.paths if a != "-")
        self.mode = ("overwrite" if args.overwrite else "append" if args.append
                     else "prepend" if args.prepend else "skip")

    def target(self, key: str) -> Path:
        return sidecar_path(Path(key), self.ext, roots=self.roots, out_dir=self.out)

    def select(self, inputs: list, tally: Tally) -> list[tuple[str, Any]]:
        todo, cleaned = [], set()
        for key, image, _error in inputs:
            target = self.target(key)
            if target.parent not in cleaned:
                cleaned.add(target.parent)
                remove_stale_temps(target.parent, self.ext)
            if self.mode == "skip" and target.exists():
                tally.skipped += 1
            else:
                todo.append((key, image))
        return todo

    def start(self, meta: dict[str, Any]) -> None:
        pass

    def write(self, record: CaptionRecord, tally: Tally) -> None:
        from core.captioning import write_sidecar

        if not record.ok:
            tally.fail(record.path, str(record.error))
            return
        try:
            changed = write_sidecar(self.target(record.path), record.caption, self.mode)
        except (OSError, Img2TextError) as exc:
            tally.fail(record.path, str(exc))
            return
        if changed:
            tally.written += 1
        else:
            tally.skipped += 1

    def close(self) -> None:
        pass

    def abort(self, exc: BaseException) -> None:
        pass


class _ImagefolderPlan:
    def __init__(self, args: argparse.Namespace, resuming: bool) -> None:
        self.out: Path = args.output
        self.link, self.resuming = args.link, resuming
        self.roots = input_roots(a for a in args.paths if a != "-")
        self.names: dict[str, Any] = {}
        self.stream: Any = None

    def select(self, inputs: list, tally: Tally) -> list[tuple[str, Any]]:
        from core.captioning import file_name_for, read_listed

        listed = read_listed(self.out) if self.resuming else set()
        todo: list[tuple[str, Any]] = []
        claimed: dict[str, str] = {}
        for key, image, _error in inputs:
            name = file_name_for(Path(key), self.out, mirror_name(Path(key), self.roots))
            if str(name) in claimed:
                tally.fail(key, f"would be {name} in {self.out}, as {claimed[str(name)]} already is; "
                           "caption the two folders into separate outputs")
                continue
            claimed[str(name)] = key
            if str(name) in listed:
                tally.skipped += 1
                continue
            self.names[key] = name
            todo.append((key, image))
        return todo

    def start(self, meta: dict[str, Any]) -> None:
        from core.captioning import open_metadata

        self.stream = open_metadata(self.out, append=self.resuming)

    def write(self, record: CaptionRecord, tally: Tally) -> None:
        from core.captioning import format_row, place_image

        if not record.ok:
            tally.fail(record.path, str(record.error))
            return
        name = self.names[record.path]
        try:
            place_image(Path(record.path), self.out, name, link=self.link)
        except OSError as exc:
            tally.fail(record.path, f"cannot place it in {self.out}: {exc}")
            return
        self.stream.write(format_row(name, record.caption))
        self.stream.flush()
        tally.written += 1

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()

    def abort(self, exc: BaseException) -> None:
        self.close()


class _WebdatasetPlan:
    def __init__(self, args: argparse.Namespace, resuming: bool) -> None:
        from core.cli.config_options import config_from_args
        from core.distributed import RayOptions

        self.out: Path = args.output
        self.resuming = resuming
        self.shard_size = config_from_args(RayOptions, args).shard_size
        self.images: dict[str, Any] = {}
        self.writer: Any = None
        self.start_index = 0

    def select(self, inputs: list, tally: Tally) -> list[tuple[str, Any]]:
        from core.captioning import drop_failed, existing_shards, iter_shard_meta

        done: set[str] = set()
        shards = existing_shards(self.out) if self.out.is_dir() else []
        if shards and not self.resuming:  # --overwrite (check_output refused anything else)
            for shard in shards:
                shard.unlink()
            shards = []
        if self.resuming:
            for shard in shards:
                drop_failed(shard)
            shards = existing_shards(self.out)
            for shard in shards:
                done.update(m["source"] for m in iter_shard_meta(shard))
        self.start_index = int(shards[-1].name[6:11]) + 1 if shards else 0
        self.unreadable: list[CaptionRecord] = []
        todo = []
        for key, image, error in inputs:
            if key in done:
                tally.skipped += 1
            elif error is not None:
                self.unreadable.append(CaptionRecord(key, "", error))
            else:
                self.images[key] = image
                todo.append((key, image))
        if not todo:  # no run to write them into: reported only
            for record in self.unreadable:
                tally.fail(record.path, str(record.error))
        return todo

    def start(self, meta: dict[str, Any]) -> None:
        from core.captioning import ShardWriter

        self.out.mkdir(parents=True, exist_ok=True)
        self.writer = ShardWriter(self.out, self.shard_size, meta, start=self.start_index)

    def write(self, record: CaptionRecord, tally: Tally) -> None:
        from core.captioning import Sample, image_extension

        for failed in self.unreadable:
            self.writer.add(Sample(failed.path, "", failed.error))
            tally.fail(failed.path, str(failed.error))
        self.unreadable = []
        if not record.ok:
            self.writer.add(Sample(record.path, "", record.error))
            tally.fail(record.path, str(record.error))
            return
        image = self.images.pop(record.path)
        try:
            data = Path(image).read_bytes() if isinstance(image, str) else bytes(image)
        except OSError as exc:
            self.writer.add(Sample(record.path, "", str(exc)))
            tally.fail(record.path, str(exc))
            return
        name = image if isinstance(image, str) else None
        self.writer.add(Sample(record.path, record.caption, None, data, image_extension(data, name)))
        tally.written += 1

    def close(self) -> None:
        self.writer.close()

    def abort(self, exc: BaseException) -> None:
        if self.writer is not None:
            self.writer.abort(exc)
