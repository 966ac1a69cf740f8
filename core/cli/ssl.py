"""`img2text ssl ...`: contrastive (SimCLR) training; `embed`/`search`/`eval` come from ssl_search."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli import EXIT_OK
from core.devices import DEVICE_HELP
from core.ssl.config import AUGMENTS, BACKBONES, LOSSES, SSLConfig


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``ssl`` command group and its sub-commands to ``sub``."""
    group = sub.add_parser(
        "ssl",
        help="learn image embeddings without labels (SimCLR) and use them",
        description="Self-supervised (SimCLR) image embeddings.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ssl_sub = group.add_subparsers(dest="ssl_command", required=True, metavar="SSL_COMMAND")
    _register_train(ssl_sub)
    # embed/search/eval live in their own module (owned by the search work).
    from core.cli import ssl_search

    ssl_search.register(ssl_sub)


def _register_train(ssl_sub: argparse._SubParsersAction) -> None:
    d = SSLConfig()
    p = ssl_sub.add_parser(
        "train",
        help="train a SimCLR encoder on a folder of images",
        description="Train a SimCLR image encoder. DIR may be Tiny COCO (annotations/ + SPLIT/), "
        "the original notebook's tiny_coco_dataset-master layout, or any folder of images. "
        "RUN_DIR receives checkpoint.safetensors, config.json, history.json and loss.png "
        "after every epoch.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", required=True, type=Path, metavar="DIR", help="data folder")
    p.add_argument("--split", default=d.split, help="split folder for annotated layouts")
    p.add_argument("--out", required=True, type=Path, metavar="RUN_DIR", help="run folder to write")
    p.add_argument("--epochs", type=int, default=d.num_epochs, help="number of epochs")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="images per batch (>= 2)")
    p.add_argument("--img-size", type=int, default=d.img_size, help="square input side in pixels")
    p.add_argument("--temperature", type=float, default=d.temperature, help="loss temperature")
    p.add_argument("--projection-dim", type=int, default=d.projection_dim, help="projection head width")
    p.add_argument("--lr", type=float, default=d.lr, help="AdamW learning rate")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay")
    p.add_argument("--backbone", choices=BACKBONES, default=d.backbone, help="encoder architecture")
    p.add_argument(
        "--loss",
        choices=LOSSES,
        default=d.loss,
        help="nt_xent: symmetric SimCLR over 2N views; cross_view: the notebook's one-way loss",
    )
    p.add_argument("--seed", type=int, default=d.seed, help="random seed")
    p.add_argument("--device", default=d.device, help=DEVICE_HELP)
    p.add_argument("--workers", type=int, default=d.workers, help="DataLoader worker processes")
    p.add_argument("--eval-k", type=int, default=d.eval_k, help="k of the held-out precision@k")
    p.add_argument(
        "--augment",
        choices=AUGMENTS,
        default=d.augment,
        help="loader: per-image PIL views in the DataLoader (the notebook's); batched: views made on "
        "the training device in one pass per batch; auto: batched on CUDA, loader elsewhere",
    )
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=d.channels_last,
        help="NHWC memory layout for the conv layers (same maths, faster kernels)",
    )
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR's last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from core.ssl.train import train

    config = SSLConfig(
        data_dir=args.data,
        split=args.split,
        img_size=args.img_size,
        batch_size=args.batch_size,
        num_epochs=args.epochs,
        temperature=args.temperature,
        projection_dim=args.projection_dim,
        lr=args.lr,
        weight_decay=args.weight_decay,
        backbone=args.backbone,
        loss=args.loss,
        seed=args.seed,
        device=args.device,
        workers=args.workers,
        out_dir=args.out,
        eval_k=args.eval_k,
        resume=args.resume,
        augment=args.augment,
        channels_last=args.channels_last,
    )
    run_dir = train(config, progress=not args.quiet)
    print(f"run folder: {run_dir}")
    return EXIT_OK
