"""Build a FAISS backend and measure its recall: quantizers train on a sample, the search-time
knob is tuned on held-out queries to the smallest value that reaches the target recall@10.

Held-out queries are gallery rows left out of the training sample; each is searched exactly and
approximately with its own row excluded, so recall@10 = |approx top 10 & exact top 10| / 10
over the ten nearest *other* images, averaged over the queries.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.search import ann
from core.search.errors import IndexConfigError

RECALL_K = 10
DEFAULT_TARGET_RECALL = 0.95
DEFAULT_TUNING_QUERIES = 500
_ADD_CHUNK = 65_536  # rows handed to FAISS at a time (memory-mapped galleries stay paged out)


@dataclass(frozen=True)
class Tuning:
    """What :func:`tune` found; stored in the manifest under ``ann``.

    Attributes:
        param: ``"nprobe"``, ``"efSearch"`` or ``None`` (nothing to tune, e.g. ``Flat``).
        value: its tuned value (``None`` when there is no knob).
        recall_at_10: measured recall@10 at that value on ``n_queries`` held-out queries.
        target: the recall@10 aimed for.
        reached: whether ``recall_at_10 >= target`` (if not, ``value`` is the largest tried).
        n_queries: held-out queries measured.
    """

    param: str | None
    value: int | None
    recall_at_10: float
    target: float
    reached: bool
    n_queries: int


def exact_neighbours(vectors: torch.Tensor, queries: np.ndarray, exclude: np.ndarray, k: int) -> np.ndarray:
    """Exact top-``k`` rows per query, each query's own row excluded. Shape: (Q, k)."""
    _, rows = ann.ExactBackend(vectors).search(queries, k, [int(r) for r in exclude])
    return rows


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean over queries of ``|found & truth| / k``. Shape: both (Q, k)."""
    hits = sum(len(set(f.tolist()) & set(t.tolist()) - {-1}) for f, t in zip(found, truth, strict=True))
    return hits / truth.size if truth.size else 1.0


def split_sample(n: int, n_train: int, n_queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint sorted row samples: ``(training rows, held-out query rows)``."""
    rng = np.random.default_rng(seed)
    n_queries = min(n_queries, max(1, n // 10))
    perm = rng.permutation(n)
    queries = np.sort(perm[:n_queries])
    rest = perm[n_queries:] if n > n_queries else perm
    return np.sort(rest[: min(n_train, len(rest))]), queries


def build_faiss(vectors: torch.Tensor, kind: str, *, seed: int = 0, rerank: int | None = None,
                train_rows: np.ndarray | None = None) -> ann.FaissBackend:
    """Train ``kind`` on a sample of ``vectors`` (Shape: (N, D), unit rows) and add them all in chunks."""
    n, d = vectors.shape
    index = ann.new_faiss_index(kind, d)
    if not index.is_trained:
        rows = train_rows if train_rows is not None else split_sample(n, ann.train_size(kind, n), 0, seed)[0]
        try:
            index.train(np.ascontiguousarray(vectors.numpy()[rows]))
        except RuntimeError as exc:  # FAISS reports e.g. fewer training points than lists so
            raise IndexConfigError(
                f"cannot train {kind!r} on {len(rows):,} of {n:,} vectors "
                f"({str(exc).strip().splitlines()[-1][:160]}); choose fewer IVF lists or kind='auto'"
            ) from None
    gallery = vectors.numpy()
    for start in range(0, n, _ADD_CHUNK):
        index.add(np.ascontiguousarray(gallery[start : start + _ADD_CHUNK]))
    return ann.FaissBackend(index, kind, vectors, ann.param_name(index),
                            rerank=ann.default_rerank(kind) if rerank is None else rerank)


def tune(backend: ann.FaissBackend, query_rows: np.ndarray, *, target: float = DEFAULT_TARGET_RECALL,
         k: int = RECALL_K) -> Tuning:
    """Set ``backend``'s knob to the smallest value whose recall@``k`` on ``query_rows`` >= ``target``.

    Tries the knob's candidates cheapest first, then bisects between the last value that missed
    and the first that reached the target. Recall is not exactly monotone in the knob, so the
    value kept is always one that was measured to reach it.
    """
    queries = np.ascontiguousarray(backend.vectors.numpy()[query_rows])
    truth = exact_neighbours(backend.vectors, queries, query_rows, k)
    exclude: list[int | None] = [int(r) for r in query_rows]

    def measure(value: int | None) -> float:
        backend.set_value(value)
        return recall(backend.search(queries, k, exclude)[1], truth)

    values = ann.candidates(backend.index, backend.param, k)
    if not values:
        got = measure(None)
        return Tuning(None, None, got, target, got >= target, len(query_rows))
    low, best = None, None
    for value in values:
        got = measure(value)
        if got >= target:
            best = (value, got)
            break
        low = value
    if best is None:
        warnings.warn(f"{backend.kind}: recall@{k} {got:.3f} at {backend.param}={values[-1]} stays "
                      f"below the target {target}; the index keeps the largest setting tried",
                      stacklevel=2)
        return Tuning(backend.param, values[-1], got, target, False, len(query_rows))
    lo, hi = (low or 0), best[0]
    while hi - lo > 1:  # invariant: hi measured to reach the target
        mid = (lo + hi) // 2
        got = measure(mid)
        if got >= target:
            best, hi = (mid, got), mid
        else:
            lo = mid
    backend.set_value(best[0])
    return Tuning(backend.param, best[0], best[1], target, True, len(query_rows))


def tuning_record(kind: str, tuning: Tuning | None, rerank: int, n_train: int) -> dict[str, Any]:
    """The manifest's ``ann`` entry (``exact`` has recall 1.0 by construction)."""
    if tuning is None:
        return {"kind": kind, "recall_at_10": 1.0}
    return {"kind": kind, "param": tuning.param, "value": tuning.value,
            "recall_at_10": tuning.recall_at_10, "target_recall": tuning.target,
            "reached": tuning.reached, "tuning_queries": tuning.n_queries,
            "rerank": rerank, "trained_on": n_train}


def make_backend(
    vectors: torch.Tensor, kind: str = ann.AUTO, *, memory_budget: str | int | None = None,
    target_recall: float = DEFAULT_TARGET_RECALL, seed: int = 0,
    tuning_queries: int = DEFAULT_TUNING_QUERIES, rerank: int | None = None,
) -> tuple[ann.ExactBackend | ann.FaissBackend, dict[str, Any]]:
    """The backend for ``kind`` over ``vectors`` (Shape: (N, D), unit rows) and its manifest entry.

    ``"auto"`` resolves through :func:`core.search.ann.choose_kind`; FAISS kinds are trained on a
    sample, filled, and tuned to ``target_recall`` on held-out rows (see :func:`tune`).

    Raises:
        IndexConfigError: unknown kind, bad budget or target, or a kind that cannot be trained.
    """
    if not 0.0 < float(target_recall) <= 1.0:
        raise IndexConfigError(f"target recall must be in (0, 1], got {target_recall!r}")
    n, d = vectors.shape
    if kind == ann.AUTO:
        kind = ann.choose_kind(n, d, memory_budget)
    if kind == ann.EXACT:
        return ann.ExactBackend(vectors), tuning_record(ann.EXACT, None, 1, 0)
    train_rows, query_rows = split_sample(n, ann.train_size(kind, n), tuning_queries, seed)
    backend = build_faiss(vectors, kind, seed=seed, rerank=rerank, train_rows=train_rows)
    tuning = tune(backend, query_rows, target=float(target_recall))
    return backend, tuning_record(kind, tuning, backend.rerank, len(train_rows))
