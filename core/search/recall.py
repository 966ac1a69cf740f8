"""Build a FAISS backend and measure its recall: quantizers train on a sample, the search-time
knob is tuned on held-out queries to the smallest value that reaches the target recall@10 (for
lossy codes together with the depth of the exact re-ranking, :func:`tune_rerank`).

Held-out queries are a random sample of gallery rows that are *not in the FAISS index* while it
is tuned (they are added afterwards, so the final index holds every row): each is searched
exactly over the other rows and approximately in the index, and recall@10 = |approx top 10 &
exact top 10| / 10, averaged over the queries. A query that is in the graph or lists it searches
finds its neighbours more easily, which would overstate recall for new images.

Two disjoint held-out sets are drawn: the knob is tuned on the first, and since the smallest value
that reaches the target on those queries is picked *because* they reached it, their recall is
optimistic for new images (HNSW32 on 100,000 x 128 clustered vectors: 0.952 on the tuning queries,
0.928 on fresh ones). The setting is then confirmed on the second set, which played no part in
choosing it: while it misses the target the knob (then, for lossy codes, the re-rank depth) is
raised, and the recall recorded is the one measured on the confirmation set.
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
DEFAULT_TUNING_QUERIES = 500  # per held-out set: as many again confirm the tuned setting
_STEP = 1.25  # confirmation raises the knob by this factor at a time
# Re-rank depths tried for lossy codes (PQ): each re-scores depth * k candidates exactly.
RERANK_DEPTHS = (4, 8, 16, 32, 64, 128)
_ADD_CHUNK = 65_536  # rows handed to FAISS at a time (memory-mapped galleries stay paged out)
_TRUTH_BLOCK = 8_192  # gallery rows scored at a time for the exact answers of the tuning queries


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


def held_out_truth(vectors: torch.Tensor, queries: np.ndarray, held_out: np.ndarray, k: int) -> np.ndarray:
    """Exact top-``k`` rows per query among the rows not in ``held_out``, float64 scores.

    The gallery is read in blocks of ``_TRUTH_BLOCK`` rows, so a memory-mapped one is paged
    through once; each block keeps only its own top ``k`` before merging, so the temporaries stay
    a few tens of MB whatever the gallery size. Shape: (Q, k).
    """
    gallery = vectors.numpy()
    q64 = queries.astype(np.float64)
    best_s = np.full((len(queries), 0), -np.inf)
    best_r = np.zeros((len(queries), 0), dtype=np.int64)
    skip = np.asarray(held_out, dtype=np.int64)
    for start in range(0, gallery.shape[0], _TRUTH_BLOCK):
        scores = q64 @ gallery[start : start + _TRUTH_BLOCK].astype(np.float64).T
        local = skip[(skip >= start) & (skip < start + scores.shape[1])] - start
        scores[:, local] = -np.inf
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if scores.shape[1] > k else \
            np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
        best_s = np.hstack([best_s, np.take_along_axis(scores, top, 1)])
        best_r = np.hstack([best_r, top + start])
        keep = np.argsort(-best_s, axis=1, kind="stable")[:, :k]
        best_s, best_r = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_r, keep, 1)
    return best_r


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean over queries of ``|found & truth| / k``. Shape: both (Q, k)."""
    per_query = query_recalls(found, truth)
    return float(per_query.mean()) if per_query.size else 1.0


def query_recalls(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``|found & truth| / k`` per query. Shape: (Q,)."""
    k = max(1, truth.shape[1]) if truth.ndim == 2 else 1
    return np.asarray([len(set(f.tolist()) & set(t.tolist()) - {-1}) / k
                       for f, t in zip(found, truth, strict=True)], dtype=np.float64)


def split_sample(n: int, n_train: int, n_queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint sorted row samples: ``(training rows, held-out query rows)``."""
    rng = np.random.default_rng(seed)
    n_queries = min(n_queries, max(1, n // 10))
    perm = rng.permutation(n)
    queries = np.sort(perm[:n_queries])
    rest = perm[n_queries:] if n > n_queries else perm
    return np.sort(rest[: min(n_train, len(rest))]), queries


def build_faiss(vectors: torch.Tensor, kind: str, train_rows: np.ndarray, held_out: np.ndarray,
                *, rerank: int | None = None) -> ann.FaissBackend:
    """Train ``kind`` on ``train_rows`` of ``vectors`` (Shape: (N, D), unit rows) and add every row
    but ``held_out``, in blocks, labelled by row (call :func:`add_rows` with ``held_out`` after tuning).

    Raises:
        IndexConfigError: bad kind, or FAISS cannot train it on this sample.
    """
    n, d = vectors.shape
    faiss = ann._faiss()
    index = ann.new_faiss_index(kind, d)
    ivf = faiss.try_extract_index_ivf(index)
    if getattr(ivf, "do_polysemous_training", False):
        # Polysemous training reorders PQ codes for Hamming pre-filtering, which these searches
        # never use (IVF1024,PQ32 on 65,536 x 256 vectors here: 103 s to train with it, 27 s without).
        ivf.do_polysemous_training = False
    if ivf is None:  # only IVF takes explicit labels natively
        index = faiss.IndexIDMap(index)
    if not index.is_trained:
        try:
            index.train(np.ascontiguousarray(vectors.numpy()[train_rows]))
        except RuntimeError as exc:  # FAISS reports e.g. fewer training points than lists so
            raise IndexConfigError(
                f"cannot train {kind!r} on {len(train_rows):,} of {n:,} vectors "
                f"({str(exc).strip().splitlines()[-1][:160]}); choose fewer IVF lists or kind='auto'"
            ) from None
    keep = np.ones(n, dtype=bool)
    keep[held_out] = False
    for start in range(0, n, _ADD_CHUNK):
        rows = np.flatnonzero(keep[start : start + _ADD_CHUNK]) + start
        add_rows(index, vectors, rows)
    return ann.FaissBackend(index, kind, vectors, ann.param_name(index),
                            rerank=ann.default_rerank(kind) if rerank is None else rerank)


def add_rows(index: Any, vectors: torch.Tensor, rows: np.ndarray) -> None:
    """Add ``vectors[rows]`` to a FAISS index, labelled by their row numbers."""
    if len(rows):
        index.add_with_ids(np.ascontiguousarray(vectors.numpy()[rows]), rows.astype(np.int64))


class RecallProbe:
    """Recall@k of a backend at a knob value, on fixed held-out queries (not in the index)."""

    def __init__(self, backend: ann.FaissBackend, query_rows: np.ndarray, k: int = RECALL_K,
                 absent: np.ndarray | None = None) -> None:
        """``absent``: every row not in the index (default ``query_rows``), left out of the truth."""
        self.backend, self.k, self.error = backend, k, 0.0
        self.queries = np.ascontiguousarray(backend.vectors.numpy()[query_rows])
        self.truth = held_out_truth(backend.vectors, self.queries,
                                    query_rows if absent is None else absent, k)

    def __call__(self, value: int | None) -> float:
        """Recall@k at ``value``; its standard error over the queries is left in ``self.error``."""
        self.backend.set_value(value)
        per_query = query_recalls(self.backend.search(self.queries, self.k)[1], self.truth)
        self.error = float(per_query.std() / np.sqrt(len(per_query))) if len(per_query) > 1 else 0.0
        return float(per_query.mean()) if len(per_query) else 1.0


def tune(probe: RecallProbe, *, target: float = DEFAULT_TARGET_RECALL) -> Tuning:
    """Set the probe's backend knob to the smallest value whose recall >= ``target``.

    Tries the knob's candidates cheapest first, then bisects between the last value that missed
    and the first that reached the target. Recall is not exactly monotone in the knob, so the
    value kept is always one that was measured to reach it.
    """
    backend, nq = probe.backend, len(probe.queries)
    values = ann.candidates(backend.index, backend.param, probe.k)
    if not values:
        got = probe(None)
        return Tuning(None, None, got, target, got >= target, nq)
    low, best, got = None, None, 0.0
    for value in values:
        got = probe(value)
        if got >= target:
            best = (value, got)
            break
        low = value
    if best is None:
        warnings.warn(f"{backend.kind}: recall@{probe.k} {got:.3f} at {backend.param}={values[-1]} "
                      f"stays below the target {target}; the index keeps the largest setting tried",
                      stacklevel=2)
        return Tuning(backend.param, values[-1], got, target, False, nq)
    lo, hi = (low or 0), best[0]
    while hi - lo > 1:  # invariant: hi was measured to reach the target
        mid = (lo + hi) // 2
        got = probe(mid)
        if got >= target:
            best, hi = (mid, got), mid
        else:
            lo = mid
    backend.set_value(best[0])
    return Tuning(backend.param, best[0], best[1], target, True, nq)


def tune_rerank(probe: RecallProbe, *, target: float = DEFAULT_TARGET_RECALL,
                depths: tuple[int, ...] = RERANK_DEPTHS) -> Tuning:
    """For lossy codes: tune the re-rank depth and the knob together; leaves both set on the backend.

    For each depth (shallow first) the knob is tuned as in :func:`tune`; among the pairs that
    reach the target the one with the least estimated work per query (:func:`work_per_query`)
    is kept. Deeper re-ranking stops once the re-ranking alone costs more than the best pair, or
    once a reached pair costs no less than the one before it. If no depth reaches the target,
    the deepest one with its largest knob value is kept and a warning says so.
    """
    backend = probe.backend
    n = len(backend.vectors)
    best: tuple[float, Tuning, int] | None = None
    last: tuple[Tuning, int] | None = None
    for depth in depths:
        if best is not None and depth * probe.k * backend.vectors.shape[1] * 4 >= best[0]:
            break  # re-ranking alone would read more than the best pair does in all
        backend.rerank = depth
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tuning = tune(probe, target=target)
        last = (tuning, depth)
        if tuning.reached:
            work = work_per_query(backend, tuning.value, depth, probe.k)
            if best is not None and work >= best[0]:
                break
            best = (work, tuning, depth)
        if depth * probe.k >= n:  # every row is already re-scored: deeper changes nothing
            break
    if best is None:
        assert last is not None
        tuning, depth = last
        warnings.warn(f"{backend.kind}: recall@{probe.k} {tuning.recall_at_10:.3f} at "
                      f"{backend.param}={tuning.value}, re-rank depth {depth} stays below the target "
                      f"{target}; the index keeps the deepest setting tried", stacklevel=2)
    else:
        _, tuning, depth = best
    backend.rerank = depth
    backend.set_value(tuning.value)
    return tuning


def confirm(probe: RecallProbe, tuning: Tuning) -> Tuning:
    """Measure the tuned setting on other held-out queries (``probe``'s); raise it until they
    reach the target by one standard error of their mean (so that new images, not only these,
    get it): the knob by :data:`_STEP` up to its largest candidate, then (lossy codes) the re-rank
    depth. Returns the confirmed setting with the recall measured on ``probe``."""
    backend, target = probe.backend, tuning.target
    value, got = tuning.value, probe(tuning.value)

    def short() -> bool:
        return got < min(1.0, target + probe.error)

    top = max(ann.candidates(backend.index, backend.param, probe.k), default=None)
    while short() and value is not None and top is not None and value < top:
        value = min(top, max(value + 1, int(value * _STEP)))
        got = probe(value)
    for depth in (d for d in RERANK_DEPTHS if backend.rerank > 1 and d > backend.rerank):
        if not short():
            break
        backend.rerank = depth
        got = probe(value)
    if got < target:
        warnings.warn(f"{backend.kind}: recall@{probe.k} {got:.3f} on the confirmation queries at "
                      f"{backend.param}={value} stays below the target {target}", stacklevel=2)
    backend.set_value(value)
    return Tuning(backend.param, value, got, target, got >= target, len(probe.queries))


def work_per_query(backend: ann.FaissBackend, value: int | None, depth: int, k: int) -> float:
    """Estimated bytes read per query: codes scanned at knob ``value`` plus re-ranked vectors.

    IVF: ``nprobe`` lists of ``N / nlist`` codes; a graph (efSearch): about 32 codes per visited
    node; no knob: every code. Re-ranking reads ``depth * k`` float32 vectors.
    """
    faiss = ann._faiss()
    n, d = backend.vectors.shape
    ivf = faiss.try_extract_index_ivf(backend.index)
    code = float(ivf.code_size) if ivf is not None else float(getattr(backend.index, "code_size", 4 * d))
    if ivf is not None:
        scanned = (value or 1) * n / max(1, int(ivf.nlist)) * code
    elif value is not None:
        scanned = value * 32 * code
    else:
        scanned = n * code
    return scanned + depth * k * d * 4


def tuning_record(kind: str, tuning: Tuning | None, rerank: int, n_train: int,
                  confirmed: Tuning | None = None) -> dict[str, Any]:
    """The manifest's ``ann`` entry (``exact`` has recall 1.0 by construction); ``recall_at_10``
    is the confirmed figure when there is one, ``tuning_recall_at_10`` the tuning queries'."""
    if tuning is None:
        return {"kind": kind, "recall_at_10": 1.0}
    final = confirmed or tuning
    record = {"kind": kind, "param": final.param, "value": final.value,
              "recall_at_10": final.recall_at_10, "target_recall": final.target,
              "reached": final.reached, "tuning_queries": tuning.n_queries,
              "rerank": rerank, "trained_on": n_train}
    if confirmed is not None:
        record.update(tuning_recall_at_10=tuning.recall_at_10, confirm_queries=confirmed.n_queries)
    return record


def make_backend(
    vectors: torch.Tensor, kind: str = ann.AUTO, *, memory_budget: str | int | None = None,
    target_recall: float = DEFAULT_TARGET_RECALL, seed: int = 0,
    tuning_queries: int = DEFAULT_TUNING_QUERIES, rerank: int | None = None,
) -> tuple[ann.ExactBackend | ann.FaissBackend, dict[str, Any]]:
    """The backend for ``kind`` over ``vectors`` (Shape: (N, D), unit rows) and its manifest entry.

    ``"auto"`` resolves through :func:`core.search.ann.choose_kind`; FAISS kinds are trained on a
    sample, filled, and tuned to ``target_recall`` on held-out rows (see :func:`tune`; lossy codes
    also tune the re-rank depth unless ``rerank`` is given, see :func:`tune_rerank`).

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
    train_rows, query_rows = split_sample(n, ann.train_size(kind, n), 2 * tuning_queries, seed)
    tune_rows, confirm_rows = query_rows[::2], query_rows[1::2]  # both random, disjoint, absent
    backend = build_faiss(vectors, kind, train_rows, query_rows, rerank=rerank)
    probe = RecallProbe(backend, tune_rows, absent=query_rows)
    if rerank is None and backend.rerank > 1:  # lossy codes: the re-rank depth is tuned too
        tuning = tune_rerank(probe, target=float(target_recall))
    else:
        tuning = tune(probe, target=float(target_recall))
    confirmed = confirm(RecallProbe(backend, confirm_rows, absent=query_rows), tuning) if len(confirm_rows) else None
    add_rows(backend.index, vectors, query_rows)  # the final index holds every row
    return backend, tuning_record(kind, tuning, backend.rerank, len(train_rows), confirmed)
