"""The apps' Batch tab: uploads in, one row per file (caption record and thumbnail) out."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from core.captioning import Captioner, CaptionRecord, caption_records, sidecar_zip, to_string
from core.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from core.workflows.uploads import Upload, load_uploads

__all__ = ["BatchDownload", "BatchRow", "batch_downloads", "batch_problem", "batch_summary",
           "caption_uploads", "thumbnail_uri"]


@dataclass(frozen=True)
class BatchRow:
    """One uploaded file's result."""

    record: CaptionRecord  # file name, caption or error
    thumbnail: str | None  # PNG data URI of a small copy; None when the file is not an image


@dataclass(frozen=True)
class BatchDownload:
    """One file the batch tab offers for download."""

    label: str  # the button's text
    file_name: str
    data: bytes
    mime: str


def batch_downloads(records: Sequence[CaptionRecord], *, extension: str = ".txt") -> list[BatchDownload]:
    """The batch tab's downloads: CSV and JSONL (failed files are rows with their error, the same
    files as ``img2text caption -o``) and a zip of sidecar caption files (image stem + extension)."""
    return [
        BatchDownload("Download CSV", "captions.csv", to_string(records, "csv").encode(), "text/csv"),
        BatchDownload("Download JSONL", "captions.jsonl", to_string(records, "jsonl").encode(),
                      "application/jsonl"),
        BatchDownload("Download caption files (.zip)", "captions-sidecar.zip",
                      sidecar_zip(records, extension), "application/zip"),
    ]


def batch_problem(count: int, limit: int) -> str | None:
    """Why a batch of ``count`` files cannot run (none, or over the app's ``limit``), or None."""
    if count == 0:
        return "Upload one or more images first."
    if count > limit:
        return f"{count} files: the limit is {limit} per run; caption them in runs of at most {limit}."
    return None


def batch_summary(records: Sequence[CaptionRecord]) -> str:
    """``"2 captioned, 1 failed"``."""
    failed = sum(1 for r in records if not r.ok)
    return f"{len(records) - failed} captioned, {failed} failed"


def thumbnail_uri(image: Image.Image, size: int = 96) -> str:
    """A ``data:image/png;base64,...`` URI of ``image`` scaled to fit ``size`` x ``size``."""
    small = image.copy()
    small.thumbnail((size, size))
    buf = io.BytesIO()
    small.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def caption_uploads(
    captioner: Captioner,
    uploads: Sequence[tuple[str, Upload]],
    *,
    batch_size: int = 8,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    thumb_size: int = 96,
    progress: Callable[[int, int], None] | None = None,
    **generation: Any,
) -> list[BatchRow]:
    """Caption ``(name, path or bytes)`` uploads chunk by chunk, loading each chunk in parallel.

    A file that is not a usable image fails only its own row. The model part is
    :func:`core.caption_records` (the CLI's loop).

    Args:
        progress: called as ``progress(done, total)`` before the first chunk and after each one.
        **generation: options of :class:`core.GenerationOptions`.

    Returns:
        One row per upload, in input order.

    Raises:
        ValueError: invalid generation options.
    """
    rows: list[BatchRow | None] = [None] * len(uploads)
    if progress is not None:
        progress(0, len(uploads))
    for start in range(0, len(uploads), batch_size):
        chunk = uploads[start:start + batch_size]
        loaded = load_uploads([src for _, src in chunk], max_pixels=max_pixels, max_bytes=max_bytes)
        good = []
        for offset, ((name, _), image) in enumerate(zip(chunk, loaded, strict=True)):
            if isinstance(image, Image.Image):
                good.append((start + offset, name, image))
            else:
                rows[start + offset] = BatchRow(CaptionRecord(name, "", image.reason), None)
        if good:
            records = caption_records(captioner, [(name, im) for _, name, im in good], batch_size=len(good),
                                      max_pixels=max_pixels, max_bytes=max_bytes, **generation)
            for (i, _, image), record in zip(good, records, strict=True):
                rows[i] = BatchRow(record, thumbnail_uri(image, thumb_size))
        if progress is not None:
            progress(min(start + batch_size, len(uploads)), len(uploads))
    return [r for r in rows if r is not None]
