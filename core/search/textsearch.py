"""Text-to-image search modes: by meaning (a dual encoder's text tower), by words, or both fused.

``semantic`` embeds the text with the text tower of the CLIP/SigLIP model that built the index
and ranks the image vectors by cosine through the index's backend (FAISS or exact, the recall
recorded at build time). ``words`` is the FTS5/BM25 search over the captions. ``hybrid`` merges
the two rankings by reciprocal-rank fusion (Cormack et al. 2009): each image scores
``sum over rankings of 1 / (RRF_K + rank)``; ties go to the better single rank, then the
semantic order. The default is ``hybrid`` when the index has both, else whichever it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.search.errors import QueryError
from core.search.pretrained import describe, is_dual

SEMANTIC, WORDS, HYBRID = "semantic", "words", "hybrid"
TEXT_MODES = (SEMANTIC, WORDS, HYBRID)
RRF_K = 60  # the fusion constant of the RRF paper: damps the weight of the very first ranks
HYBRID_DEPTH = 100  # how deep each ranking is read before fusing (at least k)


def modes_available(index: Any) -> tuple[bool, bool]:
    """``(semantic, words)``: a text tower recorded, captions present."""
    return is_dual(index.checkpoint.config), bool(index.has_captions)


def resolve_text_mode(index: Any, mode: str | None = None) -> str:
    """The mode that answers: ``mode`` when the index supports it; ``None``/``"auto"`` picks.

    Raises:
        QueryError: an unknown mode, or one the index cannot answer (naming why and the fix).
    """
    semantic, words = modes_available(index)
    if mode in (None, "auto"):
        return HYBRID if semantic and words else SEMANTIC if semantic else WORDS
    if mode not in TEXT_MODES:
        raise QueryError(f"unknown text mode {mode!r}; use one of {', '.join(TEXT_MODES)}")
    if mode in (SEMANTIC, HYBRID) and not semantic:
        ckpt = index.checkpoint
        raise QueryError(
            f"text mode {mode!r} needs an index built with a CLIP or SigLIP encoder (its text tower "
            f"embeds the words); this one was built with {describe(ckpt.config, ckpt.sha256, ckpt.weights_path)}. "
            "Use --text-mode words, or rebuild with `img2text ssl embed --encoder openai/clip-vit-base-patch32`")
    if mode == HYBRID and not words:
        raise QueryError("text mode 'hybrid' also needs captions and the index has none; use "
                         "--text-mode semantic, or build it with --caption or --captions FILE")
    return mode


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int, c: int = RRF_K
                           ) -> list[tuple[int, float]]:
    """``[(row, fused score)]``, best first, at most ``k``: rows ranked by ``sum 1/(c + rank)``.

    Ranks are 1-based within each ranking; a row missing from a ranking adds nothing for it.
    Ties: the better best rank wins, then the earlier ranking's order.
    """
    scores: dict[int, float] = {}
    best: dict[int, tuple[int, int, int]] = {}
    for which, ranking in enumerate(rankings):
        for rank, row in enumerate(ranking, 1):
            scores[row] = scores.get(row, 0.0) + 1.0 / (c + rank)
            best[row] = min(best.get(row, (rank, which, rank)), (rank, which, rank))
    order = sorted(scores, key=lambda r: (-scores[r], best[r]))
    return [(row, scores[row]) for row in order[:k]]


__all__ = [
    "HYBRID",
    "HYBRID_DEPTH",
    "RRF_K",
    "SEMANTIC",
    "TEXT_MODES",
    "WORDS",
    "modes_available",
    "reciprocal_rank_fusion",
    "resolve_text_mode",
]
