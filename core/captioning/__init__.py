"""Image captioning with a ViT-GPT2 ``VisionEncoderDecoderModel``."""

from core.captioning.api import caption, caption_batch, clear_cache, get_captioner
from core.captioning.captioner import Captioner
from core.captioning.generation import GenerationOptions
from core.captioning.loading import DEFAULT_MODEL, ModelSpec, resolve_model_spec

__all__ = [
    "DEFAULT_MODEL",
    "Captioner",
    "GenerationOptions",
    "ModelSpec",
    "caption",
    "caption_batch",
    "clear_cache",
    "get_captioner",
    "resolve_model_spec",
]
