"""``img2text caption``: caption files, folders or stdin; stream results; resume."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import IO

from tqdm import tqdm

from core.captioning.api import get_captioner
from core.captioning.captioner import DEFAULT_BATCH_SIZE
from core.captioning.outputs import FORMATS, CaptionRecord, ResultWriter, coco_image_id, read_done
from core.cli.options import (
    add_generation_args,
    add_model_args,
    generation_kwargs,
    quiet_transformers,
)
from core.errors import InvalidImageError
from core.images import DEFAULT_MAX_PIXELS, ImageInput, iter_image_files

PROGRESS_MIN = 4  # show a progress bar from this many images on


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "caption",
        help="caption image files, folders or stdin",
        description="Caption images. Folders are searched recursively for image files; '-' reads "
        "one image from stdin. Bad files are reported on stderr and skipped; exit status 1 "
        "means some failed.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders, or - for stdin")
    add_model_args(p)
    add_generation_args(p)
    out = p.add_argument_group("input and output")
    out.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="images per forward pass")
    out.add_argument("--format", choices=FORMATS, default="text",
                     help="text: PATH<TAB>CAPTION; jsonl; csv; coco: [{image_id, caption}] (COCO file names)")
    out.add_argument("--output", "-o", type=Path, default=None, help="write here instead of stdout")
    out.add_argument("--resume", action="store_true",
                     help="skip inputs already in --output and append the rest")
    out.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger images")
    out.add_argument("--no-recursive", action="store_true", help="do not descend into sub-folders")
    out.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=run)


def _key(path: str, fmt: str) -> str:
    return str(coco_image_id(path)) if fmt == "coco" else path


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def run(args: argparse.Namespace) -> int:
    if args.resume and args.output is None:
        raise ValueError("--resume needs --output FILE (the file to continue)")
    if args.batch_size < 1:
        raise ValueError("--batch-size must be >= 1")
    gen = generation_kwargs(args)
    stdin_data = sys.stdin.buffer.read() if "-" in args.paths else None
    paths = [str(p) for p in iter_image_files([p for p in args.paths if p != "-"],
                                              recursive=not args.no_recursive)]
    if stdin_data is not None:
        paths.append("-")
    existing = read_done(args.output, args.format) if args.resume else []
    done = {r.path for r in existing}
    if args.format == "coco":
        todo = []
        for p in paths:
            try:
                if p == "-" or _key(p, "coco") not in done:
                    todo.append(p)
            except ValueError:
                todo.append(p)  # reported as an error below
    else:
        todo = [p for p in paths if p not in done]
    if not todo:
        if not args.quiet:
            print(f"img2text: nothing to do ({len(done)} already captioned)", file=sys.stderr)
        return 0

    quiet_transformers()
    captioner = get_captioner(args.model, device=args.device, dtype=args.dtype)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        meta = {**captioner.info, "generation": gen, "format": args.format}
        args.output.with_name(args.output.name + ".meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        append = args.resume and args.format != "coco" and args.output.exists()
        stream: IO[str] = open(args.output, "a" if append else "w", encoding="utf-8", newline="")
    else:
        stream = sys.stdout
    writer = ResultWriter(stream, args.format, target=args.output,
                          existing=existing, header=not (args.resume and existing))
    failed = 0
    bar = tqdm(total=len(todo), unit="img", disable=args.quiet or len(todo) < PROGRESS_MIN,
               file=sys.stderr, desc="captioning")
    try:
        for chunk in _chunks(todo, args.batch_size):
            inputs: list[ImageInput] = [(stdin_data or b"") if p == "-" else p for p in chunk]
            results = captioner.caption_batch(
                inputs, batch_size=args.batch_size, errors="return", max_pixels=args.max_pixels, **gen
            )
            for path, result in zip(chunk, results, strict=True):
                if isinstance(result, InvalidImageError):
                    failed += 1
                    tqdm.write(f"img2text: skipped {result}", file=sys.stderr)
                    continue
                try:
                    writer.write(CaptionRecord(path, result))
                except ValueError as exc:  # e.g. not a COCO file name in --format coco
                    failed += 1
                    tqdm.write(f"img2text: skipped {path}: {exc}", file=sys.stderr)
            bar.update(len(chunk))
        writer.close()
    finally:
        bar.close()
        if stream is not sys.stdout:
            stream.close()
    if not args.quiet:
        print(f"img2text: captioned {len(todo) - failed} image(s), {failed} failed"
              + (f", {len(done)} already done" if done else ""), file=sys.stderr)
    return 1 if failed else 0
