"""Exact cosine top-k over unit-norm embeddings: one matmul and ``torch.topk`` per block of queries."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from core.search.errors import QueryError


@dataclass(frozen=True)
class SearchResult:
    """One retrieved image.

    Attributes:
        rank: 1 for the most similar image.
        image_id: the indexed image's id.
        path: where the image was when it was indexed.
        score: cosine similarity to the query, in [-1, 1]; for text search
            (``EmbeddingIndex.find_text``) the caption's BM25 relevance (higher is better).
        captions: its captions (may be empty).
        categories: its COCO instance category ids (may be empty).
        source: where an image without a file of its own is read from (the tar shard of a
            webdataset member; see :func:`core.search.result_image`), else what the index recorded.
        matched_caption: for text search, the caption that matched (see ``matched_words``).
        matched_words: for text search, the query's words (folded) found in ``matched_caption``.
        generated: which of ``captions`` a captioner wrote (``ssl embed --caption`` /
            ``--captions FILE``); the others are the data set's reference captions.
    """

    rank: int
    image_id: int | str
    path: Path
    score: float
    captions: list[str] = field(default_factory=list)
    categories: list[int] = field(default_factory=list)
    source: str | None = None
    matched_caption: str | None = None
    matched_words: list[str] = field(default_factory=list)
    generated: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (``path`` as a string)."""
        return {
            "rank": self.rank,
            "image_id": self.image_id,
            "path": str(self.path),
            "score": self.score,
            "captions": list(self.captions),
            "categories": list(self.categories),
            "source": self.source,
            "matched_caption": self.matched_caption,
            "matched_words": list(self.matched_words),
            "generated": list(self.generated),
        }


def validate_k(k: int) -> int:
    """Raise a clear error for a non-integer or non-positive ``k``."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise QueryError(f"k must be an integer >= 1, got {k!r}")
    return k


# At most this many float32 scores (256 MB) exist at once: queries are scored in blocks of
# max(1, _MAX_SCORES // N) rows, so an all-vs-all evaluation (Q = N) does not need Q x N memory.
_MAX_SCORES = 1 << 26


# Why NumPy on the CPU (measured 2026-11-27 on a 2-core AMD EPYC, torch 2.14 with MKL, NumPy 2.4
# with OpenBLAS 0.3.31, 1,000,000 x 256 float32 gallery, best of several runs): torch's
# matrix-vector product took 132 ms for one query (~8 GB/s over the 1 GB gallery), NumPy's 57-65 ms;
# for 64 queries torch's matmul took 595 ms, NumPy's 359 ms (torch.topk: 3 ms for 1 query, 61 ms
# for 64). ``gallery @ q.T`` beat ``q @ gallery.T`` for a single query (57 vs 59 ms best, 60 vs
# 64 ms median) and its ``(N, 1)`` result is the ``(1, N)`` row for free; for Q > 1 its transposed
# result would make torch.topk 10x slower (570 vs 61 ms), so batches use ``q @ gallery.T``. A
# row-chunked matmul with a running top-k (32k / 128k rows) was slower for 1 and for 64 queries
# (148-245 vs 113 ms, 20-25 vs 14 ms per query, measured side by side on the loaded machine).
def _scores_numpy(queries: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    """Cosine scores of CPU tensors through NumPy's BLAS (zero-copy views of float32 tensors).

    Shape:
        queries: ``(Q, D)``; gallery: ``(N, D)``; output: ``(Q, N)`` float32.
    """
    g = gallery.detach().float().numpy()
    q = queries.detach().float().numpy()
    scores = (g @ q.T).T if q.shape[0] == 1 else q @ g.T
    return torch.from_numpy(scores)


def _scores_torch(queries: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    """Cosine scores on the tensors' device (CUDA: cuBLAS is the fast path there).

    Shape:
        queries: ``(Q, D)``; gallery: ``(N, D)``; output: ``(Q, N)`` float32.
    """
    return queries.float() @ gallery.float().T


def _score_fn(gallery: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """NumPy for a CPU gallery, torch everywhere else."""
    return _scores_numpy if gallery.device.type == "cpu" else _scores_torch


def topk_cosine(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    k: int,
    exclude: Sequence[int | None] | None = None,
) -> list[list[tuple[int, float]]]:
    """Exact top-k gallery rows by cosine similarity for each query row.

    Both inputs must already be L2-normalised, so cosine similarity is the dot product. CPU
    galleries are scored with NumPy's BLAS (twice as fast as torch's there, see ``_scores_numpy``),
    others with torch; queries go in blocks so that at most ``_MAX_SCORES`` scores exist at once.

    Args:
        queries: Shape: (Q, D).
        gallery: Shape: (N, D).
        k: results per query (>= 1); clipped to what is available.
        exclude: per query, a gallery row to leave out (the query itself) or ``None``.

    Returns:
        Per query, ``(gallery row, score)`` pairs, best first; at most ``N`` (``N - 1`` when a
        row is excluded) of them.
    """
    validate_k(k)
    if queries.ndim != 2 or gallery.ndim != 2 or queries.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"query shape {tuple(queries.shape)} does not match gallery shape {tuple(gallery.shape)}"
        )
    n, nq = gallery.shape[0], queries.shape[0]
    if exclude is not None and len(exclude) != nq:
        raise ValueError("exclude must have one entry per query")
    if n == 0 or nq == 0:
        return [[] for _ in range(nq)]
    score = _score_fn(gallery)
    block = max(1, _MAX_SCORES // n)
    out: list[list[tuple[int, float]]] = []
    for start in range(0, nq, block):
        scores = score(queries[start : start + block], gallery)  # (block, N)
        if exclude is not None:
            pairs = [(r, g) for r, g in enumerate(exclude[start : start + block]) if g is not None]
            if pairs:
                rows, cols = zip(*pairs, strict=True)
                # -inf sorts last, so an excluded row only appears if k > N - 1, and we drop it below.
                scores[list(rows), list(cols)] = float("-inf")
        values, indices = torch.topk(scores, k=min(k, n), dim=1)
        for vals, idxs in zip(values.tolist(), indices.tolist(), strict=True):
            out.append([(i, v) for i, v in zip(idxs, vals, strict=True) if v != float("-inf")])
    return out
