"""Augmentations for the two SimCLR views and the deterministic eval transform.

Every call of the train transform draws fresh random parameters (torchvision's transforms sample
per call), so two views of one image, and views of different images, are augmented independently.
"""

from __future__ import annotations

from typing import Any

from torchvision import transforms as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def preprocessing_settings(img_size: int) -> dict[str, Any]:
    """What a user of the weights needs to reproduce the input pipeline; saved with checkpoints."""
    return {
        "img_size": int(img_size),
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "resize": "Resize(img_size) + CenterCrop(img_size)",
    }


def train_transform(img_size: int) -> T.Compose:
    """One random SimCLR view, exactly the notebook's pipeline.

    Shape:
        PIL RGB image of any size -> float tensor (3, img_size, img_size), ImageNet-normalised.
    """
    return T.Compose(
        [
            T.RandomResizedCrop(img_size, scale=(0.2, 1.0)),
            T.RandomHorizontalFlip(0.5),
            # The notebook applied colour jitter to every view (no RandomApply); kept as is.
            T.ColorJitter(0.4, 0.4, 0.4, 0.1),
            T.RandomGrayscale(0.2),
            T.GaussianBlur(kernel_size=9),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def eval_transform(img_size: int) -> T.Compose:
    """Deterministic preprocessing for embedding: resize the short side, centre crop, normalise.

    Shape:
        PIL RGB image of any size -> float tensor (3, img_size, img_size).
    """
    return T.Compose(
        [
            T.Resize(img_size),
            T.CenterCrop(img_size),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
