"""``img2text eval``: BLEU-1..4 and CIDEr-D of captions against COCO references."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core import ConfigError, DatasetError
from core.captioning import METRICS, References, score_captions
from core.cli.options import (
    CAPTION_BATCH_SIZE,
    add_batch_size,
    add_generation_args,
    add_model_args,
    add_quiet,
    generation_kwargs,
    quiet_transformers,
)

_TOKENIZER_NAMES = {"java": "the COCO toolkit's Stanford PTBTokenizer",
                    "python": "pure-Python port of the toolkit's PTBTokenizer"}
_EXT_FORMAT = {".jsonl": "jsonl", ".csv": "csv", ".json": "coco"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="score captions against COCO reference captions (BLEU, CIDEr-D)",
        description="Score a captions file (from `img2text caption`) against COCO-format "
        "reference captions, or caption a COCO split directly and score it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--captions", type=Path, help="captions file: .txt (text), .jsonl, .csv or .json (coco)")
    src.add_argument("--data", type=Path, help="COCO folder with annotations/ and SPLIT/: caption SPLIT now")
    p.add_argument("--split", default="val2017", help="split to use with --data")
    p.add_argument("--references", type=Path, default=None,
                   help="COCO captions JSON (default with --data: DATA/annotations/captions_SPLIT.json)")
    p.add_argument("--per-image", type=Path, default=None, help="write per-image scores here (JSONL)")
    p.add_argument("--tokenizer", choices=("auto", "java", "python"), default="auto",
                   help="PTB tokenization: the COCO toolkit's Java one, its pure-Python port, or "
                   "auto (java when installed)")
    p.add_argument("--output-format", choices=("text", "json"), default="text", help="how to print the scores")
    add_batch_size(p, CAPTION_BATCH_SIZE)
    add_quiet(p, help="no progress bar while captioning --data")
    add_model_args(p)
    add_generation_args(p)
    p.set_defaults(func=run)


def _predictions(args: argparse.Namespace, refs: References) -> dict[int, str]:
    from core.captioning import read_done

    if args.captions is not None:
        if not args.captions.is_file():
            raise DatasetError(f"{args.captions}: captions file not found")
        fmt = _EXT_FORMAT.get(args.captions.suffix.lower(), "text")
        records = [r for r in read_done(args.captions, fmt) if r.ok]
        paths = [r.path for r in records]
        texts = [r.caption for r in records]
    else:
        paths, texts = _caption_split(args, refs)
    preds: dict[int, str] = {}
    unmatched = 0
    for path, text in zip(paths, texts, strict=True):
        try:
            preds[refs.image_id(path)] = text
        except KeyError:
            unmatched += 1
    if unmatched:
        print(f"img2text: {unmatched} caption(s) have no reference and were ignored", file=sys.stderr)
    return preds


def _caption_split(args: argparse.Namespace, refs: References) -> tuple[list[str], list[str]]:
    """Caption the images of ``--data/--split`` that have references, with a progress bar."""
    from tqdm import tqdm

    from core.captioning import get_captioner, iter_caption_records

    folder = args.data / args.split
    if not folder.is_dir():
        raise DatasetError(f"{folder}: image folder not found")
    names = sorted(n for n in refs.file_ids if (folder / n).is_file())
    if not names:
        raise DatasetError(f"{folder}: none of the images in the references are here")
    gen = generation_kwargs(args)
    quiet_transformers()
    captioner = get_captioner(args.model, device=args.device, dtype=args.dtype)
    inputs = [(str(folder / n), str(folder / n)) for n in names]
    with tqdm(total=len(inputs), unit="img", desc="captioning", file=sys.stderr,
              disable=args.quiet) as bar:
        records = list(iter_caption_records(captioner, inputs, batch_size=args.batch_size,
                                            progress=lambda n, _t: bar.update(n - bar.n), **gen))
    return [r.path for r in records], [r.caption for r in records]


def run(args: argparse.Namespace) -> int:
    ref_path = args.references
    if ref_path is None:
        if args.data is None:
            raise ConfigError("--references is required with --captions")
        ref_path = args.data / "annotations" / f"captions_{args.split}.json"
    refs = References.from_coco_json(ref_path)
    report = score_captions(_predictions(args, refs), refs, tokenizer=args.tokenizer)
    if args.per_image is not None:
        with open(args.per_image, "w", encoding="utf-8") as fh:
            for image_id, scores in report.per_image.items():
                fh.write(json.dumps({"image_id": image_id, **scores}) + "\n")
    if args.output_format == "json":
        print(json.dumps({"images": report.count, "tokenizer": report.tokenizer, **report.overall}, indent=2))
    else:
        print(f"images scored: {report.count}")
        print(f"tokenizer: {report.tokenizer} ({_TOKENIZER_NAMES[report.tokenizer]})")
        for name in METRICS:
            print(f"{name:8s} {report.overall[name]:.4f}")
    return 0
