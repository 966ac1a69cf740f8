"""Example images and uploads: what both apps offer and accept, under the same caps."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from core.errors import InvalidImageError
from core.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, load_image

__all__ = ["example_files", "load_upload", "load_uploads"]

Upload = str | os.PathLike | bytes  # a path to an uploaded file, or its bytes


def example_files(folder: Path | None, limit: int = 12) -> list[Path]:
    """Image files directly in ``folder`` (by extension), sorted by name, at most ``limit``.

    Returns resolved paths; an unset or missing folder gives ``[]``.
    """
    if folder is None or not folder.is_dir():
        return []
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    return [p.resolve() for p in files[:limit]]


def load_upload(
    source: Upload, name: str | None = None, *, max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Image.Image:
    """An uploaded file (path or bytes) as an RGB image, refused past the pixel or byte cap.

    Args:
        source: the upload's path (Gradio's cache) or bytes (Streamlit).
        name: what the user calls the file; the error names it (default: the path's file name).
        max_pixels: pixel cap, checked from the header before decoding.
        max_bytes: encoded-size cap.

    Raises:
        InvalidImageError: not a usable image; ``source`` is ``name`` and ``reason`` says why.
    """
    label = name or (Path(os.fsdecode(source)).name if not isinstance(source, bytes) else "upload")
    try:
        return load_image(source, max_pixels=max_pixels, max_bytes=max_bytes)
    except InvalidImageError as exc:
        raise InvalidImageError(label, exc.reason) from exc


def load_uploads(
    sources: list[Upload], *, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES,
    workers: int = 4,
) -> list[Image.Image | InvalidImageError]:
    """Load several uploads at once (a thread each, up to ``workers``): a slow file delays only itself.

    Returns:
        One image, or the :class:`InvalidImageError` that refused it, per source, in order.
    """
    def one(source: Upload) -> Image.Image | InvalidImageError:
        try:
            return load_upload(source, max_pixels=max_pixels, max_bytes=max_bytes)
        except InvalidImageError as exc:
            return exc

    if len(sources) <= 1:
        return [one(s) for s in sources]
    with ThreadPoolExecutor(max_workers=min(workers, len(sources)), thread_name_prefix="img2text-load") as pool:
        return list(pool.map(one, sources))
