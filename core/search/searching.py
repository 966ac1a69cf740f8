"""The query side of ``EmbeddingIndex``: vector, image/id and text search over its backend.

A mixin so that ``index.py`` stays about building and storing; it reads only attributes that
``EmbeddingIndex`` defines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.search.captionfile import match_captions, read_caption_file
from core.search.encoder import EncoderLike
from core.search.errors import QueryError
from core.search.gallerydb import CaptionSearch, GalleryRow, best_caption, query_words
from core.search.query import Query, resolve_queries, unit_rows
from core.search.textsearch import (
    HYBRID_DEPTH,
    SEMANTIC,
    WORDS,
    reciprocal_rank_fusion,
    resolve_text_mode,
)
from core.search.topk import SearchResult, validate_k


class SearchMixin:
    """Search methods; the host class provides the gallery columns and the backend."""

    embeddings: torch.Tensor
    image_ids: list[int | str]
    paths: list[Path]
    captions: list[list[str]]
    categories: list[list[int]]
    sources: list[str | None]
    generated: list[list[str]]
    backend: Any
    _rows: dict[Any, int]
    _rows_by_text: dict[str, int]
    _text: CaptionSearch | None
    _gallery_file: Path | None

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])

    @property
    def dim(self) -> int:
        """Embedding dimension D."""
        return int(self.embeddings.shape[1])

    def encoder_for_images(self, encoder: EncoderLike | None = None) -> EncoderLike:
        raise NotImplementedError  # provided by EmbeddingIndex

    def _gallery_rows(self) -> list[GalleryRow]:
        raise NotImplementedError  # provided by EmbeddingIndex

    # ---------------------------------------------------------------- search
    def search(self, query_vectors: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` by cosine for each query vector, through the backend (FAISS or exact).

        Returns:
            ``(scores, ids)``. Shape: both (Q, k). ``ids`` holds image ids (int64 when every id
            is an int, else object); places beyond the gallery size are ``-inf`` / ``-1``.

        Raises:
            QueryError: bad ``k`` or query vectors of the wrong width / zero norm.
        """
        validate_k(k)
        scores, rows = self.backend.search(unit_rows(query_vectors, self.dim), k)
        ids = self._id_array()
        out = np.where(rows >= 0, ids[np.maximum(rows, 0)], -1) if len(ids) else rows
        return scores, out

    def find_similar(self, query: Query, k: int = 5, *, encoder: EncoderLike | None = None,
                     device: str | torch.device | None = None) -> list[SearchResult]:
        """Top-``k`` most similar indexed images to one query (see :meth:`find_similar_batch`)."""
        return self.find_similar_batch([query], k, encoder=encoder, device=device)[0]

    def find_similar_batch(self, queries: Sequence[Query], k: int = 5, *,
                           encoder: EncoderLike | None = None,
                           device: str | torch.device | None = None) -> list[list[SearchResult]]:
        """Cosine top-``k`` for each query, best first, through the index's backend.

        A query is an indexed image id (left out of its own results, so at most ``N - 1``
        results), an embedding vector (Shape: (D,)), or any image ``load_image`` accepts; images
        are embedded with ``encoder``, the one attached at build/load, or the one at the
        index's recorded weights path, after checking its sha256. A string is an id when it
        matches one (``"397133"`` matches the int id 397133), otherwise a path to an image.

        Raises:
            QueryError: ``k < 1``, an unknown id, or a vector of the wrong size.
            CheckpointError: the encoder does not match the index.
        """
        validate_k(k)
        matrix, exclude = resolve_queries(self, queries, encoder=encoder, device=device)
        if not exclude:
            return []
        scores, rows = self.backend.search(unit_rows(matrix, self.dim), k, exclude)
        return [[self._result(rank, int(r), float(s)) for rank, (r, s) in
                 enumerate(((r, s) for r, s in zip(rr, ss, strict=True) if r >= 0), 1)]
                for rr, ss in zip(rows, scores, strict=True)]

    def find_text(self, text: str, k: int = 5, *, mode: str | None = None,
                  encoder: EncoderLike | None = None,
                  device: str | torch.device | None = None) -> list[SearchResult]:
        """Images that match ``text``, best first, by meaning, by caption words, or both.

        ``mode`` (see :mod:`core.search.textsearch`): ``"semantic"`` embeds ``text`` with the
        text tower of the CLIP/SigLIP encoder that built the index (``encoder``, the attached
        one, or the recorded one; its sha256 is checked) and ranks the image vectors by cosine
        (``score``); ``"words"`` is FTS5 BM25 over the captions (every word quoted, so FTS syntax
        and SQL characters are plain words; ``score`` = BM25 relevance); ``"hybrid"`` fuses both
        rankings by reciprocal rank (``score`` = the fused score). ``None`` picks hybrid when the
        index has both, else whichever it has (:meth:`text_mode` says which). Text without
        words returns ``[]``. In words mode an image matches when a caption holds one of the
        query's words (common words such as "a" or "on" do not count unless the query has no
        other), so fewer than ``k`` come back when fewer match. Words and hybrid results name
        the caption that matched (``matched_caption`` / ``matched_words``).

        Raises:
            QueryError: bad ``k``, unknown mode, or a mode this index cannot answer.
            CheckpointError: the encoder given does not match the index.
        """
        validate_k(k)
        chosen = self.text_mode(mode)
        if not text.strip():
            return []
        if chosen == WORDS:
            hits = self._word_rows(text, k)
        elif chosen == SEMANTIC:
            hits = self._semantic_rows(text, k, encoder, device)
        else:
            depth = max(k, HYBRID_DEPTH)
            meaning = [row for row, _ in self._semantic_rows(text, depth, encoder, device)]
            by_words = [row for row, _ in self._word_rows(text, depth)]
            hits = reciprocal_rank_fusion([meaning, by_words], k)
        words = None if chosen == SEMANTIC else query_words(text)
        return [self._text_hit(rank, row, score, words) for rank, (row, score) in enumerate(hits, 1)]

    def _text_hit(self, rank: int, row: int, score: float, words: list[str] | None) -> SearchResult:
        """A text search result; with query ``words``, the caption holding most of them (and which)."""
        hit = self._result(rank, row, score)
        if words is None:
            return hit
        caption, found = best_caption(self.captions[row], words)
        return replace(hit, matched_caption=caption, matched_words=found)

    def text_mode(self, mode: str | None = None) -> str:
        """The text mode :meth:`find_text` uses for ``mode`` (``None``: the index's default).

        Raises:
            QueryError: unknown mode, or one this index cannot answer.
        """
        return resolve_text_mode(self, mode)

    def _word_rows(self, text: str, k: int) -> list[tuple[int, float]]:
        if self._text is None:
            self._text = (CaptionSearch(self._gallery_file) if self._gallery_file is not None
                          else CaptionSearch(rows=self._gallery_rows()))
        return self._text.find(text, k)

    def _semantic_rows(self, text: str, k: int, encoder: EncoderLike | None,
                       device: str | torch.device | None) -> list[tuple[int, float]]:
        enc = self.encoder_for_images(encoder)
        vector = enc.embed_text([text], device=device)  # type: ignore[attr-defined]
        scores, rows = self.backend.search(unit_rows(vector, self.dim), min(k, len(self)))
        return [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]

    def add_captions(self, captions: Mapping[str, str] | str | Path) -> int:
        """Add a caption per image from ``{path: caption}`` or an ``img2text caption`` output file.

        Joined by path (as written, then resolved, then a file name unique on both sides); a
        caption already there is not repeated. Returns how many images got one.

        Raises:
            IndexConfigError: the file is not a caption output (see :mod:`core.search.captionfile`).
        """
        mapping = read_caption_file(captions) if isinstance(captions, (str, Path)) else dict(captions)
        matched = match_captions(self.paths, mapping)
        for row, cap in enumerate(matched):
            if cap and cap not in self.captions[row]:
                self.captions[row] = [*self.captions[row], cap]
                self.generated[row] = [*self.generated[row], cap]
        self._text, self._gallery_file = None, None  # the caption table must be rebuilt
        return sum(1 for c in matched if c)

    @property
    def has_captions(self) -> bool:
        """True when some image has a caption (so :meth:`find_text` can find something)."""
        return any(self.captions)

    def row_of_id(self, image_id: int | str) -> int:
        """The embedding row of ``image_id`` (``"397133"`` also finds the int id 397133).

        Raises:
            QueryError: unknown id; the message names a few known ones.
        """
        if not isinstance(image_id, bool) and image_id in self._rows:
            return self._rows[image_id]
        if isinstance(image_id, str) and image_id in self._rows_by_text:
            return self._rows_by_text[image_id]
        examples = ", ".join(repr(i) for i in self.image_ids[:3])
        raise QueryError(
            f"unknown image id {image_id!r}; the index has {len(self)} images (e.g. {examples})"
        )

    def _result(self, rank: int, row: int, score: float) -> SearchResult:
        return SearchResult(rank=rank, image_id=self.image_ids[row], path=self.paths[row],
                            score=score, captions=list(self.captions[row]),
                            categories=list(self.categories[row]), source=self.sources[row],
                            generated=list(self.generated[row]))

    def _id_array(self) -> np.ndarray:
        if getattr(self, "_ids", None) is None:
            ints = all(isinstance(i, int) and not isinstance(i, bool) for i in self.image_ids)
            self._ids = np.asarray(self.image_ids, dtype=np.int64 if ints else object)
        return self._ids

