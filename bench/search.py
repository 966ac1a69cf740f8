"""Top-k search: exact ``topk_cosine`` and the FAISS backends of ``EmbeddingIndex`` vs a NumPy
matmul + argpartition baseline (build time, peak memory, size on disk, latency, recall@10)."""

from __future__ import annotations

import time

import numpy as np
import torch

from bench.common import AreaResult, Row, best_seconds

DIM, K, BATCH = 256, 10, 64


def numpy_topk(queries: np.ndarray, gallery: np.ndarray, k: int) -> np.ndarray:
    """What a user writes without a library: one matmul, argpartition, then sort the k.

    Shape:
        queries: ``(Q, D)``; gallery: ``(N, D)``; output: ``(Q, k)`` row indices, best first.
    """
    scores = queries @ gallery.T
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def _unit(rows: int, gen: torch.Generator) -> torch.Tensor:
    x = torch.randn(rows, DIM, generator=gen)
    return x / x.norm(dim=1, keepdim=True)


def _recall(found: list[list[int]], exact: np.ndarray) -> float:
    hits = sum(len(set(f) & set(e.tolist())) for f, e in zip(found, exact, strict=True))
    return hits / exact.size


def run(device: torch.device, quick: bool) -> AreaResult:
    from core.search.topk import topk_cosine

    n = 100_000 if quick else 1_000_000
    gen = torch.Generator().manual_seed(0)
    gallery = _unit(n, gen)
    queries = _unit(BATCH, gen)
    g_np, q_np = gallery.numpy(), queries.numpy()
    res = AreaResult("search", {"gallery": f"{n:,} x {DIM} float32 (L2-normalised)", "k": K,
                                "batch_queries": BATCH, "device": "cpu (search runs where the index lives)"})
    # Exact answer in float64, independent of both implementations.
    exact = numpy_topk(q_np.astype(np.float64), g_np.astype(np.float64), K)

    singles = 8 if quick else 16
    sec = best_seconds(lambda: [numpy_topk(q_np[i : i + 1], g_np, K) for i in range(singles)], device)
    res.add(Row("numpy single query", "reference", sec / singles * 1000, unit="ms", notes="matmul + argpartition"))
    sec = best_seconds(lambda: [topk_cosine(queries[i : i + 1], gallery, K) for i in range(singles)], device)
    res.add(Row("topk_cosine single query", "project", sec / singles * 1000, unit="ms",
                notes="NumPy BLAS scores + torch.topk"), vs="numpy single query")
    sec = best_seconds(lambda: numpy_topk(q_np, g_np, K), device)
    res.add(Row(f"numpy {BATCH} queries", "reference", sec / BATCH * 1000, unit="ms", notes="per query"))
    out: dict[str, list] = {}
    sec = best_seconds(lambda: out.update(r=topk_cosine(queries, gallery, K)), device)
    res.add(Row(f"topk_cosine {BATCH} queries", "project", sec / BATCH * 1000, unit="ms",
                notes="per query; NumPy BLAS scores + torch.topk"),
            vs=f"numpy {BATCH} queries")
    ours = [[i for i, _ in row] for row in out["r"]]
    res.extra["recall@10 vs exact float64 (topk_cosine, numpy)"] = (
        f"{_recall(ours, exact):.4f}, {_recall(numpy_topk(q_np, g_np, K).tolist(), exact):.4f}")
    res.extra["memory-bound floor (one read of the gallery)"] = f"{gallery.numel() * 4 / 1e6:.0f} MB per pass"
    _ann_rows(res, g_np, q_np, exact, quick, device)
    return res


def _ann_rows(res: AreaResult, gallery: np.ndarray, queries: np.ndarray, exact: np.ndarray,
              quick: bool, device: torch.device) -> None:
    """Per FAISS type: build time, peak RSS, size on disk, single/batched latency, recall@10."""
    from core.search.ann import nlist_for

    n = gallery.shape[0]
    nlist = nlist_for(n)
    kinds = [f"IVF{nlist},Flat", "HNSW32"] if quick else [f"IVF{nlist},Flat", f"IVF{nlist},PQ32", "HNSW32"]
    ids = list(range(n))
    for kind in kinds:
        _ann_kind(res, kind, gallery, ids, queries, exact, device)


def _ann_kind(res: AreaResult, kind: str, gallery: np.ndarray, ids: list[int], queries: np.ndarray,
              exact: np.ndarray, device: torch.device) -> None:
    import resource
    import shutil
    import tempfile
    from pathlib import Path

    from core.search import EmbeddingIndex

    start = time.perf_counter()
    index = EmbeddingIndex.from_arrays(gallery, ids, kind=kind)
    build_s = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    folder = Path(tempfile.mkdtemp(prefix="bench-index-"))
    try:
        index.save(folder)
        disk_mb = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    singles = 16
    sec = best_seconds(lambda: [index.search(queries[i : i + 1], K) for i in range(singles)], device)
    res.add(Row(f"{kind} single query", "project", sec / singles * 1000, unit="ms",
                notes=f"{index.ann_info.get('param')}={index.ann_info.get('value')}"),
            vs="numpy single query")
    sec = best_seconds(lambda: index.search(queries, K), device)
    res.add(Row(f"{kind} {BATCH} queries", "project", sec / BATCH * 1000, unit="ms",
                notes="per query"), vs=f"numpy {BATCH} queries")
    found = index.search(queries, K)[1]
    res.extra[kind] = (
        f"build {build_s:.1f} s, peak RSS so far {peak_mb:.0f} MB, on disk {disk_mb:.0f} MB, "
        f"recall@10 built-in {index.recall_at_10:.3f}, vs float64 exact {_recall(found.tolist(), exact):.3f}")
