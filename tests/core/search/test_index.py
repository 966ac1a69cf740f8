from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import CheckpointError
from core.search import EmbeddingIndex
from core.search.manifest import gallery_rows
from core.search.storage import (
    FORMAT_VERSION,
    LEGACY_EMBEDDINGS_NAME,
    MANIFEST_NAME,
    data_path,
    embeddings_file_name,
    embeddings_path,
)
from tests.core.search.helpers import FakeEncoder, make_encoder, random_image


@dataclasses.dataclass
class Rec:
    """A data set record as a user's own loader might yield it (any object with these fields)."""

    image_id: int | str
    path: Path
    captions: list[str] = dataclasses.field(default_factory=list)
    categories: list[int] = dataclasses.field(default_factory=list)


@pytest.fixture
def index(encoder: FakeEncoder, gallery: list[Path]) -> EmbeddingIndex:
    return EmbeddingIndex.build(encoder, gallery, batch_size=4, data_root=gallery[0].parent)


def test_duplicate_is_nearest_with_score_one(index: EmbeddingIndex) -> None:
    results = index.find_similar("img0", k=3)
    assert [r.rank for r in results] == [1, 2, 3]
    assert results[0].image_id == "img0_dup"
    assert results[0].score == pytest.approx(1.0, abs=1e-5)
    assert all("img0" != r.image_id for r in results)  # the query is not its own result
    assert results[0].score >= results[1].score >= results[2].score


def test_new_image_query_finds_itself(index: EmbeddingIndex, gallery: list[Path]) -> None:
    for query in (
        gallery[3],
        str(gallery[3]),
        gallery[3].read_bytes(),
        random_image(3),
        np.asarray(random_image(3)),
    ):
        top = index.find_similar(query, k=1)
        assert top[0].image_id == "img3" and top[0].score == pytest.approx(1.0, abs=1e-5)


def test_vector_query_and_batch(index: EmbeddingIndex) -> None:
    vec = index.embeddings[2] * 3.0  # not unit norm: normalised by the search
    batch = index.find_similar_batch([vec, vec.numpy(), "img2"], k=2)
    assert batch[0][0].image_id == "img2" and batch[0][0].score == pytest.approx(1.0, abs=1e-5)
    assert [r.image_id for r in batch[0]] == [r.image_id for r in batch[1]]
    assert batch[2][0].image_id != "img2"
    with pytest.raises(ValueError, match="8-d"):
        index.find_similar(torch.ones(5))


def test_k_validation_and_clipping(index: EmbeddingIndex) -> None:
    assert len(index.find_similar("img1", k=100)) == len(index) - 1
    assert len(index.find_similar(index.embeddings[0], k=100)) == len(index)
    for bad in (0, -2):
        with pytest.raises(ValueError, match="k must be"):
            index.find_similar("img1", k=bad)
    with pytest.raises(ValueError, match="unknown image id 'nope'|neither an indexed image id"):
        index.find_similar("nope")
    with pytest.raises(ValueError, match="unknown image id 12345"):
        index.find_similar(12345)


def test_save_load_round_trip_is_exact(index: EmbeddingIndex, tmp_path: Path) -> None:
    folder = index.save(tmp_path / "idx")
    emb_name = embeddings_path(folder).name
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    db_name = data_path(folder, manifest, "gallery").name
    assert sorted(p.name for p in folder.iterdir()) == [emb_name, db_name, MANIFEST_NAME]
    loaded = EmbeddingIndex.load(folder)
    assert torch.equal(loaded.embeddings, index.embeddings)
    assert loaded.same_contents(index)
    assert loaded.image_ids == index.image_ids and loaded.paths == index.paths
    assert loaded.relative_paths == [
        "img0.png",
        "img1.png",
        "img2.png",
        "img3.png",
        "img4.png",
        "img5.png",
        "img0_dup.png",
    ]
    assert loaded.checkpoint == index.checkpoint
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["checkpoint"]["sha256"] == index.checkpoint.sha256
    assert manifest["checkpoint"]["config"] == {"img_size": 16, "backbone": "tiny", "seed": 0}
    assert "Resize" in manifest["preprocessing"]["transform"]
    assert manifest["embeddings"]["file"] == emb_name
    assert emb_name == embeddings_file_name(manifest["embeddings"]["sha256"])
    # saving again over an existing index replaces it cleanly (same contents, same file)
    index.save(folder)
    assert EmbeddingIndex.load(folder).same_contents(index)
    assert sorted(p.name for p in folder.iterdir()) == [emb_name, db_name, MANIFEST_NAME]


def test_int_ids_captions_categories_survive(
    encoder: FakeEncoder, gallery: list[Path], tmp_path: Path
) -> None:
    recs = [Rec(100 + i, p, [f"caption {i}"], [i % 2 + 1]) for i, p in enumerate(gallery)]
    idx = EmbeddingIndex.build(encoder, recs, category_names={1: "person", 2: "dog"})
    loaded = EmbeddingIndex.load(idx.save(tmp_path / "i2"))
    assert loaded.same_contents(idx)
    assert loaded.image_ids == [100 + i for i in range(len(gallery))]
    assert loaded.category_names == {1: "person", 2: "dog"}
    hit = loaded.find_similar("100", k=1)[0]  # a CLI string finds the int id
    assert hit.image_id == 100 + len(gallery) - 1 and hit.captions == [
        f"caption {len(gallery) - 1}"
    ]


def test_generated_captions_are_kept_apart_from_the_reference_ones(
    encoder: FakeEncoder, gallery: list[Path], tmp_path: Path
) -> None:
    # Issue 24: `ssl embed --caption` captions were indistinguishable from the data set's.
    recs = [Rec(i, p, [f"reference {i}"]) for i, p in enumerate(gallery)]
    idx = EmbeddingIndex.build(encoder, recs, caption_images=lambda images: [f"generated {i}" for i in range(len(images))])
    loaded = EmbeddingIndex.load(idx.save(tmp_path / "gen"))
    for index in (idx, loaded):
        assert all(caps[0].startswith("reference") and len(caps) == 2 for caps in index.captions)
        assert index.generated == [[caps[1]] for caps in index.captions]
        hit = index.find_text(index.captions[0][1], 1)[0]
        assert hit.generated == [hit.captions[1]] and hit.to_dict()["generated"] == hit.generated


def test_stale_index_is_detected(
    index: EmbeddingIndex, tmp_path: Path, gallery: list[Path]
) -> None:
    folder = index.save(tmp_path / "idx")
    other = make_encoder(1)
    with pytest.raises(CheckpointError, match="stale"):
        EmbeddingIndex.load(folder, expect=other)
    loaded = EmbeddingIndex.load(folder)
    with pytest.raises(CheckpointError, match="stale"):
        loaded.find_similar(gallery[0], encoder=other)
    # the recorded weights path does not exist: a clear error, not a crash
    with pytest.raises(FileNotFoundError, match="gone"):
        loaded.find_similar(gallery[0])
    # id queries need no encoder at all
    assert loaded.find_similar("img0", k=1)[0].image_id == "img0_dup"


def test_skipped_images_are_recorded(
    encoder: FakeEncoder, gallery: list[Path], tmp_path: Path
) -> None:
    bad = gallery[0].parent / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    idx = EmbeddingIndex.build(encoder, [*gallery, bad])
    assert len(idx) == len(gallery) and "broken" not in idx.image_ids
    assert idx.skipped[0]["path"] == str(bad)
    assert EmbeddingIndex.load(idx.save(tmp_path / "s")).skipped == idx.skipped


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda f: (f / MANIFEST_NAME).unlink(), "index.json is missing"),
        (lambda f: embeddings_path(f).unlink(), r"embeddings-[0-9a-f]{16}\.safetensors: missing"),
        (lambda f: (f / MANIFEST_NAME).write_text("{ not json"), "index.json: corrupt"),
        (lambda f: (f / MANIFEST_NAME).write_text('{"format": "other"}'), "index.json: not an"),
        (
            lambda f: embeddings_path(f).write_bytes(embeddings_path(f).read_bytes()[:50]),
            "sha256 differs",
        ),
    ],
)
def test_corrupt_or_partial_index_names_the_file(
    index: EmbeddingIndex, tmp_path: Path, damage, match
) -> None:  # type: ignore[no-untyped-def]
    folder = index.save(tmp_path / "idx")
    damage(folder)
    with pytest.raises(CheckpointError, match=match):
        EmbeddingIndex.load(folder)


def test_missing_index_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="index not found"):
        EmbeddingIndex.load(tmp_path / "none")


def test_crash_between_embeddings_and_manifest_keeps_the_old_index(
    index: EmbeddingIndex,
    encoder: FakeEncoder,
    gallery: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import core.search.storage as storage

    folder = index.save(tmp_path / "idx")
    old_emb = embeddings_path(folder)
    old_bytes = old_emb.read_bytes()
    smaller = EmbeddingIndex.build(encoder, gallery[:3])
    real_write = storage.atomic_write

    def crash_on_manifest(dest: Path, write):  # type: ignore[no-untyped-def]
        if dest.name == MANIFEST_NAME:
            raise KeyboardInterrupt  # the process dies after the embeddings, before the manifest
        real_write(dest, write)

    monkeypatch.setattr(storage, "atomic_write", crash_on_manifest)
    with pytest.raises(KeyboardInterrupt):
        smaller.save(folder)
    monkeypatch.undo()
    names = sorted(p.name for p in folder.iterdir())
    assert not [n for n in names if n.endswith(".tmp")]
    # the new embeddings did reach the disk, next to the old ones: the crash came at the right point
    assert len([n for n in names if n.startswith("embeddings-")]) == 2, names
    assert embeddings_path(folder) == old_emb and old_emb.read_bytes() == old_bytes
    loaded = EmbeddingIndex.load(folder)
    assert torch.equal(loaded.embeddings, index.embeddings) and loaded.same_contents(index)
    # the next successful write commits the new index and removes both older files
    smaller.save(folder)
    assert EmbeddingIndex.load(folder).same_contents(smaller)
    assert sorted(p.name for p in folder.iterdir()) == _live_files(folder)


def test_rewrite_removes_unreferenced_embeddings_only(
    index: EmbeddingIndex, encoder: FakeEncoder, gallery: list[Path], tmp_path: Path
) -> None:
    folder = index.save(tmp_path / "idx")
    old_emb = embeddings_path(folder)
    (folder / "notes.txt").write_text("mine")  # not an embeddings file: must survive
    (folder / "embeddings-backup.safetensors").write_text("mine")  # not a content-addressed name
    smaller = EmbeddingIndex.build(encoder, gallery[:3])
    smaller.save(folder)
    new_emb = embeddings_path(folder)
    assert new_emb != old_emb and not old_emb.exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*_live_files(folder), "notes.txt", "embeddings-backup.safetensors"]
    )
    assert EmbeddingIndex.load(folder).same_contents(smaller)


def _live_files(folder: Path) -> list[str]:
    """The manifest and the data files it names."""
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    kinds = [k for k in ("embeddings", "gallery", "ann") if "file" in (manifest.get(k) or {})]
    return sorted([MANIFEST_NAME, *(data_path(folder, manifest, k).name for k in kinds)])


def _as_format_1(folder: Path, index: EmbeddingIndex) -> None:
    """Rewrite a saved index the way format version 1 stored it (fixed embeddings file name,
    per-image metadata inline in the manifest, no gallery database)."""
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    embeddings_path(folder).rename(folder / LEGACY_EMBEDDINGS_NAME)
    data_path(folder, manifest, "gallery").unlink()
    for key in ("gallery", "ann", "count"):
        manifest.pop(key, None)
    manifest["version"] = 1
    manifest["embeddings"]["file"] = LEGACY_EMBEDDINGS_NAME
    manifest["images"] = [
        {"image_id": r.image_id, "path": r.path, "relative_path": r.relative_path,
         "captions": r.captions, "categories": r.categories}
        for r in gallery_rows(index)
    ]
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))


def test_format_1_index_still_reads_and_is_upgraded_on_rewrite(
    index: EmbeddingIndex, tmp_path: Path
) -> None:
    folder = index.save(tmp_path / "idx")
    _as_format_1(folder, index)
    assert sorted(p.name for p in folder.iterdir()) == [LEGACY_EMBEDDINGS_NAME, MANIFEST_NAME]
    loaded = EmbeddingIndex.load(folder)
    index = dataclasses.replace(index, content_hashes=[])  # format 1 recorded no content hashes
    assert torch.equal(loaded.embeddings, index.embeddings) and loaded.same_contents(index)
    loaded.save(folder)  # rewriting moves it to the current format and drops the fixed-name file
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["version"] == FORMAT_VERSION
    assert sorted(p.name for p in folder.iterdir()) == _live_files(folder)
    assert EmbeddingIndex.load(folder).same_contents(index)


def test_format_1_index_with_damaged_embeddings_names_the_file(
    index: EmbeddingIndex, tmp_path: Path
) -> None:
    folder = index.save(tmp_path / "idx")
    _as_format_1(folder, index)
    (folder / LEGACY_EMBEDDINGS_NAME).write_bytes(b"\0" * 10)
    with pytest.raises(CheckpointError, match="embeddings.safetensors: contents do not match"):
        EmbeddingIndex.load(folder)


@pytest.mark.parametrize("name", ["../outside.safetensors", "/etc/passwd", "index.json", 3])
def test_manifest_cannot_name_a_file_outside_the_embeddings_names(
    index: EmbeddingIndex, tmp_path: Path, name: object
) -> None:
    folder = index.save(tmp_path / "idx")
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    manifest["embeddings"]["file"] = name
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="embeddings file name .* manifest is corrupt"):
        EmbeddingIndex.load(folder)


def test_load_accepts_the_manifest_path(index: EmbeddingIndex, tmp_path: Path) -> None:
    folder = index.save(tmp_path / "idx")
    assert EmbeddingIndex.load(folder / MANIFEST_NAME).same_contents(index)


def test_saved_files_honour_the_umask(index: EmbeddingIndex, tmp_path: Path) -> None:
    import os

    old = os.umask(0o022)
    try:
        folder = index.save(tmp_path / "idx")
    finally:
        os.umask(old)
    for path in (embeddings_path(folder), folder / MANIFEST_NAME):
        assert path.stat().st_mode & 0o777 == 0o644
