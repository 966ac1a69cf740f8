"""Two augmented views per image for contrastive training: the torch datasets and their collate functions.

Augmentation randomness is derived from ``(seed, epoch, index)`` instead of the global torch RNG,
so a run gives the same views whatever the number of DataLoader workers, and a resumed run sees
exactly the views an uninterrupted one would have seen.

Unreadable images (deleted or corrupted after discovery) do not stop an epoch: the item comes back
as ``None``, :func:`collate_views` drops it and reports how many were skipped, and the trainer
counts them per epoch (``history.json``: ``skipped_images``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from core.errors import InvalidImageError
from core.images import load_image
from core.ssl.transforms import train_transform

ViewItem = tuple[torch.Tensor, torch.Tensor, int]


def _load_or_warn(path: Path) -> Image.Image | None:
    """The image as RGB, or None with a warning when it cannot be read (the epoch goes on)."""
    try:
        return load_image(path)
    except InvalidImageError as exc:
        warnings.warn(f"skipping unreadable image: {exc}", stacklevel=3)
        return None


class TwoViewDataset(Dataset):
    """Each item is two independently augmented views of one image and its index.

    Args:
        paths: image files.
        img_size: side of the square views.
        seed: base seed of the augmentation randomness.
        transform: per-view transform (defaults to the SimCLR train transform).

    Shape:
        item: (view1 (3, S, S), view2 (3, S, S), index) or None for an unreadable image.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        img_size: int,
        seed: int = 0,
        transform: Callable[[Image.Image], torch.Tensor] | None = None,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.seed = int(seed)
        self.epoch = 0
        self.transform = transform or train_transform(img_size)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentations to draw (call before iterating)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> ViewItem | None:
        image = _load_or_warn(self.paths[index])
        if image is None:
            return None
        # A private RNG stream per (seed, epoch, index); fork_rng leaves the caller's RNG alone.
        item_seed = (self.seed * 1_000_003 + self.epoch) * 10_000_019 + index
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(item_seed % (2**63))
            view1 = self.transform(image)
            view2 = self.transform(image)
        return view1, view2, index


def collate_views(
    items: list[ViewItem | None],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Stack the readable items and count the unreadable ones.

    Shape:
        -> views1 (B, 3, S, S), views2 (B, 3, S, S), indices (B,), skipped count.
    """
    good = [it for it in items if it is not None]
    skipped = len(items) - len(good)
    if not good:
        empty = torch.empty(0)
        return empty, empty, torch.empty(0, dtype=torch.long), skipped
    v1 = torch.stack([it[0] for it in good])
    v2 = torch.stack([it[1] for it in good])
    idx = torch.tensor([it[2] for it in good], dtype=torch.long)
    return v1, v2, idx, skipped


# Long-side cap of decoded images for batched augmentation: the batch is padded to its largest
# image, so one huge photo must not blow up the (B, 3, H, W) tensor; COCO images are <= 640 px.
DECODE_MAX_SIDE = 1024

DecodedItem = tuple[torch.Tensor, int]


class DecodedDataset(Dataset):
    """Each item is one image as a ``(3, H, W)`` uint8 tensor; augmentation happens later, batched.

    Used with ``SSLConfig.augment="batched"`` (:mod:`core.ssl.gpu_augment`): the loader only
    decodes (same rules and caps as everywhere, via :func:`core.images.load_image`) and the
    training device draws the views.

    Shape:
        item: (image (3, H, W) uint8 with max(H, W) <= DECODE_MAX_SIDE, index) or None.
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = [Path(p) for p in paths]

    def set_epoch(self, epoch: int) -> None:
        """No per-item randomness here; present so both datasets share the trainer's calls."""

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> DecodedItem | None:
        from torchvision.transforms.functional import pil_to_tensor

        image = _load_or_warn(self.paths[index])
        if image is None:
            return None
        if max(image.size) > DECODE_MAX_SIDE:
            image.thumbnail((DECODE_MAX_SIDE, DECODE_MAX_SIDE), Image.Resampling.BICUBIC)
        return pil_to_tensor(image), index


def collate_decoded(items: list[DecodedItem | None]) -> tuple[list[torch.Tensor], torch.Tensor, int]:
    """Keep the readable images as a list (their sizes differ) and count the unreadable ones.

    Shape:
        -> B images (3, H_i, W_i) uint8, indices (B,), skipped count.
    """
    good = [it for it in items if it is not None]
    idx = torch.tensor([it[1] for it in good], dtype=torch.long)
    return [it[0] for it in good], idx, len(items) - len(good)
