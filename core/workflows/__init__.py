"""What both web apps (and the CLI where it fits) do, so the front ends only lay out pages.

* runs: a training run's summary, history table, the index built from its weights, sample retrievals
* uploads: example-file discovery and upload loading under the pixel and byte caps
* batch: the Batch tab (uploads -> caption records with thumbnails, the file limit, the summary, the CSV/JSONL/sidecar-zip downloads)
* model: the captioner loading in the background, with a remembered failure; one per precision
* prompts: the model picker's suggested ids and the prompt box of a chosen model's family
* batcher: concurrent caption requests merged into one model call
* indexes: the configured indexes, loaded once
* similarity: the collapse warning and "this upload is a gallery image"
* similar: the Similar images tab (a query by upload, gallery image or words -> results, note, rows)
"""

from core.workflows.batch import (
    BatchDownload,
    BatchRow,
    batch_downloads,
    batch_problem,
    batch_summary,
    caption_uploads,
    thumbnail_uri,
)
from core.workflows.batcher import CaptionBatcher
from core.workflows.indexes import IndexShelf
from core.workflows.model import (
    MAX_LOADED,
    PRECISION_HELP,
    PRECISIONS,
    ModelChoices,
    ModelLoader,
    ModelState,
)
from core.workflows.prompts import (
    PromptField,
    chosen_prompt,
    picked_prompt_field,
    picker_models,
    prompt_field,
    suggested_models,
)
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
from core.workflows.similar import (
    NO_CAPTIONS,
    SimilarAnswer,
    gallery_picture,
    hit_label,
    hit_picture,
    index_label,
    result_rows,
    search_gallery,
    words_info,
    words_unavailable,
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
    "PromptField",
    "prompt_field",
    "suggested_models",
    "chosen_prompt",
    "picked_prompt_field",
    "picker_models",
    "MAX_LOADED",
    "HISTORY_COLUMNS",
    "NO_CAPTIONS",
    "PRECISIONS",
    "PRECISION_HELP",
    "BatchRow",
    "CaptionBatcher",
    "EmbeddingHealth",
    "IndexShelf",
    "ModelChoices",
    "ModelLoader",
    "ModelState",
    "Neighbours",
    "RunInfo",
    "RunSummary",
    "SampleRetrieval",
    "SimilarAnswer",
    "BatchDownload",
    "batch_downloads",
    "batch_problem",
    "batch_summary",
    "caption_uploads",
    "collapse_warning",
    "embedding_health",
    "example_files",
    "find_neighbours",
    "gallery_matches",
    "gallery_picture",
    "history_rows",
    "hit_label",
    "hit_picture",
    "index_for_run",
    "index_label",
    "load_upload",
    "load_uploads",
    "read_run",
    "result_rows",
    "run_summary",
    "sample_retrievals",
    "search_gallery",
    "thumbnail_uri",
    "weights_sha256",
    "words_info",
    "words_unavailable",
]
