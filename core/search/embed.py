"""Batched, deterministic, L2-normalised image embeddings through the eval transform."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from tqdm import tqdm

from core.devices import resolve_device
from core.errors import ConfigError, DatasetError, InvalidImageError
from core.images import ImageInput, load_image
from core.search.encoder import EncoderLike

OnError = Literal["skip", "raise"]
ON_ERROR_CHOICES = ("skip", "raise")
DEFAULT_BATCH_SIZE = 64
# Below this many images a progress bar is only noise (tests, single queries).
_PROGRESS_MIN_ITEMS = 256


@dataclass
class EmbeddingResult:
    """Embeddings of the inputs that loaded, and which inputs were skipped.

    Attributes:
        embeddings: unit-norm float32 rows in input order, skipped inputs left out.
            Shape: (N_kept, D).
        kept: index into the inputs of each embedding row.
        failures: ``(input index, error message)`` for each skipped input.
    """

    embeddings: torch.Tensor
    kept: list[int]
    failures: list[tuple[int, str]] = field(default_factory=list)


def embed_images(
    encoder: EncoderLike,
    images: Sequence[ImageInput],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device | None = None,
    on_error: OnError = "skip",
    progress: bool | None = None,
    desc: str = "embedding",
    allow_empty: bool = False,
) -> EmbeddingResult:
    """Embed images with ``encoder`` in eval mode, through its deterministic eval transform.

    Args:
        encoder: a loaded encoder (its ``transform`` resizes, centre-crops and normalises).
        images: paths, bytes, PIL images or HxWx3 uint8 arrays (see ``core.images``).
        batch_size: images per forward pass.
        device: where to run; ``None``/``"auto"`` picks CUDA, MPS or CPU.
        on_error: ``"skip"`` counts unreadable images in ``failures``; ``"raise"`` re-raises
            the first :class:`InvalidImageError`.
        progress: show a tqdm bar on stderr; ``None`` shows it for long runs only.
        desc: the progress bar's label.
        allow_empty: when every image fails (with ``on_error="skip"``), return an empty result
            (Shape: (0, 0)) listing the failures instead of raising.

    Returns:
        The kept embeddings (Shape: (N_kept, D)), their input indices and the failures.

    Raises:
        ValueError: bad ``batch_size``/``on_error``, or no image could be embedded (unless
            ``allow_empty``).
        InvalidImageError: an image failed and ``on_error="raise"``.
    """
    _check_options(batch_size, on_error)
    dev = resolve_device(device)
    model = encoder.encoder.to(dev).eval()  # eval: batch-norm statistics frozen, no dropout
    prepare = getattr(encoder, "prepare_batch", None)  # core.search.pretrained: batched processor
    show = len(images) >= _PROGRESS_MIN_ITEMS if progress is None else progress
    chunks: list[torch.Tensor] = []
    kept: list[int] = []
    failures: list[tuple[int, str]] = []
    with tqdm(total=len(images), desc=desc, unit="img", disable=not show, file=sys.stderr) as bar:
        for start in range(0, len(images), batch_size):
            pictures: list[Any] = []
            for i in range(start, min(start + batch_size, len(images))):
                try:
                    pictures.append(load_image(images[i]) if prepare else encoder.transform(load_image(images[i])))
                except InvalidImageError as exc:
                    if on_error == "raise":
                        raise
                    failures.append((i, str(exc)))
                    continue
                kept.append(i)
            if pictures:  # a pretrained encoder's processor prepares the whole batch at once
                batch = prepare(pictures) if prepare else torch.stack(pictures)
                chunks.append(_forward(model, batch, dev))
            bar.update(min(batch_size, len(images) - start))
    if not chunks and allow_empty:
        return EmbeddingResult(torch.zeros(0, 0), [], failures)
    if not chunks:
        raise DatasetError(_nothing_embedded(len(images), failures))
    return EmbeddingResult(torch.cat(chunks), kept, failures)


def _check_options(batch_size: int, on_error: str) -> None:
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    if on_error not in ON_ERROR_CHOICES:
        raise ConfigError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")


def _nothing_embedded(count: int, failures: list[tuple[int, str]]) -> str:
    what = f"all {count} images failed to load" if count else "no images given"
    detail = f" (first: {failures[0][1]})" if failures else ""
    return f"nothing to embed: {what}{detail}"


def embed_one(
    encoder: EncoderLike, image: ImageInput, device: str | torch.device | None = None
) -> torch.Tensor:
    """Embed a single image; errors are raised (a query has nothing to skip to).

    Returns:
        A unit-norm float32 vector. Shape: (D,).
    """
    result = embed_images(encoder, [image], batch_size=1, device=device, on_error="raise")
    return result.embeddings[0]


@torch.inference_mode()
def _forward(model: torch.nn.Module, batch: torch.Tensor | dict[str, torch.Tensor],
             device: torch.device) -> torch.Tensor:
    if isinstance(batch, dict):  # a processor's named tensors (pixel_values, masks, shapes)
        out = model(**{k: v.to(device) for k, v in batch.items()})
    else:
        out = model(batch.to(device))
    if isinstance(out, (tuple, list)):  # some encoders return (features, extras)
        out = out[0]
    if out.ndim != 2:
        raise ValueError(f"encoder returned shape {tuple(out.shape)}; expected (batch, dim)")
    # Cosine similarity becomes a plain dot product once every row has unit norm.
    return F.normalize(out.float(), dim=1).cpu()


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "ON_ERROR_CHOICES",
    "EmbeddingResult",
    "OnError",
    "embed_images",
    "embed_one",
]
