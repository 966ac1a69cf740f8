"""Retrieval metrics: P@k and mAP@k, and both over a gallery labelled by COCO categories.

Definitions (the standard ones, as in e.g. ``ml_metrics.apk``), for one query whose ranked
results have binary relevance ``rel_1, rel_2, ...`` and that has ``R`` relevant items in the
whole gallery (the query itself never counts):

* ``P@k  = (1/k) * sum_{i<=k} rel_i``; a ranked list shorter than ``k`` counts the missing
  places as not relevant (the denominator stays ``k``).
* ``AP@k = (1/min(k, R)) * sum_{i<=k} P@i * rel_i``; 1.0 when the top ``min(k, R)`` places are
  all relevant. Undefined when ``R = 0``: such queries are left out of the mean and counted.
* ``mAP@k`` is the mean of AP@k over the queries with ``R > 0``.

Other tools divide the same sum ``S = sum_{i<=k} P@i * rel_i`` differently, so their numbers are
not comparable with ours:

* torchmetrics ``RetrievalMAP(top_k=k)``: ``S / (relevant items found in the top k)``, which is
  >= ours (equal when the top k holds min(k, R) relevant items);
* trec_eval ``map`` cut at k: ``S / R``, which is <= ours (equal when ``R <= k``).

E.g. one relevant hit at rank 2 of the top 5, R = 10: ours 0.5 / 5 = 0.1, torchmetrics
0.5 / 1 = 0.5, trec_eval 0.5 / 10 = 0.05 (``tests/core/search/test_metrics.py`` checks it).

For the gallery helper, an item is relevant to a query when they share at least one COCO
instance category; ``chance`` is the mean over queries of ``R / (N - 1)``, the expected P@k of
a random ranking.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from core.search.topk import topk_cosine, validate_k


def _as_matrix(relevance: Sequence[Sequence[float]] | Sequence[float] | np.ndarray) -> np.ndarray:
    rel = np.asarray(relevance, dtype=np.float64)
    if rel.ndim == 1:
        rel = rel[None, :]
    if rel.ndim != 2:
        raise ValueError(
            f"relevance must be 1-D (one query) or 2-D (queries x ranks), got {rel.ndim}-D"
        )
    if not np.isin(rel, (0.0, 1.0)).all():
        raise ValueError("relevance values must be 0 or 1")
    return rel


def _padded(rel: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` ranks, padding short lists with non-relevant places."""
    if rel.shape[1] >= k:
        return rel[:, :k]
    return np.pad(rel, ((0, 0), (0, k - rel.shape[1])))


def precision_at_k(
    relevance: Sequence[Sequence[float]] | Sequence[float] | np.ndarray, k: int
) -> float:
    """Mean P@k over queries.

    Args:
        relevance: 0/1 relevance of each ranked result, best first. Shape: (Q, L) or (L,).
        k: cut-off, >= 1.

    Returns:
        The mean over the ``Q`` queries of ``(relevant in the top k) / k``.
    """
    validate_k(k)
    rel = _as_matrix(relevance)
    if rel.shape[0] == 0:
        raise ValueError("no queries given")
    return float(_padded(rel, k).sum(axis=1).mean() / k)


def average_precision_at_k(
    relevance: Sequence[float] | np.ndarray, k: int, total_relevant: int | None = None
) -> float:
    """AP@k of one ranked list; ``nan`` when there is nothing relevant (``R = 0``).

    Args:
        relevance: 0/1 per rank, best first. Shape: (L,).
        k: cut-off, >= 1.
        total_relevant: ``R``, relevant items in the whole gallery; defaults to
            ``sum(relevance)``, i.e. ``relevance`` ranks the whole gallery.
    """
    validate_k(k)
    rel = _as_matrix(relevance)[0]
    r = int(rel.sum()) if total_relevant is None else int(total_relevant)
    if r < 0 or r < int(rel[:k].sum()):
        raise ValueError(f"total_relevant={r} is less than the relevant items in the top {k}")
    if r == 0:
        return math.nan
    top = _padded(rel[None, :], k)[0]
    precision_at_i = np.cumsum(top) / np.arange(1, k + 1)
    return float((precision_at_i * top).sum() / min(k, r))


def mean_average_precision(
    relevance: Sequence[Sequence[float]] | np.ndarray,
    k: int,
    total_relevant: Sequence[int] | np.ndarray | None = None,
) -> float:
    """mAP@k: mean AP@k over the queries with at least one relevant item (``nan`` if none has).

    Args:
        relevance: 0/1 per query and rank, best first. Shape: (Q, L).
        k: cut-off, >= 1.
        total_relevant: ``R`` per query (Shape: (Q,)); defaults to each row's sum.
    """
    rel = _as_matrix(relevance)
    totals = rel.sum(axis=1) if total_relevant is None else np.asarray(total_relevant)
    if totals.shape != (rel.shape[0],):
        raise ValueError("total_relevant needs one count per query")
    aps = [
        average_precision_at_k(row, k, int(r)) for row, r in zip(rel, totals, strict=True) if r > 0
    ]
    return float(np.mean(aps)) if aps else math.nan


@dataclass(frozen=True)
class RetrievalMetrics:
    """Leave-one-out retrieval quality over a labelled gallery.

    Attributes:
        precision: P@k for each requested k, over all ``n_queries`` queries.
        map_k: the cut-off of ``mean_ap``.
        mean_ap: mAP@map_k over the queries with at least one relevant item.
        n_queries: gallery size N (every image is a query once).
        n_without_relevant: queries left out of mAP because nothing else shares a category.
        chance: mean fraction of the other N - 1 images that are relevant.
    """

    precision: dict[int, float]
    map_k: int
    mean_ap: float
    n_queries: int
    n_without_relevant: int
    chance: float


def relevance_matrix(categories: Sequence[Iterable[int]]) -> np.ndarray:
    """``rel[q, g]``: images ``q`` and ``g`` share a category (``False`` on the diagonal).

    Shape: (N, N), bool.
    """
    cat_sets = [set(int(c) for c in cats) for cats in categories]
    vocab = sorted(set().union(*cat_sets)) if cat_sets else []
    column = {c: j for j, c in enumerate(vocab)}
    multi_hot = np.zeros((len(cat_sets), len(vocab)), dtype=np.float32)
    for i, cats in enumerate(cat_sets):
        multi_hot[i, [column[c] for c in cats]] = 1.0
    shared = (multi_hot @ multi_hot.T) > 0
    np.fill_diagonal(shared, False)
    return shared


def retrieval_metrics(
    embeddings: torch.Tensor | np.ndarray,
    categories: Sequence[Iterable[int]],
    ks: Sequence[int] = (1, 5),
    map_k: int = 5,
) -> RetrievalMetrics:
    """P@k and mAP@k of leave-one-out cosine retrieval where relevant = shares a category.

    Args:
        embeddings: one row per image, L2-normalised here. Shape: (N, D).
        categories: per image, its COCO instance category ids (may be empty).
        ks: the cut-offs for P@k.
        map_k: the cut-off for mAP@k.
    """
    emb = torch.as_tensor(
        np.asarray(embeddings) if isinstance(embeddings, np.ndarray) else embeddings
    )
    emb = torch.nn.functional.normalize(emb.float(), dim=1)
    n = emb.shape[0]
    if n < 2 or len(categories) != n:
        raise ValueError(
            f"need >= 2 images with one category list each (got {n} and {len(categories)})"
        )
    for k in (*ks, map_k):
        validate_k(k)
    relevant = relevance_matrix(categories)
    depth = max(*ks, map_k)
    hits = topk_cosine(emb, emb, depth, exclude=list(range(n)))
    ranked = np.array(
        [[relevant[q, g] for g, _ in row] for q, row in enumerate(hits)], dtype=np.float64
    )
    totals = relevant.sum(axis=1)
    return RetrievalMetrics(
        precision={k: precision_at_k(ranked, k) for k in ks},
        map_k=map_k,
        mean_ap=mean_average_precision(ranked, map_k, totals),
        n_queries=n,
        n_without_relevant=int((totals == 0).sum()),
        chance=float((totals / (n - 1)).mean()),
    )
