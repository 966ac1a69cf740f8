"""image-to-text core: caption images, learn embeddings without labels, find similar images.

    >>> import core
    >>> core.caption("photo.jpg")                      # doctest: +SKIP
    'a dog sitting on a couch'

Front ends (Gradio, Streamlit, the ``img2text`` CLI) are thin layers over this package.
"""

from core.captioning import (
    DEFAULT_MODEL,
    Captioner,
    CaptionRecord,
    GenerationOptions,
    caption,
    caption_batch,
    caption_records,
    get_captioner,
    iter_caption_records,
)
from core.errors import (
    CheckpointError,
    ConfigError,
    DatasetError,
    Img2TextError,
    InvalidImageError,
    ModelUnavailableError,
)
from core.images import DEFAULT_MAX_PIXELS, load_image

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MODEL",
    "CaptionRecord",
    "Captioner",
    "CheckpointError",
    "ConfigError",
    "DatasetError",
    "GenerationOptions",
    "Img2TextError",
    "InvalidImageError",
    "ModelUnavailableError",
    "caption",
    "caption_batch",
    "caption_records",
    "get_captioner",
    "iter_caption_records",
    "load_image",
]
