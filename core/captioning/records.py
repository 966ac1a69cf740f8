"""The one batch-captioning workflow: named inputs in, caption records out, in input order.

The ``img2text caption`` CLI, the Gradio batch tab and the Streamlit batch tab all call
:func:`iter_caption_records` (or :func:`caption_records`), so skipping bad files, chunking and
progress reporting behave the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

from core.captioning.captioner import DEFAULT_BATCH_SIZE, Captioner
from core.captioning.outputs import CaptionRecord
from core.errors import ConfigError, InvalidImageError
from core.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, ImageInput

NamedInput = tuple[str, ImageInput]  # (key shown to the user, e.g. a path or file name; the image)
Progress = Callable[[int, int], None]  # (images done, images in total)


def iter_caption_records(
    captioner: Captioner,
    inputs: Sequence[NamedInput],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    progress: Progress | None = None,
    **generation: Any,
) -> Iterator[CaptionRecord]:
    """Caption ``inputs`` chunk by chunk, yielding one record per input as soon as its chunk is done.

    Args:
        captioner: the model to use (e.g. ``core.get_captioner(...)``).
        inputs: ``(key, image)`` pairs; ``key`` becomes ``CaptionRecord.path``.
        batch_size: images per model call (also the progress step).
        max_pixels: refuse images with more pixels (checked from the header).
        max_bytes: refuse encoded inputs larger than this.
        progress: called as ``progress(done, total)`` before the first chunk and after each one.
        **generation: options of :class:`core.GenerationOptions`.

    Yields:
        ``CaptionRecord(key, caption)`` or, for an unusable image, ``CaptionRecord(key, "", reason)``,
        in input order.

    Raises:
        ValueError: invalid ``batch_size`` or generation options (before any image is read).
        ModelUnavailableError: never here (the captioner is already loaded); callers get it from
            ``get_captioner``.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    total, done = len(inputs), 0
    if progress is not None:
        progress(0, total)
    for chunk in _chunks(inputs, batch_size):
        results = captioner.caption_batch(
            [image for _, image in chunk], batch_size=len(chunk), errors="return",
            max_pixels=max_pixels, max_bytes=max_bytes, **generation,
        )
        for (key, _), result in zip(chunk, results, strict=True):
            if isinstance(result, InvalidImageError):
                yield CaptionRecord(key, "", result.reason)
            else:
                yield CaptionRecord(key, result)
        done += len(chunk)
        if progress is not None:
            progress(done, total)


def caption_records(
    captioner: Captioner, inputs: Sequence[NamedInput], **options: Any
) -> list[CaptionRecord]:
    """All of :func:`iter_caption_records` as a list (for the apps' batch tabs)."""
    return list(iter_caption_records(captioner, inputs, **options))


def _chunks(items: Iterable[NamedInput], size: int) -> Iterator[list[NamedInput]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk
