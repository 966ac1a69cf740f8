"""``build_index``: an embedding run's parts become a searchable index (no cluster needed here).

The parts are made by ``embed_shard`` (what each Ray actor runs) over Tiny COCO, with a real SSL
checkpoint, and recorded in a manifest as the driver does; the Ray run itself is in test_ray.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.datasets import open_source
from core.distributed import Manifest, build_index
from core.distributed.manifest import settings_digest
from core.distributed.parts import PartInfo, encode_caption_part, write_part
from core.distributed.workers import EmbedJob, embed_shard
from core.errors import CheckpointError, ConfigError
from core.fileio import sha256_file
from core.search import embed_images
from core.ssl import load_encoder
from tests.core.distributed.helpers import val_images


def _embed_run(source: str, out: Path, checkpoint: Path, *, finish: bool = True) -> Manifest:
    """Parts and manifest as ``embed_to_parts`` leaves them, made in this process."""
    encoder = load_encoder(checkpoint, device="cpu")
    job = EmbedJob(str(checkpoint.resolve()), encoder.sha256, batch_size=8, device="cpu")
    src = open_source(source, shard_size=16)
    manifest = Manifest("embed", src.describe(), job.settings(), len(src.shards))
    shards = src.shards if finish else src.shards[:1]
    for shard in shards:
        data, rows, errors = embed_shard(encoder, shard, job, manifest.digest, 16)
        path = write_part(out, shard.index, data)
        manifest.record(shard.index, shard.fingerprint, rows, errors, sha256_file(path))
    manifest.complete = finish
    manifest.save(out)
    return manifest


def _caption_run(keys: list[str], out: Path) -> dict[str, str]:
    captions = {k: f"caption number {i} zebra{i}" for i, k in enumerate(keys)}
    rows = [(k, None, c, None) for k, c in captions.items()] + [("broken", None, "", "truncated")]
    info = PartInfo(0, "fp", settings_digest("caption", {}, {}), len(rows), 1)
    write_part(out, 0, encode_caption_part(rows, info))
    Manifest("caption", {}, {}, 1, {"part-00000.parquet": {"rows": len(rows), "errors": 1}},
             complete=True).save(out)
    return captions


def test_the_parts_of_a_run_become_an_index_that_embeds_image_queries(
    tiny_encoder_dir: Path, tiny_coco_dir: Path, tmp_path: Path
) -> None:
    folder = tiny_coco_dir / "val2017"
    out = tmp_path / "out"
    _embed_run(str(folder), out, tiny_encoder_dir)
    captions = _caption_run([p.name for p in val_images(tiny_coco_dir)], tmp_path / "captions")
    built = build_index(out, checkpoint=tiny_encoder_dir, kind="exact", captions_dir=tmp_path / "captions")
    assert built.built and built.folder == out and (out / "index.json").is_file()
    index = built.index
    images = val_images(tiny_coco_dir)
    assert sorted(index.image_ids) == [p.name for p in images]
    assert index.checkpoint.sha256 == load_encoder(tiny_encoder_dir).sha256
    # the stored vectors are the local embeddings (not re-encoded, equal to 1e-5)
    local = embed_images(load_encoder(tiny_encoder_dir, device="cpu"), images, batch_size=8)
    order = [index.row_of_id(p.name) for p in images]
    np.testing.assert_allclose(index.embeddings.numpy()[order], local.embeddings.numpy(), atol=1e-5)
    # an image query is embedded with the recorded checkpoint and finds its own file first
    hit = index.find_similar(str(images[7]), k=1)[0]
    assert hit.image_id == images[7].name and hit.score == pytest.approx(1.0, abs=1e-5)
    # each row keeps its file's sha256, as a locally built index does (an upload of it is "same")
    assert [index.content_hashes[r] for r in order] == [sha256_file(p) for p in images]
    # captions of the caption run, joined by key
    assert index.captions[index.row_of_id(images[3].name)] == [captions[images[3].name]]
    assert [r.image_id for r in index.find_text("zebra3", 2)] == [images[3].name]

    again = build_index(out, checkpoint=tiny_encoder_dir, kind="exact", captions_dir=tmp_path / "captions")
    assert not again.built  # same parts, settings and captions: kept as it is
    other = build_index(out, checkpoint=tiny_encoder_dir, kind="HNSW8")
    assert other.built and other.index.kind == "HNSW8" and not any(other.index.captions)
    assert json.loads((out / "index.json").read_text())["build"]["kind"] == "HNSW8"


def test_an_index_is_only_built_from_a_finished_run_with_its_own_checkpoint(
    tiny_encoder_dir: Path, tiny_coco_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    _embed_run(str(tiny_coco_dir / "val2017"), out, tiny_encoder_dir, finish=False)
    with pytest.raises(ConfigError, match="unfinished.*--resume"):
        build_index(out, checkpoint=tiny_encoder_dir)
    done = tmp_path / "done"
    _embed_run(str(tiny_coco_dir / "val2017"), done, tiny_encoder_dir)
    other = tmp_path / "other.safetensors"
    shutil.copy(tiny_encoder_dir / "checkpoint.safetensors", other)
    with other.open("r+b") as fh:  # same architecture, other weights: another sha256
        fh.seek(-8, 2)
        fh.write(b"\x00\x00\x80\x3f" * 2)
    with pytest.raises(CheckpointError, match="pass the run's checkpoint"):
        build_index(done, checkpoint=other)
    with pytest.raises(ConfigError, match="not the output folder of an embedding run"):
        build_index(tmp_path, checkpoint=tiny_encoder_dir)
    assert not (done / "index.json").exists()


def test_an_index_of_tar_shards_shows_each_result_from_its_shard(
    tiny_encoder_dir: Path, tiny_coco_dir: Path, tmp_path: Path
) -> None:
    """Tar members have no file: the rows record their shard, and result_image reads the member
    back (the same pixels as the photo it was made from), locally built or built from parts."""
    from core.images import load_image
    from core.search import EmbeddingIndex, result_image
    from core.ssl import load_encoder
    from tests.core.distributed.helpers import write_tar_shards

    images = val_images(tiny_coco_dir)[:12]
    write_tar_shards(images, tmp_path / "shards", per_shard=5)
    pattern = str(tmp_path / "shards" / "{00000..00002}.tar")
    _embed_run(pattern, tmp_path / "out", tiny_encoder_dir)
    from_parts = build_index(tmp_path / "out", checkpoint=tiny_encoder_dir, kind="exact").index
    local = EmbeddingIndex.build(load_encoder(tiny_encoder_dir, device="cpu"), open_source(pattern),
                                 progress=False, kind="exact")
    # a tar member's hash is of its bytes, which are the photo's file: the same in both indexes
    assert [from_parts.content_hashes[from_parts.row_of_id(p.stem)] for p in images] == \
        [local.content_hashes[local.row_of_id(p.stem)] for p in images] == [sha256_file(p) for p in images]
    for index in (from_parts, local):
        hits = index.find_similar(images[6].stem, k=3)
        for hit in hits:
            shard = [p.stem for p in images].index(str(hit.image_id)) // 5
            assert hit.source == str((tmp_path / "shards" / f"{shard:05d}.tar").resolve())
            original = load_image(tiny_coco_dir / "val2017" / f"{hit.image_id}.jpg")
            shown = result_image(hit)
            assert shown is not None and np.array_equal(np.asarray(shown), np.asarray(original))
            assert np.array_equal(np.asarray(result_image(hit.to_dict())), np.asarray(original))
    shutil.move(tmp_path / "shards", tmp_path / "moved")
    assert result_image(from_parts.find_similar(images[6].stem, k=1)[0]) is None  # moved: no picture
