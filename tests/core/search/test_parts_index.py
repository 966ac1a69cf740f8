"""Indexes built in a stream from embedding parts (the Ray path's output), with real parquet files.

The parts are written with ``core.distributed.parts`` (the writer the Ray workers use); no
cluster is needed to read them back.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.distributed.parts import PartInfo, encode_caption_part, encode_embedding_part, write_part
from core.search import EmbeddingIndex, IndexConfigError
from core.search.partfiles import parts_shape, vector_blocks
from core.search.streaming import build_from_parts

D = 16


def _unit(rows: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((rows, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _write_parts(folder: Path, sizes: list[int], bad_every: int = 7, with_paths: bool = True) -> dict:
    """Parts with every ``bad_every``-th row an error row; returns what the index should hold."""
    ok_keys, ok_paths, ok_vecs, bad = [], [], [], []
    start = 0
    for i, size in enumerate(sizes):
        keys = [f"k{start + j:05d}" for j in range(size)]
        paths = [f"/data/img{start + j:05d}.jpg" if with_paths and j % 2 else None for j in range(size)]
        errors = [f"broken {k}" if (start + j) % bad_every == 3 else None for j, k in enumerate(keys)]
        vecs = _unit(size, i)
        vecs[[e is not None for e in errors]] = 0.0
        info = PartInfo(i, "fp", "digest", size, sum(e is not None for e in errors))
        write_part(folder, i, encode_embedding_part(keys, paths, vecs, errors, info))
        for k, p, v, e in zip(keys, paths, vecs, errors, strict=True):
            if e is None:
                ok_keys.append(k), ok_paths.append(p), ok_vecs.append(v)
            else:
                bad.append((k, e))
        start += size
    return {"keys": ok_keys, "paths": ok_paths, "vectors": np.stack(ok_vecs), "bad": bad}


def test_parts_build_the_index_from_arrays_would(tmp_path: Path) -> None:
    parts = tmp_path / "run"
    want = _write_parts(parts, [40, 25, 33])
    assert parts_shape(sorted(parts.glob("part-*.parquet"))) == (len(want["keys"]), D)
    assert len(list(vector_blocks(sorted(parts.glob("part-*.parquet"))))) == 3  # part by part
    folder = build_from_parts(parts, tmp_path / "index", kind="exact")
    index = EmbeddingIndex.load(folder, mmap=True)
    np.testing.assert_array_equal(index.embeddings.numpy(), want["vectors"])
    assert index.image_ids == want["keys"]
    # a row without a file (tar member, byte row) records its key as its path
    assert [str(p) for p in index.paths] == [p or k for k, p in zip(want["keys"], want["paths"], strict=True)]
    assert {s["reason"] for s in index.skipped} == {f"{k}: {e}" for k, e in want["bad"]}
    manifest = json.loads((folder / "index.json").read_text())
    assert manifest["skipped_total"] == len(want["bad"]) and manifest["count"] == len(want["keys"])
    reference = EmbeddingIndex.from_arrays(want["vectors"], want["keys"], kind="exact")
    queries = _unit(8, 99)
    got, ref = index.search(queries, 5), reference.search(queries, 5)
    assert np.array_equal(got[1], ref[1])
    np.testing.assert_allclose(got[0], ref[0], atol=1e-6)


def test_parts_build_a_faiss_index_with_captions_into_the_parts_folder(tmp_path: Path) -> None:
    parts = tmp_path / "run"
    want = _write_parts(parts, [900, 700], bad_every=50)
    keyed = {want["keys"][0]: "a red bicycle leaning on a wall"}  # a caption run's key
    by_path = next(p for p in want["paths"] if p)  # an `img2text caption` file's path
    folder = build_from_parts(parts, parts, kind="HNSW16",
                              captions={**keyed, by_path: "two dogs on a beach"})
    assert sorted(p.name for p in parts.glob("part-*.parquet")) == ["part-00000.parquet", "part-00001.parquet"]
    index = EmbeddingIndex.load(folder, mmap=True)
    assert index.kind == "HNSW16" and index.ann_info["reached"] and index.recall_at_10 >= 0.95
    assert [r.image_id for r in index.find_text("red bicycle", 3)] == [want["keys"][0]]
    assert [str(r.path) for r in index.find_text("dogs beach", 3)] == [by_path]
    assert sum(1 for c in index.captions if c) == 2


def test_parts_that_cannot_make_an_index_are_refused(tmp_path: Path) -> None:
    with pytest.raises(IndexConfigError, match="no part-"):
        build_from_parts(tmp_path, tmp_path / "i")
    captions = tmp_path / "captions"
    write_part(captions, 0, encode_caption_part([("a", None, "a cat", None)], PartInfo(0, "f", "d", 1, 0)))
    with pytest.raises(IndexConfigError, match="caption run"):
        build_from_parts(captions, tmp_path / "i")
    twice = tmp_path / "twice"
    for i in range(2):  # the same keys in two parts
        write_part(twice, i, encode_embedding_part(["x", "y"], [None, None], _unit(2, i), [None, None],
                                                   PartInfo(i, "f", "d", 2, 0)))
    with pytest.raises(IndexConfigError, match="'x' is already"):
        build_from_parts(twice, tmp_path / "i2", kind="exact")
    assert not (tmp_path / "i2" / "index.json").exists()
    parts = tmp_path / "run"
    _write_parts(parts, [30])
    with pytest.raises(IndexConfigError, match="raise --memory-budget"):  # the budget is honoured
        build_from_parts(parts, tmp_path / "i3", kind="auto", memory_budget="100B")


def test_parts_written_before_content_hashes_still_build(tmp_path: Path) -> None:
    """Older parts have no ``sha256`` column: their rows' hashes are unknown (None), nothing fails."""
    import pyarrow.parquet as pq

    parts = tmp_path / "run"
    want = _write_parts(parts, [10, 12])
    for f in sorted(parts.glob("part-*.parquet")):
        table = pq.read_table(f)
        assert table.column("sha256").null_count == table.num_rows  # written without hashes
        pq.write_table(table.drop(["sha256"]).replace_schema_metadata(table.schema.metadata), f)
    index = EmbeddingIndex.load(build_from_parts(parts, tmp_path / "index", kind="exact"))
    assert index.image_ids == want["keys"] and index.content_hashes == [None] * len(want["keys"])
