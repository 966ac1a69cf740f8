"""Turn mixed queries (ids, images, vectors) into vectors and run exact top-k on a gallery.

This module knows nothing of ``EmbeddingIndex``: it works on anything shaped like
:class:`SearchableGallery`, so ``index.py`` imports it and never the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from core.errors import CheckpointError
from core.images import ImageInput
from core.search.embed import embed_images
from core.search.encoder import EncoderLike
from core.search.topk import SearchResult, topk_cosine, validate_k

#: A query: an indexed image id, an image (path, bytes, PIL, HxWx3 uint8 array) or a vector.
Query = Any


class SearchableGallery(Protocol):
    """What query resolution reads from an index (``EmbeddingIndex`` has all of it)."""

    embeddings: torch.Tensor
    image_ids: list[int | str]
    paths: list[Path]
    captions: list[list[str]]
    categories: list[list[int]]

    def __len__(self) -> int: ...

    @property
    def dim(self) -> int: ...

    def row_of_id(self, image_id: int | str) -> int: ...

    def encoder_for_images(self, encoder: EncoderLike | None = None) -> EncoderLike: ...


def search_index(
    index: SearchableGallery,
    queries: Sequence[Query],
    k: int,
    *,
    encoder: EncoderLike | None = None,
    device: str | torch.device | None = None,
) -> list[list[SearchResult]]:
    """Exact cosine top-``k`` on ``index`` for each query; see ``EmbeddingIndex.find_similar_batch``."""
    validate_k(k)
    vectors: list[torch.Tensor | None] = []
    exclude: list[int | None] = []
    images: list[tuple[int, ImageInput]] = []
    for qi, query in enumerate(queries):
        row = _row_of(index, query)
        exclude.append(row)
        if row is not None:
            vectors.append(index.embeddings[row])
        elif _is_vector(query):
            vectors.append(_as_vector(query, index.dim))
        else:
            images.append((qi, Path(query) if isinstance(query, str) else query))
            vectors.append(None)
    if images:
        enc = index.encoder_for_images(encoder)
        # Query images go through the same eval transform as the gallery; no skipping here.
        emb = embed_images(enc, [img for _, img in images], device=device, on_error="raise")
        if emb.embeddings.shape[1] != index.dim:
            raise CheckpointError(
                f"the encoder gives {emb.embeddings.shape[1]}-d embeddings; "
                f"the index holds {index.dim}-d"
            )
        for (qi, _), vec in zip(images, emb.embeddings, strict=True):
            vectors[qi] = vec
    if not vectors:
        return []
    matrix = torch.stack([v for v in vectors if v is not None])
    hits = topk_cosine(matrix, index.embeddings, k, exclude)
    return [
        [_result(index, rank, row, score) for rank, (row, score) in enumerate(h, 1)] for h in hits
    ]


def _row_of(index: SearchableGallery, query: Query) -> int | None:
    """The row of an id query; ``None`` for images and vectors; ``ValueError`` for unknown ids."""
    if isinstance(query, bool):
        raise ValueError(f"cannot search for {query!r}: pass an image id, an image or a vector")
    if isinstance(query, int):
        return index.row_of_id(query)
    if isinstance(query, str):
        try:
            return index.row_of_id(query)
        except ValueError:
            # A string that is not an id may be a path to a new image; a typo is neither.
            if not Path(query).is_file():
                raise ValueError(
                    f"{query!r} is neither an indexed image id nor an existing image file "
                    f"(the index has {len(index)} images, e.g. ids "
                    f"{', '.join(map(repr, index.image_ids[:3]))})"
                ) from None
    return None


def _is_vector(query: Any) -> bool:
    if isinstance(query, torch.Tensor):
        return True
    # An HxWx3 array is an image; anything 1-D (or float and not 3-D) is an embedding.
    return isinstance(query, np.ndarray) and (
        query.ndim == 1 or (query.dtype.kind == "f" and query.ndim != 3)
    )


def _as_vector(query: Any, dim: int) -> torch.Tensor:
    if isinstance(query, np.ndarray):
        query = torch.from_numpy(np.asarray(query, dtype=np.float32))
    vec = query.detach().to("cpu", torch.float32).flatten()
    if vec.numel() != dim:
        raise ValueError(
            f"query vector has {vec.numel()} values; the index holds {dim}-d embeddings"
        )
    if not bool(torch.isfinite(vec).all()) or float(vec.norm()) == 0.0:
        raise ValueError("query vector must be finite and non-zero")
    return F.normalize(vec, dim=0)


def _result(index: SearchableGallery, rank: int, row: int, score: float) -> SearchResult:
    return SearchResult(
        rank=rank,
        image_id=index.image_ids[row],
        path=index.paths[row],
        score=float(score),
        captions=list(index.captions[row]),
        categories=list(index.categories[row]),
    )
