"""Fixtures for the search tests: a tiny encoder and a small generated gallery."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.core.search.helpers import FakeEncoder, make_encoder, random_image


@pytest.fixture
def encoder() -> FakeEncoder:
    return make_encoder(0)


@pytest.fixture
def gallery(tmp_path: Path) -> list[Path]:
    """Six distinct PNGs plus an exact duplicate of the first (``img0_dup``)."""
    folder = tmp_path / "gallery"
    folder.mkdir()
    paths = []
    for i in range(6):
        p = folder / f"img{i}.png"
        random_image(i).save(p)
        paths.append(p)
    dup = folder / "img0_dup.png"
    random_image(0).save(dup)
    paths.append(dup)
    return paths
