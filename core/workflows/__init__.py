"""What both web apps (and the CLI where it fits) do, so the front ends only lay out pages.

* runs: a training run's summary, history table, the index built from its weights, sample retrievals
* uploads: example-file discovery and upload loading under the pixel and byte caps
* batch: the Batch tab (uploads -> caption records with thumbnails)
* model: the captioner loading in the background, with a remembered failure
* batcher: concurrent caption requests merged into one model call
* indexes: the configured indexes, loaded once
* similarity: the collapse warning and "this upload is a gallery image"
"""

from core.workflows.batch import BatchRow, caption_uploads, thumbnail_uri
from core.workflows.batcher import CaptionBatcher
from core.workflows.indexes import IndexShelf
from core.workflows.model import ModelLoader, ModelState
from core.workflows.runs import (
    HISTORY_COLUMNS,
    RunInfo,
    RunSummary,
    SampleRetrieval,
    history_rows,
    index_for_run,
    read_run,
    run_summary,
    sample_retrievals,
    weights_sha256,
)
from core.workflows.similarity import (
    EmbeddingHealth,
    Neighbours,
    collapse_warning,
    embedding_health,
    find_neighbours,
    gallery_matches,
)
from core.workflows.uploads import example_files, load_upload, load_uploads

__all__ = [
    "HISTORY_COLUMNS",
    "BatchRow",
    "CaptionBatcher",
    "EmbeddingHealth",
    "IndexShelf",
    "ModelLoader",
    "ModelState",
    "Neighbours",
    "RunInfo",
    "RunSummary",
    "SampleRetrieval",
    "caption_uploads",
    "collapse_warning",
    "embedding_health",
    "example_files",
    "find_neighbours",
    "gallery_matches",
    "history_rows",
    "index_for_run",
    "load_upload",
    "load_uploads",
    "read_run",
    "run_summary",
    "sample_retrievals",
    "thumbnail_uri",
    "weights_sha256",
]
