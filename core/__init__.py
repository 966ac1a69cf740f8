"""image-to-text core: caption images, learn embeddings without labels, find similar images.

    >>> import core
    >>> core.caption("photo.jpg")                      # doctest: +SKIP
    'a dog sitting on a couch'

Front ends (Gradio, Streamlit, the ``img2text`` CLI) are thin layers over this package.
"""

from typing import TYPE_CHECKING

from core._lazy import lazy_exports

if TYPE_CHECKING:  # the same names for type checkers; at run time each loads on first use
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
    from core.images import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, iter_image_files, load_image

# Errors are light and caught everywhere: imported eagerly.
from core.errors import (
    CheckpointError,
    ConfigError,
    DatasetError,
    Img2TextError,
    InvalidImageError,
    ModelUnavailableError,
)
from core.logs import quiet_libraries  # torch-free: called before torch is imported

# Lazy (core/_lazy.py): `import core` must not import torch, so `img2text --help` stays fast.
__getattr__, __dir__ = lazy_exports(__name__, {
    "core.captioning": (
        "DEFAULT_MODEL", "Captioner", "CaptionRecord", "GenerationOptions", "caption",
        "caption_batch", "caption_records", "get_captioner", "iter_caption_records",
    ),
    "core.images": ("DEFAULT_MAX_PIXELS", "IMAGE_EXTENSIONS", "iter_image_files", "load_image"),
})

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MODEL",
    "IMAGE_EXTENSIONS",
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
    "iter_image_files",
    "load_image",
    "quiet_libraries",
]
