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
from core.search.gallerybuild import content_hash
from core.search.gallerydb import STOP_WORDS, mark_words, query_words
from core.search.index import CheckpointInfo, EmbeddingIndex
from core.search.metrics import (
    RetrievalMetrics,
    average_precision_at_k,
    mean_average_precision,
    precision_at_k,
    retrieval_metrics,
)
from core.search.portable import PortableCopy, copy_portable
from core.search.pretrained import PretrainedEncoder, load_index_encoder, load_pretrained
from core.search.result_images import gallery_entry, gallery_image, result_bytes, result_image
from core.search.textsearch import TEXT_MODES, reciprocal_rank_fusion
from core.search.topk import SearchResult, validate_k

if TYPE_CHECKING:  # the same names for type checkers; at run time they load on first use
    from core.search.plot import plot_retrieval, plot_retrieval_grid, retrieval_grid_figure
    from core.ssl.backbones import SUGGESTED_ENCODERS

# Lazy (core/_lazy.py): the figures need matplotlib, which searching does not.
__getattr__, __dir__ = lazy_exports(__name__, {
    "core.search.plot": ("plot_retrieval", "plot_retrieval_grid", "retrieval_grid_figure"),
    "core.ssl.backbones": ("SUGGESTED_ENCODERS",),  # core.ssl only lazily (docs/architecture.md)
})

__all__ = [
    "SUGGESTED_ENCODERS",
    "TEXT_MODES",
    "CheckpointInfo",
    "EmbeddingIndex",
    "EmbeddingResult",
    "IndexConfigError",
    "IndexFormatError",
    "PortableCopy",
    "PretrainedEncoder",
    "QueryError",
    "RetrievalMetrics",
    "RetrievalTable",
    "STOP_WORDS",
    "SearchResult",
    "average_precision_at_k",
    "content_hash",
    "copy_portable",
    "embed_images",
    "embed_one",
    "evaluate_retrieval",
    "gallery_entry",
    "gallery_image",
    "load_checkpoint",
    "load_index_encoder",
    "load_pretrained",
    "mark_words",
    "mean_average_precision",
    "parse_memory",
    "plot_retrieval",
    "plot_retrieval_grid",
    "precision_at_k",
    "query_words",
    "reciprocal_rank_fusion",
    "result_bytes",
    "result_image",
    "retrieval_grid_figure",
    "retrieval_metrics",
    "sha256_file",
    "validate_k",
]
