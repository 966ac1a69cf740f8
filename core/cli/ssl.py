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
from core.cli import EXIT_OK, EXIT_PARTIAL
from core.cli.config_options import add_config_options, config_from_args
from core.cli.options import (
    EMBED_BATCH_SIZE,
    ON_ERROR_CHOICES,
    add_batch_size,
    add_checkpoint,
    add_data,
    add_device,
    add_quiet,
)
from core.cli.tables import MAP_AT_K_FORMULA, results_table
from core.distributed import RayOptions
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
    for add in (_register_train, _register_embed, _register_search, _register_eval):
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


def _register_embed(ssl_sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    p = ssl_sub.add_parser(
        "embed", help="embed a folder of images into a search index", formatter_class=fmt,
        description="Embed every image of DIR (Tiny COCO split, notebook layout or plain image "
        "folder) with a trained encoder and write an index folder (index.json + the "
        "embeddings-<hash>.safetensors it names).")
    add_checkpoint(p)
    add_data(p, split="val2017")
    p.add_argument("--out", "-o", required=True, type=Path, metavar="INDEX",
                   help="index folder to write (with --ray: the OUT_DIR of parquet parts)")
    _add_embedding_run(p, on_error_help="unreadable images: skip and count them, or stop with an error")
    _add_index_options(p)
    add_quiet(p, help="no progress bar")
    ray = p.add_argument_group("Ray cluster", "--ray ADDRESS embeds the --data SOURCE (folder, list "
                               "of paths, tar shards, parquet) into parquet parts; docs/distributed.md")
    add_config_options(ray, RayOptions)
    ray.add_argument("--resume", action="store_true", help="--ray: skip the finished parts of --out "
                     "(the same settings only)")
    p.set_defaults(func=_run_embed)


def _add_index_options(p: argparse.ArgumentParser) -> None:
    """Backend flags of ``ssl embed`` (see docs/search.md)."""
    g = p.add_argument_group("index type", "exact search or a FAISS index with measured recall")
    g.add_argument("--kind", default="auto", help="exact, auto (from gallery size and --memory-budget) "
                   "or a FAISS factory string such as IVF4096,Flat, IVF4096,PQ32, HNSW32")
    g.add_argument("--memory-budget", default=None, metavar="SIZE", help="for --kind auto, e.g. 4GB")
    g.add_argument("--target-recall", type=float, default=0.95, help="recall@10 the search setting "
                   "(nprobe/efSearch) is tuned to reach on held-out queries")
    g.add_argument("--captions", type=Path, default=None, metavar="FILE", help="captions joined by path "
                   "from an `img2text caption` output (jsonl, csv or text) for `ssl search --text`")


def _register_search(ssl_sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    p = ssl_sub.add_parser(
        "search", help="find the indexed images most similar to an image", formatter_class=fmt,
        description="Top-k most similar images of an index, by cosine similarity of embeddings. "
        "The query is an indexed image (--id; left out of its own results) or any image file "
        "(--image; embedded with the index's checkpoint, whose sha256 is checked).")
    p.add_argument("--index", required=True, type=Path, metavar="INDEX",
                   help="index folder from `img2text ssl embed`")
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--image", type=Path, metavar="PATH", help="query image file")
    query.add_argument("--id", metavar="ID", help="id of an indexed image")
    query.add_argument("--text", metavar="WORDS", help="words to find in the indexed captions (BM25)")
    p.add_argument("-k", type=int, default=5, help="number of results")
    p.add_argument("--plot", type=Path, metavar="PNG", help="also save a figure of the query and its results")
    p.add_argument("--format", choices=_FORMATS, default="text", help="output format")
    add_checkpoint(p, required=False, help="encoder for --image; None means the one recorded in the index")
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
    add_checkpoint(p)
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


def _find_dataset(args: argparse.Namespace) -> Any:
    """The data set of ``--data/--split``, its warnings printed plainly; refuses mixed splits."""
    from core.datasets import find_dataset

    data, split = args.data, args.split
    if not data.is_dir():
        raise DatasetError(f"data folder not found: {data}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = find_dataset(data, split, strict=args.on_error == "raise")
    for w in caught:  # e.g. annotated images missing on disk: say so plainly, no warning noise
        print(f"img2text: warning: {w.message}", file=sys.stderr)
    if info.layout == "folder" and (data / "annotations").is_dir():
        # A COCO-looking folder whose split did not match would otherwise be indexed as a
        # plain folder of every image under it, all splits mixed: refuse instead.
        raise DatasetError(
            f"{data} has an annotations/ folder but no usable split {split!r}: expected "
            f"{data / 'annotations' / f'instances_{split}.json'} and {data / split}/ "
            "(check --split)"
        )
    return info


def _run_embed(args: argparse.Namespace) -> int:
    from core.search import EmbeddingIndex, load_checkpoint

    ray_options = config_from_args(RayOptions, args)
    if ray_options.ray is not None:
        return _run_embed_on_ray(args, ray_options)
    info = _find_dataset(args)
    encoder = load_checkpoint(args.checkpoint, device=args.device)
    index = EmbeddingIndex.build(encoder, info, batch_size=args.batch_size, device=args.device,
                                 on_error=args.on_error, progress=False if args.quiet else None,
                                 kind=args.kind, memory_budget=args.memory_budget,
                                 target_recall=args.target_recall)
    if args.captions is not None:
        print(f"captions for {index.add_captions(args.captions)} of {len(index)} images", file=sys.stderr)
    folder = index.save(args.out)
    print(f"index: {index.kind}, recall@10 {index.recall_at_10:.3f}", file=sys.stderr)
    where = f"{info.layout} layout" + (f", split {info.split}" if info.split else "")
    print(f"indexed {len(index)} images of {info.root} ({where}) with {encoder.weights_path} "
          f"(sha256 {encoder.sha256[:12]}...) -> {folder}")
    _warn_if_collapsed(index)
    for item in index.skipped:
        print(f"img2text: skipped {item['reason']}", file=sys.stderr)
    if index.skipped:
        print(f"img2text: {len(index.skipped)} unreadable images skipped", file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK


def _run_embed_on_ray(args: argparse.Namespace, options: RayOptions) -> int:
    """``--ray``: parquet parts (key, path, embedding, error) in --out; exit 1 when rows failed."""
    from core.distributed import embed_to_parts

    summary = embed_to_parts(str(args.data), args.out, checkpoint=args.checkpoint, device=args.device,
                             batch_size=args.batch_size, resume=args.resume,
                             progress=not args.quiet, **options.run_kwargs())
    return EXIT_PARTIAL if summary.errors else EXIT_OK


def _warn_if_collapsed(index: Any) -> None:
    from core.workflows import collapse_warning

    message = collapse_warning(index)
    if message:
        print(f"img2text: WARNING: {message}", file=sys.stderr)


def _run_search(args: argparse.Namespace) -> int:
    from core.search import EmbeddingIndex, load_checkpoint, validate_k

    validate_k(args.k)
    index = EmbeddingIndex.load(args.index)
    if args.image is not None:
        if not args.image.is_file():
            raise DatasetError(f"query image not found: {args.image}")
        # Without --checkpoint the index reloads its recorded weights; either way sha256 is checked.
        encoder = None if args.checkpoint is None else load_checkpoint(args.checkpoint, device=args.device)
        results = index.find_similar(args.image, args.k, encoder=encoder, device=args.device)
        query_desc: dict[str, Any] = {"image": str(args.image)}
        query_image: Any = args.image
    elif args.text is not None:
        results = index.find_text(args.text, args.k)
        query_desc, query_image = {"text": args.text}, None
    else:
        row = index.row_of_id(args.id)
        results = index.find_similar(index.image_ids[row], args.k)
        query_desc = {"image_id": index.image_ids[row], "path": str(index.paths[row])}
        query_image = index.paths[row]
    _warn_if_collapsed(index)
    if args.plot is not None and query_image is not None:
        from core.search import plot_retrieval  # loads matplotlib only here

        label = f"id {query_desc['image_id']}" if "image_id" in query_desc else "query"
        plot_retrieval(query_image, results, args.plot, query_label=label)
        print(f"plot: {args.plot}", file=sys.stderr)
    if args.format == "json":
        out = {"query": query_desc, "k": args.k, "index": str(args.index), "kind": index.kind,
               "recall_at_10": index.recall_at_10, "results": [r.to_dict() for r in results]}
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return EXIT_OK
    print("query: " + ", ".join(f"{k} {v}" for k, v in query_desc.items()))
    print(f"index: {index.kind}, recall@10 {index.recall_at_10:.3f}"
          + (" (scores: BM25)" if args.text is not None else ""))
    print(results_table(results))
    return EXIT_OK


def _run_eval(args: argparse.Namespace) -> int:
    from core.search import evaluate_retrieval, validate_k

    validate_k(args.k)
    info = _find_dataset(args)  # early, clear errors
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # already reported by the _find_dataset call above
        table = evaluate_retrieval(args.checkpoint, args.data, args.split, k=args.k,
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

    from core.search import embed_images, load_checkpoint

    step = max(1, len(paths) // HEALTH_SAMPLE)
    encoder = load_checkpoint(args.checkpoint, device=args.device)
    result = embed_images(encoder, paths[::step][:HEALTH_SAMPLE], batch_size=args.batch_size,
                          device=args.device, on_error="skip", progress=False)
    # collapse_warning reads only `.embeddings` of the index it is given.
    _warn_if_collapsed(SimpleNamespace(embeddings=result.embeddings))
