"""Similar-image search over SSL embeddings: build an index, query it, measure retrieval.

>>> from core.ssl import load_encoder                       # doctest: +SKIP
>>> enc = load_encoder("runs/tiny-coco-conv")               # doctest: +SKIP
>>> index = EmbeddingIndex.build(enc, ["a.jpg", "b.jpg"])   # doctest: +SKIP
>>> index.find_similar("a", k=1)                            # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core._lazy import lazy_exports
from core.fileio import sha256_file
from core.search.ann import parse_memory
from core.search.embed import EmbeddingResult, embed_images, embed_one
from core.search.encoder import load_checkpoint
from core.search.errors import IndexConfigError, IndexFormatError, QueryError
from core.search.evaluate import RetrievalTable, evaluate_retrieval
from core.search.index import CheckpointInfo, EmbeddingIndex
from core.search.metrics import (
    RetrievalMetrics,
    average_precision_at_k,
    mean_average_precision,
    precision_at_k,
    retrieval_metrics,
)
from core.search.result_images import gallery_entry, gallery_image, result_bytes, result_image
from core.search.topk import SearchResult, validate_k

if TYPE_CHECKING:  # the same names for type checkers; at run time they load on first use
    from core.search.plot import plot_retrieval, plot_retrieval_grid, retrieval_grid_figure

# Lazy (core/_lazy.py): the figures need matplotlib, which searching does not.
__getattr__, __dir__ = lazy_exports(__name__, {
    "core.search.plot": ("plot_retrieval", "plot_retrieval_grid", "retrieval_grid_figure"),
})

__all__ = [
    "CheckpointInfo",
    "EmbeddingIndex",
    "EmbeddingResult",
    "IndexConfigError",
    "IndexFormatError",
    "QueryError",
    "RetrievalMetrics",
    "RetrievalTable",
    "SearchResult",
    "average_precision_at_k",
    "embed_images",
    "embed_one",
    "evaluate_retrieval",
    "gallery_entry",
    "gallery_image",
    "load_checkpoint",
    "mean_average_precision",
    "parse_memory",
    "plot_retrieval",
    "plot_retrieval_grid",
    "precision_at_k",
    "result_bytes",
    "result_image",
    "retrieval_grid_figure",
    "retrieval_metrics",
    "sha256_file",
    "validate_k",
]
