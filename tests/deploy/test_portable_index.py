"""A portable index copy (core.search.portable) searches by image after its encoder, images and
original index are gone and the copy itself has moved: what a Space or a container gets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.search import EmbeddingIndex, copy_portable
from core.search.portable import ENCODER_DIR, IMAGES_DIR
from tests.browser.support import AppData


def _own_index(apps_data: AppData, base: Path) -> Path:
    """An index whose run and gallery live under ``base`` (so the test can delete them)."""
    from core.ssl import ImageRecord, load_encoder

    shutil.copytree(apps_data.run, base / "run")
    shutil.copytree(apps_data.gallery, base / "gallery")
    records = [ImageRecord(p.stem, p, [f"caption of {p.stem}"], []) for p in sorted((base / "gallery").glob("*.png"))]
    index = EmbeddingIndex.build(load_encoder(base / "run"), records, data_root=base / "gallery", device="cpu",
                                 progress=False)
    return index.save(base / "index")


def _hits(index: EmbeddingIndex, query: Path) -> list[tuple[object, float]]:
    return [(h.image_id, round(h.score, 5)) for h in index.find_similar(query, k=4, device="cpu")]


def test_the_copy_searches_by_image_with_everything_else_gone(apps_data: AppData, tmp_path: Path) -> None:
    src = _own_index(apps_data, tmp_path / "built")
    want = _hits(EmbeddingIndex.load(src), apps_data.good)
    copied = copy_portable(src, tmp_path / "space" / "index")
    assert copied.encoder == tmp_path / "space" / "index" / ENCODER_DIR and copied.images == 16
    assert copied.missing == []
    shutil.rmtree(tmp_path / "built")  # the run, the gallery and the original index
    moved = shutil.move(tmp_path / "space", tmp_path / "elsewhere")  # the Space's folder is somewhere else
    index = EmbeddingIndex.load(Path(moved) / "index")
    assert _hits(index, apps_data.good) == want
    assert all(p.is_file() and (Path(moved) / "index" / IMAGES_DIR) in p.parents for p in index.paths)
    assert index.find_text("caption of g03", k=1)[0].image_id == "g03"


def test_without_images_the_copy_still_searches(apps_data: AppData, tmp_path: Path) -> None:
    src = _own_index(apps_data, tmp_path / "built")
    copied = copy_portable(src, tmp_path / "copy", images=False)
    assert copied.images == 0 and not (tmp_path / "copy" / IMAGES_DIR).exists()
    shutil.rmtree(tmp_path / "built" / "run")
    assert len(EmbeddingIndex.load(tmp_path / "copy").find_similar(apps_data.good, k=3, device="cpu")) == 3


def test_a_gone_encoder_or_a_used_folder_is_refused(apps_data: AppData, tmp_path: Path) -> None:
    src = _own_index(apps_data, tmp_path / "built")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("x")
    with pytest.raises(ConfigError, match="not an empty folder"):
        copy_portable(src, tmp_path / "used")
    shutil.rmtree(tmp_path / "built" / "run")
    with pytest.raises(ConfigError, match="encoder .* is gone"):
        copy_portable(src, tmp_path / "copy")


def test_without_the_shipped_encoder_a_moved_index_says_what_is_missing(apps_data: AppData, tmp_path: Path) -> None:
    src = _own_index(apps_data, tmp_path / "built")
    copy_portable(src, tmp_path / "copy")
    shutil.rmtree(tmp_path / "built" / "run")
    shutil.rmtree(tmp_path / "copy" / ENCODER_DIR)
    with pytest.raises(FileNotFoundError, match="checkpoint .* is gone"):
        EmbeddingIndex.load(tmp_path / "copy").find_similar(apps_data.good, k=3, device="cpu")
