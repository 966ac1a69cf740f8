"""The apps' "find images by words" box: by meaning, by caption words, or both fused.

An index built with a CLIP/SigLIP encoder is searched by meaning (its text tower); one with
captions by words (FTS5/BM25); one with both by reciprocal-rank fusion (``hybrid``), the index's
default (see :mod:`core.search.textsearch`). The answer says which mode answered.
"""

from __future__ import annotations

from typing import Any

NO_CAPTIONS = ("This index has no captions, so it cannot be searched by words: build it with "
               "`img2text ssl embed --caption` (captions every image) or `--captions FILE` (a file "
               "from `img2text caption`).")
WORDS_SEARCH = "caption words, BM25 relevance"  # how a words query ranks (shown instead of the index kind)
SEMANTIC_SEARCH = "semantic search: meaning, through the encoder's text tower (cosine)"
HYBRID_SEARCH = "hybrid search: meaning and caption words, reciprocal-rank fusion"
MODE_SEARCH = {"words": WORDS_SEARCH, "semantic": SEMANTIC_SEARCH, "hybrid": HYBRID_SEARCH}
BOX_INFO = {
    "words": "Caption words, ranked by BM25; press Enter",
    "semantic": "Any words, matched by meaning (the encoder's text tower); press Enter",
    "hybrid": "Any words: by meaning and by caption words, fused; press Enter",
}


def text_unavailable(index: Any) -> str | None:
    """Why ``index`` cannot be searched by text (no captions and no text tower), or None."""
    return NO_CAPTIONS if index.text_mode() == "words" and not index.has_captions else None


def text_box_info(index: Any) -> str:
    """The words box's help line for ``index``: what its default mode matches."""
    return BOX_INFO[index.text_mode()]


def text_answer(index: Any, text: str, k: int) -> tuple[list[Any], str, str] | str:
    """``(hits, search label, mode)`` for words ``text`` in the index's default mode, or an error.

    Raises:
        Img2TextError: the index could not answer (e.g. the recorded encoder is gone).
    """
    if why := text_unavailable(index):
        return why
    if not text.split():
        return "no words: type some words to find"
    mode = index.text_mode()
    return index.find_text(text, k, mode=mode), MODE_SEARCH[mode], mode


__all__ = ["BOX_INFO", "MODE_SEARCH", "NO_CAPTIONS", "WORDS_SEARCH", "text_answer",
           "text_box_info", "text_unavailable"]
