"""Image captioning: ViT-GPT2 and the other families of :mod:`core.captioning.families`."""

from typing import TYPE_CHECKING

from core._lazy import lazy_exports

if TYPE_CHECKING:  # the same names for type checkers; at run time each loads on first use
    from core.captioning.api import caption, caption_batch, clear_cache, get_captioner
    from core.captioning.captioner import Captioner
    from core.captioning.families import FAMILIES, Checkpoint, Family, model_family
    from core.captioning.generation import DECODING_MODES, GenerationOptions, decoding_kwargs
    from core.captioning.loading import DEFAULT_MODEL, ModelSpec, resolve_model_spec
    from core.captioning.outputs import (
        FORMATS,
        CaptionRecord,
        ResultWriter,
        coco_image_id,
        read_done,
        to_string,
    )
    from core.captioning.records import caption_records, iter_caption_records
    from core.captioning.scoring import METRICS, TOKENIZERS, References, ScoreReport, score_captions

# Lazy (core/_lazy.py): importing this package must not import torch (fast `img2text --help`).
__getattr__, __dir__ = lazy_exports(__name__, {
    "core.captioning.api": ("caption", "caption_batch", "clear_cache", "get_captioner",),
    "core.captioning.captioner": ("Captioner",),
    "core.captioning.families": ("FAMILIES", "Checkpoint", "Family", "model_family",),
    "core.captioning.generation": ("GenerationOptions", "DECODING_MODES", "decoding_kwargs",),
    "core.captioning.loading": ("DEFAULT_MODEL", "ModelSpec", "resolve_model_spec",),
    "core.captioning.outputs": (
        "FORMATS", "CaptionRecord", "ResultWriter", "coco_image_id", "read_done", "to_string",
    ),
    "core.captioning.records": ("caption_records", "iter_caption_records",),
    "core.captioning.scoring": ("METRICS", "TOKENIZERS", "References", "ScoreReport", "score_captions",),
})

__all__ = [
    "DEFAULT_MODEL",
    "FAMILIES",
    "Checkpoint",
    "Family",
    "model_family",
    "DECODING_MODES",
    "FORMATS",
    "METRICS",
    "TOKENIZERS",
    "CaptionRecord",
    "Captioner",
    "GenerationOptions",
    "ModelSpec",
    "References",
    "ResultWriter",
    "ScoreReport",
    "caption",
    "caption_batch",
    "caption_records",
    "clear_cache",
    "coco_image_id",
    "decoding_kwargs",
    "get_captioner",
    "iter_caption_records",
    "read_done",
    "resolve_model_spec",
    "score_captions",
    "to_string",
]
