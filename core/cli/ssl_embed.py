"""``img2text ssl embed``: embed any image source into a search index, locally or on Ray.

Sources (``--data``): a Tiny COCO split, the notebook layout or any image folder; a text file of
image paths; webdataset tar shards (a glob or brace pattern); a parquet file or folder with a
path or an image-bytes column. Batch sources are read through ``core.datasets`` (the readers of
``img2text caption`` and of the Ray path). ``--caption`` captions every image during the build
with ``core.Captioner`` (``--model``), so ``img2text ssl search --text`` can find it by words.
With ``--ray`` the embeddings (and captions) are made on a Ray cluster as parquet parts in
``--out``, and the index is then built from the parts into ``--out`` without re-encoding.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from core import ConfigError, DatasetError
from core.cli import EXIT_OK, EXIT_PARTIAL
from core.cli.config_options import add_config_options, config_from_args
from core.cli.options import (
    CAPTION_BATCH_SIZE,
    DEFAULT_MODEL,
    DTYPE_CHOICES,
    EMBED_BATCH_SIZE,
    MODEL_ENV,
    ON_ERROR_CHOICES,
    add_batch_size,
    add_device,
    add_encoder_choice,
    add_quiet,
)
from core.distributed import RayOptions

ENCODER_DTYPES = ("auto", "float32", "int8")
PATTERN_CHARS = "*?[{"  # a --data that does not exist but holds these is a tar/parquet pattern


def register_embed(ssl_sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """Add ``ssl embed`` to the ``ssl`` sub-commands."""
    p = ssl_sub.add_parser(
        "embed", help="embed images (folder, list of paths, tar shards, parquet) into a search index",
        formatter_class=fmt,
        description="Embed every image of SOURCE with a trained encoder (--checkpoint) or a pretrained "
        "CLIP/SigLIP/DINOv2 one (--encoder; CLIP and SigLIP indexes can then be searched by meaning "
        "with `ssl search --text`) and write an index folder "
        "(index.json + the data files it names). SOURCE: a Tiny COCO split, the notebook layout or "
        "any image folder (recursive); a text file of image paths; webdataset tar shards as a glob or "
        "brace pattern ('shards/{00000..00099}.tar'); a parquet file or folder with a path or an "
        "image-bytes column (--path-column, --image-column, --key-column). With --ray the same "
        "sources are embedded on a Ray cluster into parquet parts in --out, and the index is built "
        "from those parts into --out.")
    add_encoder_choice(p)
    p.add_argument("--encoder-dtype", default="auto", choices=ENCODER_DTYPES,
                   help="a pretrained --encoder's dtype: auto = bfloat16 on a capable GPU, float32 on CPU; "
                   "int8 (CPU, opt-in): int8 image tower, ~1.4-2.4x faster (with AVX-512 VNNI/AMX it is "
                   "compiled at the first batch, tens of seconds); vectors differ slightly from float32 "
                   "(docs/search.md)")
    p.add_argument("--data", required=True, type=Path, metavar="SOURCE",
                   help="folder, text file of paths, tar shards (glob/brace pattern) or parquet")
    p.add_argument("--split", default="val2017", help="split folder for annotated layouts")
    p.add_argument("--out", "-o", required=True, type=Path, metavar="INDEX",
                   help="index folder to write (with --ray: also the OUT_DIR of the parquet parts)")
    add_batch_size(p, EMBED_BATCH_SIZE)
    add_device(p)
    p.add_argument("--on-error", choices=ON_ERROR_CHOICES, default="skip",
                   help="unreadable images: skip and count them, or stop with an error")
    add_index_options(p)
    _add_caption_options(p)
    add_quiet(p, help="no progress bar")
    ray = p.add_argument_group("Ray cluster and sources", "--ray ADDRESS embeds SOURCE on a Ray cluster "
                               "into parquet parts (docs/distributed.md); the parquet column flags "
                               "apply without --ray too")
    add_config_options(ray, RayOptions)
    ray.add_argument("--resume", action="store_true", help="--ray: skip the finished parts of --out "
                     "(the same settings only)")
    p.set_defaults(func=run_embed)


def add_index_options(p: argparse.ArgumentParser) -> None:
    """Backend flags of ``ssl embed`` (see docs/search.md)."""
    g = p.add_argument_group("index type", "exact search or a FAISS index with measured recall")
    g.add_argument("--kind", default="auto", help="exact, auto (from gallery size and --memory-budget) "
                   "or a FAISS factory string such as IVF4096,Flat, IVF4096,PQ32, HNSW32")
    g.add_argument("--memory-budget", default=None, metavar="SIZE", help="for --kind auto, e.g. 4GB")
    g.add_argument("--target-recall", type=float, default=0.95, help="recall@10 the search setting "
                   "(nprobe/efSearch, and the re-rank depth of PQ codes) is tuned to reach on "
                   "held-out queries")
    g.add_argument("--captions", type=Path, default=None, metavar="FILE", help="captions joined by path "
                   "from an `img2text caption` output (jsonl, csv or text), a folder of sidecar caption files "
                   "or an imagefolder (DIR/metadata.jsonl), for `ssl search --text`")


def _add_caption_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("captions", "--caption writes a caption per image into the index during "
                             "the build, for `img2text ssl search --text`")
    g.add_argument("--caption", action="store_true", help="caption every image with the captioning "
                   "model (with --ray: a caption run on the cluster into OUT/captions)")
    g.add_argument("--model", default=None, help="captioning model for --caption: hub id (id@revision "
                   f"pins a revision) or local save_pretrained folder; default: ${MODEL_ENV} or {DEFAULT_MODEL}")
    g.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES,
                   help="captioning model dtype: auto = bfloat16 on a capable GPU, float32 on CPU")
    g.add_argument("--caption-batch-size", type=int, default=CAPTION_BATCH_SIZE, metavar="N",
                   help="images per captioning forward pass")
    g.add_argument("--prompt", default=None, help="captioning prompt (default: the model family's; "
                   "see `img2text models`)")
    g.add_argument("--trust-remote-code", action="store_true",
                   help="let the captioning checkpoint run its own model code (opt-in)")


def find_dataset_or_fail(args: argparse.Namespace) -> Any:
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


def open_gallery(args: argparse.Namespace) -> tuple[Any, str]:
    """``(what EmbeddingIndex.build takes, a description)`` for ``--data``.

    A folder is a data set (``find_dataset``) unless it holds only tar or parquet files; a file
    or a pattern is a batch source (``core.datasets.open_source``).
    """
    from core.datasets import DatasetNotFoundError, open_source

    data, text = args.data, str(args.data)
    columns = config_from_args(RayOptions, args).run_kwargs()["columns"]
    if data.is_dir():
        try:
            info = find_dataset_or_fail(args)
        except DatasetNotFoundError:
            source = open_source(text, columns=columns)
            if source.kind == "folder":
                raise  # no images, no shards: the data set's message says what was looked for
        else:
            where = f"{info.layout} layout" + (f", split {info.split}" if info.split else "")
            return info, f"{info.root} ({where})"
    elif not data.exists() and not any(ch in text for ch in PATTERN_CHARS):
        raise DatasetError(f"data folder not found: {data} (nor a file of paths, tar shards, parquet "
                           "or a pattern of them)")
    else:
        source = open_source(text, columns=columns)
    return source, f"{source.location} ({source.kind} source, {len(source.shards)} shards)"


def caption_function(args: argparse.Namespace) -> Any:
    """``images -> captions`` with ``core.Captioner.caption_batch`` (None for an image it refused)."""
    import core
    from core.captioning import preflight_model
    from core.cli.options import quiet_transformers

    preflight_model(args.model)  # offline and not cached: refused before torch is imported
    quiet_transformers()
    captioner = core.get_captioner(args.model, device=args.device, dtype=args.dtype,
                                   trust_remote_code=args.trust_remote_code)
    captioner.options(prompt=args.prompt)  # a prompt the family does not take fails before any image

    def caption(images: Any) -> list[str | None]:
        out = captioner.caption_batch(images, batch_size=args.caption_batch_size, errors="return",
                                      prompt=args.prompt)
        return [c if isinstance(c, str) else None for c in out]

    return caption


def run_embed(args: argparse.Namespace) -> int:
    from core.search import EmbeddingIndex, load_index_encoder

    if args.caption_batch_size < 1:
        raise ConfigError(f"--caption-batch-size must be >= 1, got {args.caption_batch_size}")
    ray_options = config_from_args(RayOptions, args)
    if ray_options.ray is not None:
        return run_embed_on_ray(args, ray_options)
    gallery, where = open_gallery(args)
    encoder = load_index_encoder(args.checkpoint, pretrained=args.encoder, device=args.device,
                                 dtype=args.encoder_dtype)
    captioner = caption_function(args) if args.caption else None
    index = EmbeddingIndex.build(encoder, gallery, batch_size=args.batch_size, device=args.device,
                                 on_error=args.on_error, progress=False if args.quiet else None,
                                 kind=args.kind, memory_budget=args.memory_budget,
                                 target_recall=args.target_recall, caption_images=captioner)
    if captioner is not None:
        print(f"captions generated for {sum(1 for c in index.captions if c)} of {len(index)} images",
              file=sys.stderr)
    if args.captions is not None:
        print(f"captions for {index.add_captions(args.captions)} of {len(index)} images", file=sys.stderr)
    folder = index.save(args.out)
    print(f"index: {index.kind}, recall@10 {index.recall_at_10:.3f}", file=sys.stderr)
    print(f"indexed {len(index)} images of {where} with {encoder.weights_path} "
          f"(sha256 {encoder.sha256[:12]}...) -> {folder}")
    warn_if_collapsed(index)
    for item in index.skipped:
        print(f"img2text: skipped {item['reason']}", file=sys.stderr)
    if index.skipped:
        print(f"img2text: {len(index.skipped)} unreadable images skipped", file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK


def run_embed_on_ray(args: argparse.Namespace, options: RayOptions) -> int:
    """``--ray``: parquet parts (key, path, embedding, error) in --out, then the index built from
    them in --out; with ``--caption`` a caption run into OUT/captions first. Exit 1: error rows."""
    import contextlib

    from core.distributed import (
        CAPTIONS_DIR,
        build_index,
        caption_to_parts,
        connect,
        embed_to_parts,
        error_rows,
    )
    from core.search import parse_memory

    parse_memory(args.memory_budget)  # a bad budget fails before the cluster works
    if args.captions is not None and not args.captions.exists():
        raise DatasetError(f"--captions {args.captions}: file not found")
    run = {"resume": args.resume, "progress": not args.quiet, "verbose": args.verbose,
           **options.run_kwargs()}
    # With --caption both runs share one connection (one cluster start for --ray local).
    hold = connect(options.ray, timeout_s=options.ray_connect_timeout, verbose=args.verbose)
    with hold if args.caption else contextlib.nullcontext():
        summary = embed_to_parts(str(args.data), args.out, checkpoint=args.checkpoint,
                                 encoder=args.encoder, encoder_dtype=args.encoder_dtype, device=args.device,
                                 batch_size=args.batch_size, **run)
        if args.caption:
            from core.cli.options import quiet_transformers

            quiet_transformers()
            caption_to_parts(str(args.data), args.out / CAPTIONS_DIR, model=args.model, dtype=args.dtype,
                             device=args.device, batch_size=args.caption_batch_size, prompt=args.prompt,
                             trust_remote_code=args.trust_remote_code, **run)
    built = build_index(args.out, checkpoint=args.checkpoint, encoder=args.encoder, kind=args.kind,
                        memory_budget=args.memory_budget, target_recall=args.target_recall,
                        captions_file=args.captions,
                        captions_dir=args.out / CAPTIONS_DIR if args.caption else None)
    index = built.index
    print(f"index: {index.kind}, recall@10 {index.recall_at_10:.3f}", file=sys.stderr)
    captioned = sum(1 for c in index.captions if c)
    state = "built" if built.built else "already up to date (same parts and settings)"
    print(f"index of {len(index)} images ({captioned} with captions) {state} -> {built.folder}")
    warn_if_collapsed(index)
    if summary.errors:  # listed as without --ray, not only in the parts
        for key, why in error_rows(args.out):
            print(f"img2text: skipped {key}: {why}", file=sys.stderr)
    return EXIT_PARTIAL if summary.errors else EXIT_OK


def warn_if_collapsed(index: Any) -> None:
    """Print ``core.workflows.collapse_warning`` for ``index``, if any, on stderr."""
    from core.workflows import collapse_warning

    message = collapse_warning(index)
    if message:
        print(f"img2text: WARNING: {message}", file=sys.stderr)
