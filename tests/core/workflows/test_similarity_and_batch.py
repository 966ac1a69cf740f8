"""collapse_warning on healthy and deliberately collapsed indexes; same-image detection; batch rows."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

import core
from core.search import EmbeddingIndex
from core.workflows import (
    caption_uploads,
    collapse_warning,
    embedding_health,
    find_neighbours,
    gallery_matches,
)
from tests.browser.support import AppData


def with_embeddings(index: EmbeddingIndex, embeddings: torch.Tensor) -> EmbeddingIndex:
    return dataclasses.replace(index, embeddings=embeddings)


def test_spread_out_embeddings_give_no_warning(apps_data: AppData) -> None:
    index = EmbeddingIndex.load(apps_data.index)
    assert collapse_warning(index) is None  # the fixture run has not collapsed
    random = torch.randn(len(index), index.dim, generator=torch.Generator().manual_seed(0))
    health = embedding_health(random)
    assert health is not None and health.spread > 0.8 and abs(health.mean_score) < 0.3
    assert collapse_warning(with_embeddings(index, random)) is None


def test_collapsed_embeddings_are_named_with_what_to_do(apps_data: AppData) -> None:
    index = EmbeddingIndex.load(apps_data.index)
    g = torch.Generator().manual_seed(1)
    point = torch.randn(1, index.dim, generator=g)
    collapsed = point + 0.01 * torch.randn(len(index), index.dim, generator=g)  # every image near one point
    message = collapse_warning(with_embeddings(index, collapsed))
    assert message is not None and "collapsed" in message and "img2text ssl embed" in message
    health = embedding_health(collapsed)
    assert health is not None and health.low_score > 0.99
    # the same with a large common offset on spread-out directions: near-constant scores
    offset = 50 * point + torch.randn(len(index), index.dim, generator=g)
    assert collapse_warning(with_embeddings(index, offset)) is not None


def test_a_gallery_image_as_upload_is_the_same_image_not_a_neighbour(apps_data: AppData) -> None:
    index = EmbeddingIndex.load(apps_data.index)
    path = apps_data.gallery / "g05.png"
    image = core.load_image(path)
    found = find_neighbours(index, image, path.read_bytes(), k=3)
    plain = index.find_similar(image, k=4)
    assert found.same is not None and found.same.image_id == "g05" == plain[0].image_id
    assert [h.image_id for h in found.hits] == [h.image_id for h in plain[1:]]
    assert [h.rank for h in found.hits] == [1, 2, 3]
    other = find_neighbours(index, core.load_image(apps_data.good), apps_data.good.read_bytes(), k=3)
    assert other.same is None and len(other.hits) == 3


def test_gallery_matches_by_id_file_name_or_caption_words(apps_data: AppData) -> None:
    index = EmbeddingIndex.load(apps_data.index)
    assert len(gallery_matches(index, "", limit=5)) == 5
    assert [i for _, i in gallery_matches(index, "g07")] == ["g07"]
    assert [i for _, i in gallery_matches(index, "G07.PNG")] == ["g07"]
    words = index.captions[3][0].split()[:2]
    assert "g03" in [i for _, i in gallery_matches(index, " ".join(words), limit=50)]
    assert gallery_matches(index, "no such words anywhere") == []


def test_gallery_picker_lists_caption_matches_by_relevance_with_the_matched_caption(tmp_path: Path) -> None:
    x = np.eye(4, dtype=np.float32)
    caps = [["a cat"], ["a red car", "a dog and a ball on a couch"], ["a dog"], ["grass", "a dog on a couch"]]
    index = EmbeddingIndex.from_arrays(x, ["a", "b", "c", "d"], captions=caps, kind="exact")
    got = gallery_matches(index, "dog couch")
    assert [i for _, i in got] == [h.image_id for h in index.find_text("dog couch", 50)] == ["d", "b", "c"]
    assert got[0][0] == "d · d · a [dog] on a [couch]"
    assert got[1][0] == "b · b · a [dog] and a ball on a [couch]"  # the caption that matched, not the first


def test_caption_uploads_rows_in_order_with_thumbnails(tiny_model_dir: Path, apps_data: AppData) -> None:
    captioner = core.get_captioner(str(tiny_model_dir), device="cpu")
    files = [apps_data.gallery / "g00.png", apps_data.not_image, apps_data.gallery / "g01.png"]
    steps: list[tuple[int, int]] = []
    rows = caption_uploads(captioner, [(p.name, p.read_bytes()) for p in files], batch_size=2,
                           progress=lambda d, t: steps.append((d, t)), num_beams=1, max_new_tokens=8)
    assert [r.record.path for r in rows] == ["g00.png", "not-an-image.jpg", "g01.png"]
    assert rows[0].record.caption == captioner.caption(files[0], num_beams=1, max_new_tokens=8)
    assert not rows[1].record.ok and "not a supported image" in rows[1].record.error
    assert rows[1].thumbnail is None and rows[0].thumbnail.startswith("data:image/png;base64,")
    assert steps == [(0, 3), (2, 3), (3, 3)]
