"""Image captioning with a ViT-GPT2 ``VisionEncoderDecoderModel``."""

from core.captioning.api import caption, caption_batch, clear_cache, get_captioner
from core.captioning.captioner import Captioner
from core.captioning.generation import GenerationOptions
from core.captioning.loading import DEFAULT_MODEL, ModelSpec, resolve_model_spec
from core.captioning.outputs import FORMATS, CaptionRecord
from core.captioning.records import caption_records, iter_caption_records

__all__ = [
    "DEFAULT_MODEL",
    "FORMATS",
    "CaptionRecord",
    "Captioner",
    "GenerationOptions",
    "ModelSpec",
    "caption",
    "caption_batch",
    "caption_records",
    "clear_cache",
    "get_captioner",
    "iter_caption_records",
    "resolve_model_spec",
]
