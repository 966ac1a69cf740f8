"""Generated data for the SSL tests: structured images and small COCO-style layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def make_image(path: Path, seed: int, size: int = 48) -> Path:
    """A structured image: stripes whose angle, frequency and colours depend on ``seed``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    angle = rng.uniform(0, np.pi)
    freq = rng.uniform(0.15, 0.6)
    wave = np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy)) > 0
    c1, c2 = rng.integers(0, 256, size=(2, 3))
    arr = np.where(wave[..., None], c1, c2).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode="RGB").save(path)
    return path


def make_folder(root: Path, n: int, size: int = 48) -> list[Path]:
    return [make_image(root / f"img_{i:03d}.png", seed=i, size=size) for i in range(n)]


def coco_json(files: list[str], cats_per_image: list[list[int]]) -> dict:
    images = [{"id": i + 1, "file_name": f, "width": 48, "height": 48} for i, f in enumerate(files)]
    anns = []
    for i, cats in enumerate(cats_per_image):
        for c in cats:
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": c,
                         "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0})
    categories = [{"id": c, "name": f"cat{c}", "supercategory": "x"} for c in (1, 2, 3)]
    return {"images": images, "annotations": anns, "categories": categories}


def captions_json(files: list[str]) -> dict:
    images = [{"id": i + 1, "file_name": f} for i, f in enumerate(files)]
    anns = [{"id": i + 1, "image_id": i + 1, "caption": f"picture number {i}"} for i in range(len(files))]
    return {"images": images, "annotations": anns}


def build_tiny_coco(root: Path, n: int = 6, splits: tuple[str, ...] = ("train2017",)) -> Path:
    """Tiny COCO as published: annotations/instances_S.json + S/ for each split."""
    for s, split in enumerate(splits):
        files = [make_image(root / split / f"{split}_{i}.png", seed=100 * s + i).name for i in range(n)]
        cats = [[1 + i % 3] for i in range(n)]
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco_json(files, cats)))
        (root / "annotations" / f"captions_{split}.json").write_text(json.dumps(captions_json(files)))
    return root


def build_notebook(root: Path, n: int = 5, split: str = "train2017") -> Path:
    """The notebook's layout: tiny_coco_dataset-master/{annotations/instances.json, images/S/}."""
    base = root / "tiny_coco_dataset-master"
    files = [make_image(base / "images" / split / f"n{i}.jpg", seed=50 + i).name for i in range(n)]
    (base / "annotations").mkdir(parents=True, exist_ok=True)
    (base / "annotations" / "instances.json").write_text(
        json.dumps(coco_json(files, [[2]] * n))
    )
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    make_folder(tmp_path / "imgs", 12)
    return tmp_path / "imgs"


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """The tensors here are tiny: one intra-op thread avoids spin-waiting on a shared 2-core box."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
