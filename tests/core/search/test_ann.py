"""FAISS backends behind EmbeddingIndex, with real faiss-cpu on a 100,000 x 128 clustered gallery."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.search import EmbeddingIndex, IndexConfigError, QueryError
from core.search.ann import choose_kind, nlist_for, parse_memory
from core.search.recall import RERANK_DEPTHS, RecallProbe, build_faiss, recall, split_sample, tune
from core.search.storage import MANIFEST_NAME
from tests.core.search.ann_data import HNSW_KIND, IVF_KIND, exact_top, fresh_queries

APPROX = (IVF_KIND, HNSW_KIND)


def test_flat_ip_equals_exact_search(ann_gallery, ann_indexes) -> None:  # type: ignore[no-untyped-def]
    x, _ = ann_gallery
    queries = fresh_queries(x, 64)
    s_exact, i_exact = ann_indexes["exact"].search(queries, 10)
    s_flat, i_flat = ann_indexes["Flat"].search(queries, 10)
    assert s_flat.shape == i_flat.shape == (64, 10)
    assert np.array_equal(i_flat, i_exact)
    np.testing.assert_allclose(s_flat, s_exact, atol=1e-5)
    assert np.array_equal(i_exact, exact_top(x, queries, 10))  # and exact is exact (float64)
    assert ann_indexes["exact"].recall_at_10 == 1.0 and ann_indexes["Flat"].recall_at_10 == 1.0


@pytest.mark.parametrize("kind", APPROX)
def test_tuned_setting_reaches_the_target(ann_indexes, kind) -> None:  # type: ignore[no-untyped-def]
    info = ann_indexes[kind].ann_info
    assert info["param"] == ("nprobe" if kind.startswith("IVF") else "efSearch")
    assert info["reached"] and ann_indexes[kind].recall_at_10 >= 0.95
    assert info["target_recall"] == 0.95 and info["tuning_queries"] == 500
    assert ann_indexes[kind].backend.value == info["value"]


def test_tuning_keeps_the_smallest_value_that_reaches_the_target(ann_gallery) -> None:  # type: ignore[no-untyped-def]
    import torch

    vectors = torch.from_numpy(ann_gallery[0][:20_000])
    train_rows, query_rows = split_sample(20_000, 4096, 300, 0)
    backend = build_faiss(vectors, "IVF64,Flat", train_rows, query_rows)
    probe = RecallProbe(backend, query_rows)
    tuning = tune(probe, target=0.9)
    assert tuning.reached and tuning.param == "nprobe" and backend.value == tuning.value
    by_value = {v: probe(v) for v in range(1, tuning.value + 1)}  # every smaller value, measured
    print("recall@10 by nprobe:", {v: round(r, 3) for v, r in by_value.items()})
    assert by_value[tuning.value] == tuning.recall_at_10 >= 0.9
    assert all(r < 0.9 for v, r in by_value.items() if v < tuning.value) and tuning.value > 1
    # the held-out queries were not in the index while tuning; afterwards every row is searchable
    assert backend.index.ntotal == 20_000 - 300


@pytest.mark.parametrize("kind", APPROX)
def test_recorded_recall_agrees_with_fresh_queries(ann_gallery, ann_indexes, kind) -> None:  # type: ignore[no-untyped-def]
    x, _ = ann_gallery
    queries = fresh_queries(x, 300, seed=7)
    _, found = ann_indexes[kind].search(queries, 10)
    measured = recall(found, exact_top(x, queries, 10))
    print(f"{kind}: recorded {ann_indexes[kind].recall_at_10:.3f}, fresh queries {measured:.3f}")
    assert measured >= 0.93 and abs(measured - ann_indexes[kind].recall_at_10) <= 0.04


@pytest.mark.parametrize("kind", ["exact", IVF_KIND, HNSW_KIND])
def test_save_load_with_and_without_mmap_gives_identical_answers(
    ann_gallery, ann_indexes, kind, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    index = ann_indexes[kind]
    folder = index.save(tmp_path / "idx")
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["ann"]["kind"] == kind and manifest["ann"]["recall_at_10"] == index.recall_at_10
    assert ("file" in manifest["ann"]) == (kind != "exact")
    queries = fresh_queries(ann_gallery[0], 32, seed=3)
    want = index.search(queries, 10)
    for mmap in (False, True):
        loaded = EmbeddingIndex.load(folder, mmap=mmap)
        assert loaded.kind == kind and loaded.recall_at_10 == index.recall_at_10
        assert loaded.ann_info == index.ann_info
        got = loaded.search(queries, 10)
        assert np.array_equal(got[1], want[1]) and np.array_equal(got[0], want[0])
        assert _is_file_mapped(loaded.embeddings.numpy(), folder) == mmap
        ids = [r.image_id for r in loaded.find_similar(5, k=10)]
        assert ids == [r.image_id for r in index.find_similar(5, k=10)]


def _is_file_mapped(array: np.ndarray, folder: Path) -> bool:
    """Whether ``array``'s memory lies in a mapping of a file in ``folder`` (/proc/self/maps)."""
    address = array.__array_interface__["data"][0]
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()
        start, end = (int(v, 16) for v in fields[0].split("-"))
        if start <= address < end:
            return len(fields) >= 6 and fields[5].startswith(str(folder.resolve()))
    return False


@pytest.mark.parametrize("kind", ["exact", "Flat", IVF_KIND, HNSW_KIND])
def test_find_similar_works_on_every_backend(ann_indexes, kind) -> None:  # type: ignore[no-untyped-def]
    index = ann_indexes[kind]
    for query in (17, index.embeddings[17]):
        results = index.find_similar(query, k=10)
        assert len(results) == 10 and [r.rank for r in results] == list(range(1, 11))
        assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
        if isinstance(query, int):
            assert 17 not in [r.image_id for r in results]  # an id query skips itself
        else:
            assert results[0].image_id == 17 and results[0].score == pytest.approx(1.0, abs=1e-5)
    exact = [r.image_id for r in ann_indexes["exact"].find_similar(17, k=10)]
    assert len(set(exact) & {r.image_id for r in index.find_similar(17, k=10)}) >= 7


def test_search_validates_its_input(ann_indexes) -> None:  # type: ignore[no-untyped-def]
    index = ann_indexes[IVF_KIND]
    with pytest.raises(QueryError, match="128-d"):
        index.search(np.ones((2, 5), dtype=np.float32), 3)
    with pytest.raises(QueryError, match="non-zero"):
        index.search(np.zeros((1, 128), dtype=np.float32), 3)
    with pytest.raises(QueryError, match="k must be"):
        index.search(np.ones(128, dtype=np.float32), 0)
    scores, ids = index.search(np.ones(128, dtype=np.float32), 4)  # one (D,) vector -> (1, k)
    assert scores.shape == ids.shape == (1, 4) and ids.dtype == np.int64


@pytest.fixture(scope="module")
def pq_index():  # type: ignore[no-untyped-def]
    """A small IVF-PQ index (4-bit codes: fast to train) tuned to recall@10 0.9."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3000, 32)).astype(np.float32)
    return x, EmbeddingIndex.from_arrays(x, [f"v{i}" for i in range(3000)], kind="IVF16,PQ8x4",
                                         target_recall=0.9)


def test_lossy_codes_tune_the_rerank_depth_until_the_target_is_reached(pq_index) -> None:  # type: ignore[no-untyped-def]
    x, index = pq_index
    info = index.ann_info
    assert info["reached"] and index.recall_at_10 >= 0.9  # no "recall 0.547 < target" any more
    assert info["rerank"] in RERANK_DEPTHS and info["rerank"] > 4 and index.backend.rerank == info["rerank"]
    # Fresh queries agree with the recorded recall; the starting depth (4) could not reach it
    # even with every list probed, so tuning the depth is what made the difference.
    queries = np.random.default_rng(5).standard_normal((200, 32)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = exact_top(x / np.linalg.norm(x, axis=1, keepdims=True), queries, 10)
    rows = np.vectorize(lambda i: int(i[1:]))(index.search(queries, 10)[1])
    tuned = recall(rows, truth)
    print(f"recorded {index.recall_at_10:.3f}, fresh {tuned:.3f}, depth {info['rerank']}, nprobe {info['value']}")
    assert tuned >= 0.86 and abs(tuned - index.recall_at_10) <= 0.05
    backend = index.backend
    try:
        backend.rerank = 4
        backend.set_value(16)  # all 16 lists
        shallow = recall(np.vectorize(lambda i: int(i[1:]))(index.search(queries, 10)[1]), truth)
    finally:
        backend.rerank = info["rerank"]
        backend.set_value(info["value"])
    assert shallow < 0.9 < tuned + 0.04


def test_lossy_codes_are_reranked_with_exact_scores(pq_index) -> None:  # type: ignore[no-untyped-def]
    x, index = pq_index
    queries = x[:20] / np.linalg.norm(x[:20], axis=1, keepdims=True)
    scores, ids = index.search(queries, 5)
    assert ids.dtype == object and ids[0, 0] == "v0"
    rows = np.vectorize(lambda i: int(i[1:]))(ids)
    exact = np.einsum("qd,qkd->qk", queries, index.embeddings.numpy()[rows])
    np.testing.assert_allclose(scores, exact, atol=1e-5)  # re-scored with the stored vectors


def test_pq_index_save_load_with_and_without_mmap(pq_index, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    x, index = pq_index
    folder = index.save(tmp_path / "pq")
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["ann"]["rerank"] == index.ann_info["rerank"] and "file" in manifest["ann"]
    queries = np.random.default_rng(9).standard_normal((16, 32)).astype(np.float32)
    want = index.search(queries, 10)
    for mmap in (False, True):
        loaded = EmbeddingIndex.load(folder, mmap=mmap)
        assert loaded.ann_info == index.ann_info and loaded.backend.rerank == index.backend.rerank
        assert loaded.backend.value == index.backend.value
        got = loaded.search(queries, 10)
        assert np.array_equal(got[1], want[1]) and np.array_equal(got[0], want[0])
        assert _is_file_mapped(loaded.embeddings.numpy(), folder) == mmap


def test_small_gallery_pads_missing_places() -> None:
    index = EmbeddingIndex.from_arrays(np.eye(3, dtype=np.float32), [10, 11, 12], kind="exact")
    scores, ids = index.search(np.eye(3, dtype=np.float32)[:1], 5)
    assert ids[0, 0] == 10 and list(ids[0, 3:]) == [-1, -1] and np.isneginf(scores[0, 3:]).all()


def test_auto_picks_by_size_and_memory_budget() -> None:
    assert choose_kind(50_000, 128) == "exact"
    assert nlist_for(1_000_000) == 4096
    assert choose_kind(1_000_000, 256) == "IVF4096,Flat"
    assert choose_kind(1_000_000, 256, "4GB") == "IVF4096,Flat"  # 1 GB of vectors fits
    assert choose_kind(1_000_000, 256, "100MB") == "IVF4096,PQ64"  # 72 bytes a vector
    assert choose_kind(1_000_000, 256, "30MB") == "IVF4096,PQ16"
    # 4 * sqrt(1e8) = 40,000 -> 2**15 lists; m must divide 128, PQ32 + id = 40 B x 1.1 > 4 GB
    assert choose_kind(100_000_000, 128, "4GB") == "IVF32768,PQ16"
    with pytest.raises(IndexConfigError, match="raise --memory-budget"):
        choose_kind(1_000_000, 256, "1MB")
    assert parse_memory("4GB") == 4 * 10**9 and parse_memory("2GiB") == 2 * 2**30
    assert parse_memory("1.5 mb") == 1_500_000 and parse_memory(123) == 123 and parse_memory(None) is None
    with pytest.raises(IndexConfigError, match="not a size"):
        parse_memory("lots")


def test_auto_on_a_small_gallery_is_exact_and_bad_kinds_are_refused() -> None:
    x = np.random.default_rng(0).standard_normal((500, 16)).astype(np.float32)
    assert EmbeddingIndex.from_arrays(x, list(range(500))).kind == "exact"
    with pytest.raises(IndexConfigError, match="not a FAISS factory string"):
        EmbeddingIndex.from_arrays(x, list(range(500)), kind="IVFbogus")
    with pytest.raises(IndexConfigError, match="cannot train"):
        EmbeddingIndex.from_arrays(x, list(range(500)), kind="IVF4096,Flat")
    with pytest.raises(IndexConfigError, match="target recall"):
        EmbeddingIndex.from_arrays(x, list(range(500)), kind="HNSW8", target_recall=1.5)


def test_held_out_truth_is_the_exact_top_k_without_the_held_out_rows() -> None:
    import torch

    from core.search.recall import held_out_truth

    x = np.random.default_rng(3).standard_normal((20_000, 16)).astype(np.float32)  # > 2 blocks
    held = np.array([5, 9_000, 19_999])
    queries = x[held]
    scores = queries.astype(np.float64) @ x.astype(np.float64).T
    scores[:, held] = -np.inf
    want = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    got = held_out_truth(torch.from_numpy(x), queries, held, 10)
    assert np.array_equal(got, want) and not set(got.ravel()) & set(held.tolist())
