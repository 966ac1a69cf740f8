"""One plan per training-set layout of ``img2text caption`` (``core.cli.caption_datasets`` runs them).

A plan picks the inputs still to caption (``select``: existing captions are skipped, counted in a
:class:`Tally`), then receives each caption record (``write``) and finishes (``close``) or
cleans up after an interruption (``abort``):

* :class:`SidecarPlan`: one caption file per image (``--sidecar``), skip/overwrite/append/prepend;
* :class:`ImagefolderPlan`: ``metadata.jsonl`` plus the images (``--format imagefolder``);
* :class:`WebdatasetPlan`: tar shards of ``--shard-size`` samples (``--format webdataset``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core import Img2TextError
from core.captioning import (
    CaptionRecord,
    input_roots,
    mirror_name,
    remove_stale_temps,
    sidecar_path,
)


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


class SidecarPlan:
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


class ImagefolderPlan:
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


class WebdatasetPlan:
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
