"""``img2text ssl train|embed|search|eval``: SimCLR training, an embedding index, its use.

``train`` has one option per ``SSLConfig`` field (generated, see ``core.cli.config_options``).
Setup problems (missing folders or files, a corrupt index, a checkpoint that does not match)
are project errors; ``core.cli.main`` prints them and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from core import DatasetError
from core.cli import EXIT_OK
from core.cli.config_options import add_config_options, config_from_args
from core.cli.options import (
    EMBED_BATCH_SIZE,
    ON_ERROR_CHOICES,
    add_batch_size,
    add_data,
    add_device,
    add_encoder_choice,
    add_quiet,
)
from core.cli.ssl_embed import find_dataset_or_fail, register_embed, warn_if_collapsed
from core.cli.tables import MAP_AT_K_FORMULA, results_table
from core.ssl import SSLConfig

_FORMATS = ("text", "json")
HEALTH_SAMPLE = 256  # images `ssl eval` embeds again to check the trained encoder for collapse
# Flags documented before the options were generated from SSLConfig; both names work.
TRAIN_ALIASES = {"data_dir": ["--data"], "out_dir": ["--out"], "num_epochs": ["--epochs"]}


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``ssl`` command group and its sub-commands to ``sub``."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    group = sub.add_parser("ssl", help="learn image embeddings without labels (SimCLR) and use them",
                           description="Self-supervised (SimCLR) image embeddings.", formatter_class=fmt)
    ssl_sub = group.add_subparsers(dest="ssl_command", required=True, metavar="SSL_COMMAND")
    for add in (_register_train, register_embed, _register_search, _register_eval):
        add(ssl_sub, fmt)


def _register_train(ssl_sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    p = ssl_sub.add_parser(
        "train", help="train a SimCLR encoder on a folder of images", formatter_class=fmt,
        description="Train a SimCLR image encoder. DIR may be Tiny COCO (annotations/ + SPLIT/), "
        "the original notebook's tiny_coco_dataset-master layout, or any folder of images. "
        "RUN_DIR receives checkpoint.safetensors, config.json, history.json and loss.png "
        "after every epoch. Every SSLConfig field has a flag.")
    add_config_options(p, SSLConfig, aliases=TRAIN_ALIASES, required=("data_dir", "out_dir"))
    add_quiet(p, help="no progress bars or per-epoch lines")
    p.set_defaults(func=_run_train)


def _register_search(ssl_sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    p = ssl_sub.add_parser(
        "search", help="find the indexed images most similar to an image", formatter_class=fmt,
        description="Top-k most similar images of an index, by cosine similarity of embeddings. "
        "The query is an indexed image (--id; left out of its own results) or any image file "
        "(--image; embedded with the index's encoder, whose sha256 is checked; a gallery file "
        "with the same bytes is reported as the same image, not as a neighbour) or text (--text; "
        "by meaning for an index built with a CLIP/SigLIP --encoder, by words over the captions, "
        "or both fused: --text-mode).")
    p.add_argument("--index", required=True, type=Path, metavar="INDEX",
                   help="index folder from `img2text ssl embed`")
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--image", type=Path, metavar="PATH", help="query image file")
    query.add_argument("--id", metavar="ID", help="id of an indexed image")
    query.add_argument("--text", metavar="WORDS", help="text to find: by meaning through a CLIP/SigLIP "
                       "index's text tower, by words in its captions (BM25), or both (--text-mode)")
    p.add_argument("--text-mode", choices=("semantic", "words", "hybrid"), default=None,
                   help="for --text: semantic (the text tower), words (FTS5 over captions) or hybrid "
                   "(reciprocal-rank fusion of both); None means hybrid when the index has both, "
                   "else whichever it has")
    p.add_argument("-k", type=int, default=5, help="number of results")
    p.add_argument("--plot", type=Path, metavar="PNG", help="also save a figure of the query and its results")
    p.add_argument("--format", choices=_FORMATS, default="text", help="output format")
    add_encoder_choice(p, required=False, help="SSL run for --image; neither flag means the encoder "
                       "recorded in the index")
    add_device(p)
    p.set_defaults(func=_run_search)


def _register_eval(ssl_sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    p = ssl_sub.add_parser(
        "eval", help="retrieval quality: trained encoder vs random init vs raw pixels",
        formatter_class=fmt,
        description="Leave-one-out retrieval on a labelled split: every image queries the others; "
        "relevant = shares a COCO instance category. Prints P@1, P@k, mAP@k and the chance level "
        f"for the trained encoder, the same architecture at random init and raw 32x32 pixels. "
        f"{MAP_AT_K_FORMULA}")
    add_encoder_choice(p)
    add_data(p, split="val2017", help="Tiny COCO folder (with annotations/)",
             split_help="held-out split to evaluate on")
    p.add_argument("-k", type=int, default=5, help="cut-off of P@k and mAP@k")
    p.add_argument("--format", choices=_FORMATS, default="text", help="output format")
    _add_embedding_run(p, on_error_help="unreadable images: skip them (for every method) or stop")
    add_quiet(p, help="no progress bars")
    p.set_defaults(func=_run_eval)


def _add_embedding_run(p: argparse.ArgumentParser, on_error_help: str) -> None:
    add_batch_size(p, EMBED_BATCH_SIZE)
    add_device(p)
    p.add_argument("--on-error", choices=ON_ERROR_CHOICES, default="skip", help=on_error_help)


def _run_train(args: argparse.Namespace) -> int:
    from core.ssl import train

    run_dir = train(config_from_args(SSLConfig, args), progress=not args.quiet)
    print(f"run folder: {run_dir}")
    return EXIT_OK


def _run_search(args: argparse.Namespace) -> int:
    from core.search import EmbeddingIndex, gallery_image, validate_k

    validate_k(args.k)
    index = EmbeddingIndex.load(args.index)
    same, mode = None, None
    if args.image is not None:
        same, results = _image_neighbours(index, args)
        query_desc: dict[str, Any] = {"image": str(args.image)}
        query_image: Any = args.image
    elif args.text is not None:
        mode = index.text_mode(args.text_mode)
        results = index.find_text(args.text, args.k, mode=mode, encoder=_given_encoder(args),
                                  device=args.device)
        query_desc, query_image = {"text": args.text}, None
        if mode == "words" and not index.has_captions:
            print("img2text: the index has no captions to search; build it with --caption or "
                  "--captions FILE (img2text ssl embed)", file=sys.stderr)
    else:
        row = index.row_of_id(args.id)
        results = index.find_similar(index.image_ids[row], args.k)
        query_desc = {"image_id": index.image_ids[row], "path": str(index.paths[row])}
        query_image = index.paths[row]
        if args.plot is not None:  # its file, or its member of a tar shard
            query_image = gallery_image(index, index.image_ids[row]) or query_image
    if mode != "words":  # words search ranks captions: the embeddings' health does not matter
        warn_if_collapsed(index)
    if args.plot is not None and query_image is not None:
        from core.search import plot_retrieval  # loads matplotlib only here

        label = f"id {query_desc['image_id']}" if "image_id" in query_desc else "query"
        plot_retrieval(query_image, results, args.plot, query_label=label)
        print(f"plot: {args.plot}", file=sys.stderr)
    return _report_search(args, index, query_desc, results, same, mode)


def _report_search(args: argparse.Namespace, index: Any, query_desc: dict[str, Any], results: list[Any],
                   same: Any, mode: str | None) -> int:
    """Print ``ssl search``'s answer as JSON or as a table."""
    if args.format == "json":
        out = {"query": query_desc, "k": args.k, "index": str(args.index), "kind": index.kind,
               "recall_at_10": index.recall_at_10, "results": [r.to_dict() for r in results]}
        if mode is not None:
            out["text_mode"] = mode
        # results holds only matches: fewer than k when fewer images' captions hold a query word
        if args.image is not None:
            out["same_image"] = same.to_dict() if same is not None else None
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return EXIT_OK
    print("query: " + ", ".join(f"{k} {v}" for k, v in query_desc.items()))
    if mode is not None:
        print(f"text mode: {mode}")
    if same is not None:
        print(f"same image in the index: id {same.image_id} ({same.path}), identical file "
              "(sha256); not counted among the neighbours")
    scores = {"words": "BM25", "semantic": "cosine", "hybrid": "reciprocal-rank fusion"}
    print(f"index: {index.kind}, recall@10 {index.recall_at_10:.3f}"
          + (f" (scores: {scores[mode]})" if mode is not None else ""))
    if mode == "words" and len(results) < args.k:  # only images that match come back
        print(f"{'no image matches' if not results else f'only {len(results)} of the {args.k} asked match'} "
              f"the words {args.text!r} (common words such as 'a' or 'on' do not count)")
    print(results_table(results))
    return EXIT_OK


def _image_neighbours(index: Any, args: argparse.Namespace) -> tuple[Any, list[Any]]:
    """``(the gallery copy of --image or None, its k neighbours)``, by ``find_neighbours``.

    The query is embedded here (with --checkpoint, else the index's recorded weights; either way
    the sha256 is checked), then the file's bytes tell which hit, if any, is the same image.
    """
    from core.search import embed_one
    from core.workflows import find_neighbours

    if not args.image.is_file():
        raise DatasetError(f"query image not found: {args.image}")
    given = _given_encoder(args)
    vector = embed_one(index.encoder_for_images(given), args.image, device=args.device)
    found = find_neighbours(index, vector, args.image.read_bytes(), args.k)
    return found.same, found.hits


def _given_encoder(args: argparse.Namespace) -> Any:
    """The encoder of --checkpoint or --encoder, or None (the index's recorded one)."""
    from core.search import load_index_encoder

    if args.checkpoint is None and args.encoder is None:
        return None
    return load_index_encoder(args.checkpoint, pretrained=args.encoder, device=args.device)


def _run_eval(args: argparse.Namespace) -> int:
    from core.search import evaluate_retrieval, validate_k

    validate_k(args.k)
    info = find_dataset_or_fail(args)  # early, clear errors
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # already reported by the _find_dataset call above
        table = evaluate_retrieval(args.checkpoint, args.data, args.split, encoder=args.encoder, k=args.k,
                                   batch_size=args.batch_size, device=args.device,
                                   on_error=args.on_error, progress=False if args.quiet else None)
    if args.format == "json":
        print(json.dumps({**table.to_dict(), "map_at_k_formula": MAP_AT_K_FORMULA}, indent=2))
    else:
        print(table.format_text())
        print(MAP_AT_K_FORMULA)
    _warn_if_encoder_collapsed(args, [r.path for r in info.records])
    return EXIT_OK


def _warn_if_encoder_collapsed(args: argparse.Namespace, paths: list[Any]) -> None:
    """``collapse_warning`` for the trained encoder, from at most ``HEALTH_SAMPLE`` of ``paths``.

    ``evaluate_retrieval`` does not return its embeddings, so a bounded, evenly spaced sample is
    embedded again (the warning's statistics use at most 512 rows anyway).
    """
    from types import SimpleNamespace

    from core.search import embed_images

    step = max(1, len(paths) // HEALTH_SAMPLE)
    encoder = _given_encoder(args)
    result = embed_images(encoder, paths[::step][:HEALTH_SAMPLE], batch_size=args.batch_size,
                          device=args.device, on_error="skip", progress=False)
    # collapse_warning reads only `.embeddings` of the index it is given.
    warn_if_collapsed(SimpleNamespace(embeddings=result.embeddings))
