"""SimCLR-style contrastive training of an image encoder (no labels needed).

Train with :func:`train` (or ``img2text ssl train``); load the result with :func:`load_encoder`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core._lazy import lazy_exports

if TYPE_CHECKING:  # the same names for type checkers; at run time each loads on first use
    from core.datasets import DatasetInfo, ImageRecord, find_dataset
    from core.ssl.checkpoint import LoadedEncoder, load_encoder, random_encoder
    from core.ssl.config import SSLConfig
    from core.ssl.loss import NTXentLoss, cross_view_loss, nt_xent_loss
    from core.ssl.models import SimCLRModel, build_model
    from core.ssl.runs import RunInfo, read_run
    from core.ssl.training import train
    from core.ssl.transforms import eval_transform, train_transform

# Lazy (core/_lazy.py): importing this package must not import torch (fast `img2text --help`).
__getattr__, __dir__ = lazy_exports(__name__, {
    "core.datasets": ("DatasetInfo", "ImageRecord", "find_dataset",),
    "core.ssl.checkpoint": ("LoadedEncoder", "load_encoder", "random_encoder",),
    "core.ssl.config": ("SSLConfig",),
    "core.ssl.loss": ("NTXentLoss", "cross_view_loss", "nt_xent_loss",),
    "core.ssl.models": ("SimCLRModel", "build_model",),
    "core.ssl.runs": ("RunInfo", "read_run",),
    "core.ssl.training": ("train",),
    "core.ssl.transforms": ("eval_transform", "train_transform",),
})

__all__ = [
    "DatasetInfo",
    "ImageRecord",
    "LoadedEncoder",
    "NTXentLoss",
    "RunInfo",
    "SSLConfig",
    "SimCLRModel",
    "build_model",
    "cross_view_loss",
    "eval_transform",
    "find_dataset",
    "load_encoder",
    "nt_xent_loss",
    "random_encoder",
    "read_run",
    "train",
    "train_transform",
]
