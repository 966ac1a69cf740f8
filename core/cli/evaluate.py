"""``img2text eval``: BLEU-1..4, ROUGE-L and CIDEr-D of captions against COCO references."""

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
    add_data,
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
        help="score captions against COCO reference captions (BLEU, ROUGE-L, CIDEr-D)",
        description="Score a captions file (from `img2text caption`) against COCO-format "
        "reference captions, or caption a data folder's split directly and score it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--captions", type=Path, help="captions file: .txt (text), .jsonl, .csv or .json (coco); or a folder of sidecar "
                     "caption files (.txt/.caption next to the images) or an imagefolder (DIR/metadata.jsonl)")
    add_data(p, split="val2017", group=src,
             help="data folder to caption SPLIT of now: a COCO layout (DIR/annotations/captions_SPLIT.json "
             "+ DIR/SPLIT/, or the notebook's tiny_coco_dataset-master/{annotations/captions.json, "
             "images/SPLIT/}) or a plain image folder (with --references)",
             split_help="split to caption with --data (ignored for a plain folder)")
    p.add_argument("--references", type=Path, default=None,
                   help="COCO captions JSON (default with --data: the caption annotations of its layout)")
    p.add_argument("--per-image", type=Path, default=None, help="write per-image scores here (JSONL)")
    p.add_argument("--tokenizer", choices=("auto", "java", "python"), default="auto",
                   help="PTB tokenization: the COCO toolkit's Java one, its pure-Python port, or "
                   "auto (java when it runs, else python; the output says which ran and why)")
    p.add_argument("--output-format", choices=("text", "json"), default="text", help="how to print the scores")
    add_batch_size(p, CAPTION_BATCH_SIZE)
    add_quiet(p, help="no progress bar while captioning --data")
    add_model_args(p)
    add_generation_args(p)
    p.set_defaults(func=run)


def _references_path(args: argparse.Namespace, found: Path | None) -> Path:
    """``--references``, else the captions file found in ``--data``.

    Raises:
        ConfigError: ``--captions`` without ``--references``.
        DatasetError: ``--data`` without caption annotations and without ``--references``.
    """
    if args.references is not None:
        return args.references
    if found is not None:
        return found
    if args.data is None:
        raise ConfigError("--references FILE (the COCO captions JSON) is required with --captions")
    from core.datasets import coco_layouts

    looked = "\n".join(f"  {layout.captions}" for layout in coco_layouts(args.data, args.split))
    raise DatasetError(f"{args.data}: no caption annotations for split {args.split!r}; looked for:\n"
                       f"{looked}\npass the references with --references FILE")


def _with_references(images: list[Path], refs: References, args: argparse.Namespace) -> list[Path]:
    """The images that have reference captions (matched by file name, then numeric stem).

    Raises:
        DatasetError: none of them has references (wrong split or references file).
    """
    keep = []
    for path in images:
        try:
            refs.image_id(str(path))
        except KeyError:
            continue
        keep.append(path)
    if not keep:
        raise DatasetError(f"{args.data}: none of its {len(images)} image(s) for split {args.split!r} has "
                           "reference captions; check --split and --references")
    if len(keep) < len(images):
        print(f"img2text: {len(images) - len(keep)} image(s) have no reference and were skipped",
              file=sys.stderr)
    return keep


def _caption_images(args: argparse.Namespace, images: list[Path]) -> tuple[list[str], list[str]]:
    """Caption ``images`` with the model options, with a progress bar."""
    from tqdm import tqdm

    from core.captioning import preflight_model

    gen = generation_kwargs(args)
    preflight_model(args.model)  # offline and not cached: refused before torch is imported
    from core.captioning import get_captioner, iter_caption_records

    quiet_transformers()
    captioner = get_captioner(args.model, device=args.device, dtype=args.dtype,
                              trust_remote_code=args.trust_remote_code)
    inputs = [(str(p), str(p)) for p in images]
    with tqdm(total=len(inputs), unit="img", desc="captioning", file=sys.stderr,
              disable=args.quiet) as bar:
        records = list(iter_caption_records(captioner, inputs, batch_size=args.batch_size,
                                            progress=lambda n, _t: bar.update(n - bar.n), **gen))
    return [r.path for r in records], [r.caption for r in records]


def _read_captions(path: Path) -> tuple[list[str], list[str]]:
    """(paths, captions) of the successful records of a captions file."""
    from core.captioning import read_done
    from core.datasets import is_caption_set, read_caption_set

    if is_caption_set(path):  # a folder of sidecar files, or an imagefolder's metadata.jsonl
        found = read_caption_set(path)
        return list(found), list(found.values())
    if not path.is_file():
        raise DatasetError(f"{path}: captions file not found; write one with `img2text caption -o FILE`")
    fmt = _EXT_FORMAT.get(path.suffix.lower(), "text")
    records = [r for r in read_done(path, fmt) if r.ok]
    return [r.path for r in records], [r.caption for r in records]


def _predictions(paths: list[str], texts: list[str], refs: References) -> dict[int, str]:
    """``{image_id: caption}``; captions without references, and repeats, are reported and dropped."""
    preds: dict[int, str] = {}
    unmatched = repeated = 0
    for path, text in zip(paths, texts, strict=True):
        try:
            image_id = refs.image_id(path)
        except KeyError:
            unmatched += 1
            continue
        if image_id in preds:
            repeated += 1  # e.g. the same file name in two sub-folders of a plain folder
            continue
        preds[image_id] = text
    if unmatched:
        print(f"img2text: {unmatched} caption(s) have no reference and were ignored", file=sys.stderr)
    if repeated:
        print(f"img2text: {repeated} caption(s) repeat an image already captioned; the first was kept",
              file=sys.stderr)
    return preds


def _write_per_image(path: Path, per_image: dict[int, dict[str, float]]) -> None:
    from core.fileio import atomic_write_text

    atomic_write_text(path, "".join(json.dumps({"image_id": image_id, **scores}) + "\n"
                                    for image_id, scores in per_image.items()))


def run(args: argparse.Namespace) -> int:
    from core.datasets import find_caption_images

    images, found = find_caption_images(args.data, args.split) if args.data is not None else ([], None)
    refs = References.from_coco_json(_references_path(args, found))
    if args.data is not None:
        paths, texts = _caption_images(args, _with_references(images, refs, args))
    else:
        paths, texts = _read_captions(args.captions)
    report = score_captions(_predictions(paths, texts, refs), refs, tokenizer=args.tokenizer)
    if args.per_image is not None:
        _write_per_image(args.per_image, report.per_image)
    if report.tokenizer_note:
        print(f"img2text: {report.tokenizer_note}", file=sys.stderr)
    if args.output_format == "json":
        print(json.dumps({"images": report.count, "tokenizer": report.tokenizer,
                          "tokenizer_note": report.tokenizer_note or None, **report.overall}, indent=2))
    else:
        print(f"images scored: {report.count}")
        print(f"tokenizer: {report.tokenizer} ({_TOKENIZER_NAMES[report.tokenizer]})")
        for name in METRICS:
            print(f"{name:8s} {report.overall[name]:.4f}")
    return 0
