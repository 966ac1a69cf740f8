"""Honest similarity: warn when an index's embeddings have collapsed; spot a query that is in the gallery.

Shared by both apps and the ``img2text ssl search`` / ``ssl eval`` commands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from core.fileio import sha256_bytes, sha256_file
from core.search import mark_words

__all__ = ["COLLAPSE_LOW_SCORE", "COLLAPSE_SPREAD", "EmbeddingHealth", "Neighbours", "collapse_warning",
           "embedding_health", "find_neighbours", "gallery_matches"]

COLLAPSE_SPREAD = 0.1  # spread (mean per-dimension std x sqrt(D)) below this = collapsed; ~1 healthy
COLLAPSE_LOW_SCORE = 0.98  # 5% of image pairs score below this, or the scores are near-constant
_SAMPLE = 512  # rows used to measure (evenly spaced), so the check stays cheap on big galleries


@dataclass(frozen=True)
class EmbeddingHealth:
    """How spread out an index's embeddings are."""

    spread: float  # mean per-dimension std of unit embeddings x sqrt(D): ~1 spread out, ~0 one point
    mean_score: float  # mean cosine similarity between two different images (1.0 = all the same)
    low_score: float  # 5th percentile of those cosines: near 1 = every pair looks alike
    score_range: tuple[float, float]  # lowest and highest cosine between two different images


def embedding_health(embeddings: torch.Tensor) -> EmbeddingHealth | None:
    """Spread and pairwise-score figures of ``(N, D)`` embeddings (None for fewer than 2 rows).

    Shape:
        embeddings: ``(N, D)``; at most 512 evenly spaced rows are used.
    """
    n = embeddings.shape[0]
    if n < 2:
        return None
    rows = embeddings[torch.linspace(0, n - 1, min(n, _SAMPLE)).round().long().unique()]
    unit = F.normalize(rows.float(), dim=1)
    spread = float(unit.std(dim=0).mean()) * math.sqrt(unit.shape[1])
    scores = unit @ unit.T
    off = scores[~torch.eye(len(unit), dtype=torch.bool)]
    low = float(torch.quantile(off, 0.05)) if off.numel() > 1 else float(off.min())
    return EmbeddingHealth(spread, float(off.mean()), low, (float(off.min()), float(off.max())))


def collapse_warning(index: Any) -> str | None:
    """A warning for users when ``index``'s embeddings have collapsed, else None.

    Collapsed: the spread is near zero (below :data:`COLLAPSE_SPREAD`) or almost every pair of
    images scores near 1 (the 5th percentile above :data:`COLLAPSE_LOW_SCORE`); then neighbour
    scores say nothing about the images.
    """
    health = embedding_health(index.embeddings)
    if health is None or (health.spread >= COLLAPSE_SPREAD and health.low_score <= COLLAPSE_LOW_SCORE):
        return None
    low, high = health.score_range
    return (f"The index's embeddings have collapsed (spread {health.spread:.3f}, healthy is about 1; "
            f"scores between different images {low:.3f}-{high:.3f}): similarity scores here mean "
            "little. Train longer or with a larger batch or lower temperature (check emb_std in the "
            "run's history), then rebuild the index with `img2text ssl embed`.")


@dataclass(frozen=True)
class Neighbours:
    """A query's nearest gallery images."""

    same: Any  # the SearchResult of the gallery image with the query's exact bytes, or None
    hits: list[Any]  # up to k other SearchResults, best first, ranks renumbered from 1


def find_neighbours(index: Any, image: Any, data: bytes | None, k: int) -> Neighbours:
    """The top ``k`` neighbours of an uploaded image, not counting the gallery copy of itself.

    Args:
        index: an ``EmbeddingIndex``.
        image: the query as ``find_similar`` takes it (a loaded image).
        data: the upload's bytes; a hit whose indexed bytes have the same sha256 is the same
            image (the hash recorded at build time; for indexes without one, its file's or tar
            member's bytes now).
        k: neighbours wanted.
    """
    hits = index.find_similar(image, k=min(k + 1, len(index)))
    same = None
    if data is not None:
        digest = sha256_bytes(data)
        same = next((hit for hit in hits if _same_bytes(index, hit, data, digest)), None)
    others = [h for h in hits if h is not same][:k]
    return Neighbours(same, [replace(h, rank=rank) for rank, h in enumerate(others, start=1)])


def _same_bytes(index: Any, hit: Any, data: bytes, digest: str) -> bool:
    """Whether gallery image ``hit`` has exactly the bytes ``data`` (sha256 ``digest``)."""
    from core.search import result_bytes

    hashes = getattr(index, "content_hashes", None)
    recorded = hashes[index.row_of_id(hit.image_id)] if hashes else None
    if recorded is not None:
        return bool(recorded == digest)
    path = Path(hit.path)
    if path.is_file():  # cheap size check before hashing the file
        return path.stat().st_size == len(data) and sha256_file(path) == digest
    stored = result_bytes(hit, max_bytes=len(data))  # a tar member; a larger one differs anyway
    return stored is not None and sha256_bytes(stored) == digest


def gallery_matches(index: Any, text: str = "", limit: int = 50) -> list[tuple[str, str]]:
    """Gallery images to pick a query from: ``(label, image id)`` pairs, at most ``limit``.

    Empty ``text`` lists the gallery in order. Otherwise the images whose id or file name holds
    ``text`` (case-insensitive) come first, then those whose captions match its words, by
    relevance (``find_text``). The label is ``"id · file name · caption"``, the caption being
    the one that matched (its words in brackets), else the first.
    """
    needle = " ".join(text.lower().split())
    if not needle:
        rows = range(min(limit, len(index)))
        return [_pick_label(index, row, None) for row in rows]
    out = [_pick_label(index, row, None) for row, (image_id, path) in enumerate(zip(index.image_ids, index.paths,
                                                                                  strict=True))
           if needle in str(image_id).lower() or needle in Path(path).name.lower()][:limit]
    seen = {image_id for _, image_id in out}
    if len(out) < limit and index.has_captions:
        for hit in index.find_text(text, limit):
            if str(hit.image_id) not in seen and len(out) < limit:
                out.append(_pick_label(index, index.row_of_id(hit.image_id), hit))
    return out


def _pick_label(index: Any, row: int, hit: Any) -> tuple[str, str]:
    image_id = index.image_ids[row]
    if hit is not None and hit.matched_caption:
        caption = mark_words(hit.matched_caption, hit.matched_words, "[", "]")
        plain = hit.matched_caption
    else:
        caption = plain = index.captions[row][0] if index.captions[row] else ""
    if plain and plain in index.generated[row]:
        caption += " (generated)"  # a captioner wrote it, not the data set
    label = f"{image_id} · {Path(index.paths[row]).name}" + (f" · {caption}" if caption else "")
    return label[:160], str(image_id)
