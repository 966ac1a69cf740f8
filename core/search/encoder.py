"""What search needs from an encoder: the shape of ``core.ssl.checkpoint.LoadedEncoder``.

Search only reads these attributes, so a structural ``Protocol`` keeps it testable with tiny
``nn.Module`` stand-ins and free of an import cycle with ``core.ssl``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from PIL import Image
from torch import nn

from core.errors import CheckpointError


class EncoderLike(Protocol):
    """A loaded encoder: the module plus what identifies it and its eval transform."""

    @property
    def encoder(self) -> nn.Module: ...

    @property
    def config(self) -> Any: ...

    @property
    def sha256(self) -> str: ...

    @property
    def weights_path(self) -> Path: ...

    @property
    def transform(self) -> Callable[[Image.Image], Any]: ...  # a tensor (or a processor's dict)


def config_dict(encoder: EncoderLike) -> dict[str, Any]:
    """The encoder's config as a JSON-ready dict (``to_dict()`` when it has one)."""
    config = encoder.config
    if config is None:
        return {}
    if hasattr(config, "to_dict"):
        return dict(config.to_dict())
    if isinstance(config, dict):
        return dict(config)
    return dict(vars(config))


def describe_preprocessing(encoder: EncoderLike) -> dict[str, Any]:
    """Record the deterministic eval transform, so an index says how its images were prepared."""
    recorded = getattr(encoder, "preprocessing", None)  # a pretrained encoder's processor settings
    if isinstance(recorded, dict):
        return dict(recorded)
    cfg = config_dict(encoder)
    return {
        "img_size": cfg.get("img_size"),
        "transform": " ".join(repr(encoder.transform).split()),
        "l2_normalized": True,
    }


def load_checkpoint(
    checkpoint: str | Path, device: str | torch.device | None = None
) -> EncoderLike:
    """Load an SSL run folder or weights file through ``core.ssl.checkpoint.load_encoder``.

    Raises:
        FileNotFoundError: ``checkpoint`` does not exist.
        CheckpointError: it exists but is not a usable encoder checkpoint.
    """
    path = Path(checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        from core.ssl.checkpoint import load_encoder
    except ImportError as exc:  # core.ssl not installed/built in this checkout
        raise CheckpointError(
            f"cannot load {path}: core.ssl.checkpoint is unavailable ({exc})"
        ) from exc
    return load_encoder(path, device=device)  # type: ignore[no-any-return]
