"""`img2text ssl embed|search|eval`: build an embedding index, query it, score retrieval.

Registered by ``core.cli.ssl`` under the ``img2text ssl`` group. Setup problems (missing
folders or files, a corrupt index, a checkpoint that does not match) are raised as
``ValueError``/``FileNotFoundError``/``CheckpointError``; ``core.cli.main`` prints them and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from core.cli import EXIT_OK, EXIT_PARTIAL
from core.devices import DEVICE_HELP

_FORMATS = ("text", "json")


def register(ssl_sub: argparse._SubParsersAction) -> None:
    """Add ``embed``, ``search`` and ``eval`` to the ``img2text ssl`` sub-parsers."""
    from core.search.embed import DEFAULT_BATCH_SIZE, ON_ERROR_CHOICES

    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = ssl_sub.add_parser(
        "embed",
        help="embed a folder of images into a search index",
        description="Embed every image of DIR (Tiny COCO split, notebook layout or plain image "
        "folder) with a trained encoder and write an index folder (index.json + the "
        "embeddings-<hash>.safetensors it names).",
        formatter_class=fmt,
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        type=Path,
        metavar="RUN_DIR",
        help="SSL run folder or .safetensors file",
    )
    p.add_argument("--data", required=True, type=Path, metavar="DIR", help="data folder")
    p.add_argument("--split", default="val2017", help="split folder for annotated layouts")
    p.add_argument("--out", required=True, type=Path, metavar="INDEX", help="index folder to write")
    p.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="images per forward pass"
    )
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument(
        "--on-error",
        choices=ON_ERROR_CHOICES,
        default="skip",
        help="unreadable images: skip and count them, or stop with an error",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_embed)

    p = ssl_sub.add_parser(
        "search",
        help="find the indexed images most similar to an image",
        description="Top-k most similar images of an index, by cosine similarity of embeddings. "
        "The query is an indexed image (--id; left out of its own results) or any image file "
        "(--image; embedded with the index's checkpoint, whose sha256 is checked).",
        formatter_class=fmt,
    )
    p.add_argument(
        "--index",
        required=True,
        type=Path,
        metavar="INDEX",
        help="index folder from `img2text ssl embed`",
    )
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--image", type=Path, metavar="PATH", help="query image file")
    query.add_argument("--id", metavar="ID", help="id of an indexed image")
    p.add_argument("-k", type=int, default=5, help="number of results")
    p.add_argument(
        "--plot", type=Path, metavar="PNG", help="also save a figure of the query and its results"
    )
    p.add_argument("--format", choices=_FORMATS, default="text", help="output format")
    p.add_argument(
        "--checkpoint",
        type=Path,
        metavar="RUN_DIR",
        help="encoder for --image; None means the one recorded in the index",
    )
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.set_defaults(func=_run_search)

    p = ssl_sub.add_parser(
        "eval",
        help="retrieval quality: trained encoder vs random init vs raw pixels",
        description="Leave-one-out retrieval on a labelled split: every image queries the others; "
        "relevant = shares a COCO instance category. Prints P@1, P@k, mAP@k and the chance level "
        "for the trained encoder, the same architecture at random init and raw 32x32 pixels.",
        formatter_class=fmt,
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        type=Path,
        metavar="RUN_DIR",
        help="SSL run folder or .safetensors file",
    )
    p.add_argument(
        "--data",
        required=True,
        type=Path,
        metavar="DIR",
        help="Tiny COCO folder (with annotations/)",
    )
    p.add_argument("--split", default="val2017", help="held-out split to evaluate on")
    p.add_argument("-k", type=int, default=5, help="cut-off of P@k and mAP@k")
    p.add_argument("--format", choices=_FORMATS, default="text", help="output format")
    p.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="images per forward pass"
    )
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument(
        "--on-error",
        choices=ON_ERROR_CHOICES,
        default="skip",
        help="unreadable images: skip them (for every method) or stop",
    )
    p.set_defaults(func=_run_eval)


def _find_dataset(data: Path, split: str, strict: bool) -> Any:
    from core.ssl.data import find_dataset

    if not data.is_dir():
        raise FileNotFoundError(f"data folder not found: {data}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = find_dataset(data, split, strict=strict)
    for w in caught:  # e.g. annotated images missing on disk: say so plainly, no warning noise
        print(f"img2text: warning: {w.message}", file=sys.stderr)
    if info.layout == "folder" and (data / "annotations").is_dir():
        # A COCO-looking folder whose split did not match would otherwise be indexed as a
        # plain folder of every image under it, all splits mixed: refuse instead.
        raise FileNotFoundError(
            f"{data} has an annotations/ folder but no usable split {split!r}: expected "
            f"{data / 'annotations' / f'instances_{split}.json'} and {data / split}/ "
            "(check --split)"
        )
    return info


def _run_embed(args: argparse.Namespace) -> int:
    from core.search import EmbeddingIndex
    from core.search.encoder import load_checkpoint

    info = _find_dataset(args.data, args.split, strict=args.on_error == "raise")
    encoder = load_checkpoint(args.checkpoint, device=args.device)
    index = EmbeddingIndex.build(
        encoder,
        info,
        batch_size=args.batch_size,
        device=args.device,
        on_error=args.on_error,
        progress=False if args.quiet else None,
    )
    folder = index.save(args.out)
    where = f"{info.layout} layout" + (f", split {info.split}" if info.split else "")
    print(
        f"indexed {len(index)} images of {info.root} ({where}) with {encoder.weights_path} "
        f"(sha256 {encoder.sha256[:12]}...) -> {folder}"
    )
    for item in index.skipped:
        print(f"img2text: skipped {item['reason']}", file=sys.stderr)
    if index.skipped:
        print(f"img2text: {len(index.skipped)} unreadable images skipped", file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK


def _run_search(args: argparse.Namespace) -> int:
    from core.search import EmbeddingIndex
    from core.search.encoder import load_checkpoint
    from core.search.topk import validate_k

    validate_k(args.k)
    index = EmbeddingIndex.load(args.index)
    if args.image is not None:
        if not args.image.is_file():
            raise FileNotFoundError(f"query image not found: {args.image}")
        # Without --checkpoint the index reloads its recorded weights; either way sha256 is checked.
        encoder = None
        if args.checkpoint is not None:
            encoder = load_checkpoint(args.checkpoint, device=args.device)
        results = index.find_similar(args.image, args.k, encoder=encoder, device=args.device)
        query_desc: dict[str, Any] = {"image": str(args.image)}
        query_image: Any = args.image
    else:
        row = index.row_of_id(args.id)
        results = index.find_similar(index.image_ids[row], args.k)
        query_desc = {"image_id": index.image_ids[row], "path": str(index.paths[row])}
        query_image = index.paths[row]
    if args.plot is not None:
        from core.search.plot import plot_retrieval

        label = f"id {query_desc['image_id']}" if "image_id" in query_desc else "query"
        plot_retrieval(query_image, results, args.plot, query_label=label)
        print(f"plot: {args.plot}", file=sys.stderr)
    if args.format == "json":
        out = {
            "query": query_desc,
            "k": args.k,
            "index": str(args.index),
            "results": [r.to_dict() for r in results],
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return EXIT_OK
    print("query: " + ", ".join(f"{k} {v}" for k, v in query_desc.items()))
    print(f"{'rank':>4} {'score':>6}  {'image id':<14} {'path':<40} caption")
    for r in results:
        caption = r.captions[0] if r.captions else ""
        print(f"{r.rank:>4} {r.score:>6.3f}  {r.image_id!s:<14} {r.path!s:<40} {caption}")
    return EXIT_OK


def _run_eval(args: argparse.Namespace) -> int:
    from core.search.evaluate import evaluate_retrieval
    from core.search.topk import validate_k

    validate_k(args.k)
    if not args.data.is_dir():
        raise FileNotFoundError(f"data folder not found: {args.data}")
    _find_dataset(args.data, args.split, strict=args.on_error == "raise")  # early, clear errors
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # already reported by the _find_dataset call above
        table = evaluate_retrieval(
            args.checkpoint,
            args.data,
            args.split,
            k=args.k,
            batch_size=args.batch_size,
            device=args.device,
            on_error=args.on_error,
        )
    if args.format == "json":
        print(json.dumps(table.to_dict(), indent=2))
    else:
        print(table.format_text())
    return EXIT_OK
