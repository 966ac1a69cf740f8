"""Turn mixed queries (ids, images, vectors) into unit vectors for a gallery's search.

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
from core.search.errors import QueryError

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


def resolve_queries(
    index: SearchableGallery,
    queries: Sequence[Query],
    *,
    encoder: EncoderLike | None = None,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, list[int | None]]:
    """Unit query vectors and, per query, the gallery row to leave out (id queries' own row).

    Returns:
        ``(vectors, exclude)``. Shape: vectors (Q, D), float32 on the CPU.

    Raises:
        QueryError: unknown id, a vector of the wrong size, or a string that is neither.
        CheckpointError: the encoder does not match the index.
    """
    vectors: list[torch.Tensor | None] = []
    exclude: list[int | None] = []
    images: list[tuple[int, ImageInput]] = []
    for qi, query in enumerate(queries):
        row = _row_of(index, query)
        exclude.append(row)
        if row is not None:
            vectors.append(index.embeddings[row].float())
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
        return torch.zeros(0, index.dim), []
    return torch.stack([v for v in vectors if v is not None]), exclude


def unit_rows(queries: Any, dim: int) -> np.ndarray:
    """Query vectors as L2-normalised float32 rows. Shape: (Q, D) (a (D,) vector becomes (1, D)).

    Raises:
        QueryError: wrong width, or a zero / non-finite row.
    """
    arr = queries.detach().cpu().numpy() if isinstance(queries, torch.Tensor) else np.asarray(queries)
    arr = np.asarray(arr, dtype=np.float32)
    arr = arr[None, :] if arr.ndim == 1 else arr
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise QueryError(
            f"query vectors of shape {arr.shape}; the index holds {dim}-d embeddings (pass (Q, {dim}))"
        )
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    if not np.isfinite(arr).all() or (norms == 0).any():
        raise QueryError("query vectors must be finite and non-zero")
    return np.ascontiguousarray(arr / norms)


def _row_of(index: SearchableGallery, query: Query) -> int | None:
    """The row of an id query; ``None`` for images and vectors; ``ValueError`` for unknown ids."""
    if isinstance(query, bool):
        raise QueryError(f"cannot search for {query!r}: pass an image id, an image or a vector")
    if isinstance(query, int):
        return index.row_of_id(query)
    if isinstance(query, str):
        try:
            return index.row_of_id(query)
        except ValueError:
            # A string that is not an id may be a path to a new image; a typo is neither.
            if not Path(query).is_file():
                raise QueryError(
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
        raise QueryError(
            f"query vector has {vec.numel()} values; the index holds {dim}-d embeddings"
        )
    if not bool(torch.isfinite(vec).all()) or float(vec.norm()) == 0.0:
        raise QueryError("query vector must be finite and non-zero")
    return F.normalize(vec, dim=0)
