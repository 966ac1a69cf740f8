"""Exact cosine top-k over unit-norm embeddings: one matmul and ``torch.topk``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch


@dataclass(frozen=True)
class SearchResult:
    """One retrieved image.

    Attributes:
        rank: 1 for the most similar image.
        image_id: the indexed image's id.
        path: where the image was when it was indexed.
        score: cosine similarity to the query, in [-1, 1].
        captions: its captions (may be empty).
        categories: its COCO instance category ids (may be empty).
    """

    rank: int
    image_id: int | str
    path: Path
    score: float
    captions: list[str] = field(default_factory=list)
    categories: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (``path`` as a string)."""
        return {
            "rank": self.rank,
            "image_id": self.image_id,
            "path": str(self.path),
            "score": self.score,
            "captions": list(self.captions),
            "categories": list(self.categories),
        }


def validate_k(k: int) -> int:
    """Raise a clear error for a non-integer or non-positive ``k``."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    return k


def topk_cosine(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    k: int,
    exclude: Sequence[int | None] | None = None,
) -> list[list[tuple[int, float]]]:
    """Exact top-k gallery rows by cosine similarity for each query row.

    Both inputs must already be L2-normalised, so cosine similarity is the dot product.

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
    n = gallery.shape[0]
    if exclude is not None and len(exclude) != queries.shape[0]:
        raise ValueError("exclude must have one entry per query")
    if n == 0 or queries.shape[0] == 0:
        return [[] for _ in range(queries.shape[0])]
    scores = queries.float() @ gallery.float().T  # (Q, N)
    if exclude is not None:
        rows = [q for q, g in enumerate(exclude) if g is not None]
        cols = [g for g in exclude if g is not None]
        if rows:
            # -inf sorts last, so an excluded row only appears if k > N - 1, and we drop it below.
            scores[rows, cols] = float("-inf")
    values, indices = torch.topk(scores, k=min(k, n), dim=1)
    out: list[list[tuple[int, float]]] = []
    for vals, idxs in zip(values.tolist(), indices.tolist(), strict=True):
        out.append([(i, v) for i, v in zip(idxs, vals, strict=True) if v != float("-inf")])
    return out
