"""Small generated images for the reliability tests (no third-party images, nothing committed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def image(seed: int, size: int = 32) -> Image.Image:
    """Stripes whose angle, frequency and colours depend on ``seed`` (distinct, compressible)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    angle, freq = rng.uniform(0, np.pi), rng.uniform(0.15, 0.6)
    wave = np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy)) > 0
    c1, c2 = rng.integers(0, 256, size=(2, 3))
    return Image.fromarray(np.where(wave[..., None], c1, c2).astype(np.uint8), mode="RGB")


def make_images(folder: Path, n: int, size: int = 32, fmt: str = "png", start: int = 0) -> list[Path]:
    """``n`` files ``img_00000.<fmt>``... in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        path = folder / f"img_{i:05d}.{fmt}"
        image(i, size).save(path)
        paths.append(path)
    return paths
