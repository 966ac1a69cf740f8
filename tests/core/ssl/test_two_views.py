"""The two-view data sets of SSL training: decoded images for batched augmentation."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_decoded_dataset_caps_the_long_side_and_collates_a_list(tmp_path: Path) -> None:
    import torch
    from PIL import Image

    from core.ssl.two_views import DECODE_MAX_SIDE, DecodedDataset, collate_decoded

    Image.new("RGB", (DECODE_MAX_SIDE * 2, 300), (10, 20, 30)).save(tmp_path / "wide.png")
    Image.new("RGB", (40, 30), (200, 100, 0)).save(tmp_path / "small.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    ds = DecodedDataset([tmp_path / "wide.png", tmp_path / "small.png", tmp_path / "bad.png"])
    wide, small = ds[0], ds[1]
    assert wide is not None and small is not None
    assert wide[0].dtype == torch.uint8 and tuple(wide[0].shape) == (3, 150, DECODE_MAX_SIDE)
    assert tuple(small[0].shape) == (3, 30, 40) and small[0][:, 0, 0].tolist() == [200, 100, 0]
    with pytest.warns(UserWarning, match="bad.png"):
        assert ds[2] is None
    images, idx, skipped = collate_decoded([wide, None, small])
    assert [tuple(im.shape) for im in images] == [(3, 150, DECODE_MAX_SIDE), (3, 30, 40)]
    assert idx.tolist() == [0, 1] and skipped == 1
