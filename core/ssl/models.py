"""The SimCLR model: an encoder (image -> 256-d embedding h) and a projection head (h -> z)."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet18

from core.errors import ConfigError
from core.ssl.config import SSLConfig


class ConvEncoder(nn.Module):
    """The notebook's small CNN: three conv(3x3)+ReLU+maxpool(2) blocks and a linear layer.

    Each block pools before its ReLU: relu(maxpool(x)) == maxpool(relu(x)) exactly (both are
    monotone), but the ReLU then touches a quarter of the values, forward and backward (+12% per
    CPU training step, measured). Parameter names match the notebook's order (convs at 0, 3, 6).

    Shape:
        (B, 3, S, S) -> (B, embedding_dim); at S=128 the flatten is 128*16*16 = 32768.
    """

    def __init__(self, img_size: int = 128, embedding_dim: int = 256) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=3, padding=1),  # (B, 64, S, S)
            nn.MaxPool2d(2),  # (B, 64, S/2, S/2)
            nn.ReLU(inplace=True),
            nn.Conv2d(64, 128, kernel_size=3, padding=1),  # (B, 128, S/2, S/2)
            nn.MaxPool2d(2),  # (B, 128, S/4, S/4)
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 128, kernel_size=3, padding=1),  # (B, 128, S/4, S/4)
            nn.MaxPool2d(2),  # (B, 128, S/8, S/8)
            nn.ReLU(inplace=True),
        )
        side = img_size // 8  # each max-pool floors odd sizes
        self.fc = nn.Linear(128 * side * side, embedding_dim)  # (B, 128*S/8*S/8) -> (B, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


def resnet18_encoder(embedding_dim: int = 256) -> nn.Module:
    """ResNet-18 from scratch (no downloaded weights) with fc: 512 -> embedding_dim.

    Shape:
        (B, 3, S, S) -> (B, embedding_dim) for any S >= 32 (global average pooling).
    """
    net = resnet18(weights=None)
    net.fc = nn.Linear(net.fc.in_features, embedding_dim)
    return net


class SimCLRModel(nn.Module):
    """Encoder + projection head; the loss uses z, downstream search uses h."""

    def __init__(self, encoder: nn.Module, embedding_dim: int = 256, projection_dim: int = 64) -> None:
        super().__init__()
        self.encoder = encoder
        self.projector = nn.Sequential(
            nn.Linear(embedding_dim, embedding_dim),
            nn.ReLU(inplace=True),
            nn.Linear(embedding_dim, projection_dim),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed and project.

        Shape:
            x: (B, 3, S, S) -> h: (B, embedding_dim), z: (B, projection_dim), neither normalised.
        """
        h = self.encoder(x)
        return h, self.projector(h)


def build_encoder(config: SSLConfig, pretrained_weights: bool = False) -> nn.Module:
    """The encoder alone, as chosen by ``config.backbone`` (a pretrained one with its
    weights only when ``pretrained_weights``; else its architecture at random init)."""
    if config.pretrained_backbone:
        from core.ssl.backbone_model import PretrainedBackbone

        return PretrainedBackbone(config.backbone, pretrained_weights)
    if config.backbone == "conv":
        return ConvEncoder(config.img_size, config.embedding_dim)
    if config.backbone == "resnet18":
        return resnet18_encoder(config.embedding_dim)
    raise ConfigError(f"unknown backbone {config.backbone!r}; choose conv or resnet18")


def build_model(config: SSLConfig, pretrained_weights: bool = False) -> SimCLRModel:
    """A freshly initialised model (seed the torch RNG first for reproducible weights); a
    pretrained backbone starts from its weights with ``pretrained_weights`` (a new run)."""
    encoder = build_encoder(config, pretrained_weights)
    width = int(getattr(encoder, "dim", config.embedding_dim))
    return SimCLRModel(encoder, width, config.projection_dim)
