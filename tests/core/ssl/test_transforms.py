"""Augmentations: two views differ, each image gets its own parameters, eval is deterministic."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from core.ssl.transforms import (
    IMAGENET_MEAN,
    eval_transform,
    preprocessing_settings,
    train_transform,
)
from core.ssl.two_views import TwoViewDataset, collate_views
from tests.core.ssl.conftest import make_image


def test_two_views_differ_and_have_the_right_shape(tmp_path: Path) -> None:
    ds = TwoViewDataset([make_image(tmp_path / "a.png", 1)], img_size=32, seed=0)
    item = ds[0]
    assert item is not None
    v1, v2, idx = item
    assert v1.shape == v2.shape == (3, 32, 32) and idx == 0
    assert not torch.equal(v1, v2)


def test_each_image_in_a_batch_gets_its_own_random_parameters(tmp_path: Path) -> None:
    # The same picture eight times: identical outputs would mean shared augmentation parameters.
    path = make_image(tmp_path / "same.png", 3)
    ds = TwoViewDataset([path] * 8, img_size=32, seed=0)
    v1, v2, idx, skipped = collate_views([ds[i] for i in range(8)])
    assert v1.shape == (8, 3, 32, 32) and skipped == 0 and idx.tolist() == list(range(8))
    flat = torch.cat([v1, v2]).flatten(1)
    distinct = {tuple(row.tolist()) for row in flat}
    assert len(distinct) == 16


def test_views_are_reproducible_per_seed_and_epoch(tmp_path: Path) -> None:
    path = make_image(tmp_path / "a.png", 2)
    a, b = TwoViewDataset([path], 32, seed=5), TwoViewDataset([path], 32, seed=5)
    assert torch.equal(a[0][0], b[0][0])  # type: ignore[index]
    b.set_epoch(1)
    assert not torch.equal(a[0][0], b[0][0])  # type: ignore[index]
    assert not torch.equal(a[0][0], TwoViewDataset([path], 32, seed=6)[0][0])  # type: ignore[index]


def test_train_transform_is_the_notebook_pipeline() -> None:
    names = [type(t).__name__ for t in train_transform(64).transforms]
    assert names == ["RandomResizedCrop", "RandomHorizontalFlip", "ColorJitter", "RandomGrayscale",
                     "GaussianBlur", "ToTensor", "Normalize"]


def test_eval_transform_is_deterministic() -> None:
    img = Image.new("RGB", (80, 50), (200, 30, 30))
    tf = eval_transform(32)
    a, b = tf(img), tf(img)
    assert a.shape == (3, 32, 32) and torch.equal(a, b)
    settings = preprocessing_settings(32)
    assert settings["img_size"] == 32 and settings["mean"] == list(IMAGENET_MEAN)


def test_unreadable_image_is_skipped_and_counted(tmp_path: Path) -> None:
    good = make_image(tmp_path / "good.png", 1)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    ds = TwoViewDataset([good, bad], 16)
    with pytest.warns(UserWarning, match="bad.png"):
        items = [ds[0], ds[1]]
    assert items[1] is None
    v1, _, idx, skipped = collate_views(items)
    assert v1.shape[0] == 1 and idx.tolist() == [0] and skipped == 1
