"""Tiny stand-in encoders and generated images for the search tests (no training, no data)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision import transforms as T


@dataclass
class FakeEncoder:
    """Duck-types ``core.ssl.checkpoint.LoadedEncoder``."""

    encoder: nn.Module
    config: Any
    sha256: str
    weights_path: Path
    transform: Callable[[Image.Image], torch.Tensor]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class FakeConfig:
    img_size: int = 16
    backbone: str = "tiny"
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"img_size": self.img_size, "backbone": self.backbone, "seed": self.seed}


def make_encoder(seed: int = 0, dim: int = 8, sha: str | None = None) -> FakeEncoder:
    torch.manual_seed(seed)
    # A BatchNorm layer makes "eval mode is used" observable: train mode would change outputs.
    module = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 16 * 16, dim),
    )
    transform = T.Compose(
        [T.Resize(16), T.CenterCrop(16), T.ToTensor(), T.Normalize([0.5] * 3, [0.25] * 3)]
    )
    return FakeEncoder(
        module,
        FakeConfig(),
        sha or f"{seed:064x}",
        Path(f"/nowhere/w{seed}.safetensors"),
        transform,
    )


def random_image(seed: int, size: tuple[int, int] = (24, 20)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")
