"""Similar-image search over SSL embeddings: build an index, query it, measure retrieval.

>>> from core.ssl import load_encoder                       # doctest: +SKIP
>>> enc = load_encoder("runs/tiny-coco-conv")               # doctest: +SKIP
>>> index = EmbeddingIndex.build(enc, ["a.jpg", "b.jpg"])   # doctest: +SKIP
>>> index.find_similar("a", k=1)                            # doctest: +SKIP
"""

from __future__ import annotations

from core.fileio import sha256_file
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
from core.search.topk import SearchResult, validate_k

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
    "load_checkpoint",
    "mean_average_precision",
    "precision_at_k",
    "retrieval_metrics",
    "sha256_file",
    "validate_k",
]
