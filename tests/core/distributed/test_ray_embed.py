"""Embedding on the Ray cluster equals ``core.search.embed_images``; parts feed an index."""

from __future__ import annotations

import numpy as np

from core.distributed import embed_to_parts, read_embedding_parts, read_parts
from core.search import EmbeddingIndex, embed_images
from core.ssl import load_encoder
from tests.core.distributed.helpers import val_images, write_tar_shards

BATCH = 8


def test_embeddings_from_tar_shards_equal_local_embeddings(ray_cluster, tiny_encoder_dir, tiny_coco_dir,
                                                           tmp_path):
    images = val_images(tiny_coco_dir)
    hostile = write_tar_shards(images, tmp_path / "shards", per_shard=16)
    out = tmp_path / "out"
    summary = embed_to_parts(str(tmp_path / "shards" / "*.tar"), out, checkpoint=tiny_encoder_dir,
                             address=ray_cluster.address, batch_size=BATCH, concurrency=2,
                             progress=False)
    assert (summary.images, summary.errors) == (len(images) + len(hostile), len(hostile))

    vectors, keys, paths = read_embedding_parts(out)
    local = embed_images(load_encoder(tiny_encoder_dir, device="cpu"), images, batch_size=BATCH)
    assert sorted(keys) == sorted(p.stem for p in images) and len(keys) == len(set(keys))
    order = [keys.index(p.stem) for p in images]
    assert vectors.shape == (len(images), 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors[order], local.embeddings.numpy(), atol=1e-5, rtol=0)
    assert paths == [None] * len(keys)  # tar members have no file of their own

    rows = read_parts(out).to_pylist()
    bad = {r["key"]: r for r in rows if r["key"].startswith("bad")}
    assert sorted(bad) == sorted(hostile)
    assert all(r["embedding"] is None and r["error"] for r in bad.values())


def test_embedding_parts_build_a_search_index_without_reencoding(ray_cluster, tiny_encoder_dir,
                                                                tiny_coco_dir, tmp_path):
    folder = tiny_coco_dir / "val2017"
    out = tmp_path / "out"
    embed_to_parts(folder, out, checkpoint=tiny_encoder_dir, address=ray_cluster.address,
                   batch_size=BATCH, shard_size=16, concurrency=2, progress=False)
    vectors, keys, paths = read_embedding_parts(out)
    assert paths == [str(folder / k) for k in keys]
    index = EmbeddingIndex.from_arrays(vectors, keys, paths=paths, kind="exact")
    # Queries embedded locally find their own image first, by the stored (not re-encoded) vectors.
    queries = [folder / keys[3], folder / keys[40]]
    local = embed_images(load_encoder(tiny_encoder_dir, device="cpu"), queries, batch_size=BATCH)
    scores, ids = index.search(local.embeddings.numpy(), 1)
    assert list(ids[:, 0]) == [keys[3], keys[40]]
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
