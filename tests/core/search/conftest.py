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


@pytest.fixture(scope="session")
def ann_gallery():  # type: ignore[no-untyped-def]
    """The 100,000 x 128 clustered gallery (unit rows) and its ids."""
    from tests.core.search.ann_data import clustered

    x = clustered()
    return x, list(range(len(x)))


@pytest.fixture(scope="session")
def ann_indexes(ann_gallery):  # type: ignore[no-untyped-def]
    """``{kind: EmbeddingIndex}`` for exact, Flat, IVF and HNSW over ``ann_gallery``, built once."""
    from core.search import EmbeddingIndex
    from tests.core.search.ann_data import HNSW_KIND, IVF_KIND

    x, ids = ann_gallery
    return {kind: EmbeddingIndex.from_arrays(x, ids, kind=kind)
            for kind in ("exact", "Flat", IVF_KIND, HNSW_KIND)}
