"""Module-level helpers: ``core.caption`` and ``core.caption_batch`` on a cached `Captioner`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

import torch

from core.captioning.captioner import DEFAULT_BATCH_SIZE, Captioner, ErrorMode
from core.captioning.loading import resolve_model_spec
from core.devices import precision_name, resolve_device
from core.errors import InvalidImageError
from core.images import ImageInput

# The one piece of global state: loaded models, keyed by where they came from and how.
_CACHE: dict[tuple[str, str, str, bool], Captioner] = {}
_CACHE_LOCK = threading.Lock()


def get_captioner(
    model: str | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    trust_remote_code: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Captioner:
    """Return a cached `Captioner` for this model/device/dtype, loading it on first use.

    ``trust_remote_code`` (off by default) lets a checkpoint run its own model code.
    ``progress`` gets the loading stages when this call loads (see `Captioner`); a cached
    captioner's stage now is its ``stage``.
    """
    spec = resolve_model_spec(model)
    dev = resolve_device(device)
    key = (str(spec), str(dev), precision_name(dtype, dev), bool(trust_remote_code))
    with _CACHE_LOCK:
        captioner = _CACHE.get(key)
        if captioner is None:
            captioner = Captioner(spec, device=dev, dtype=dtype, trust_remote_code=trust_remote_code,
                                  progress=progress)
            _CACHE[key] = captioner
        return captioner


def clear_cache() -> None:
    """Forget every cached model (frees memory; the next call reloads)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def forget_captioner(captioner: Captioner) -> bool:
    """Drop ``captioner`` from the cache (an app's bounded model choices evict with this), so its
    memory is freed once no caller holds it; the next ``get_captioner`` for it loads again.

    Returns:
        True if it was cached.
    """
    with _CACHE_LOCK:
        keys = [k for k, v in _CACHE.items() if v is captioner]
        for k in keys:
            del _CACHE[k]
    return bool(keys)


def caption(
    image: ImageInput,
    *,
    model: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    **generation: Any,
) -> str:
    """Caption one image with the (cached) model. See `Captioner.caption`."""
    return get_captioner(model, device=device, dtype=dtype).caption(image, **generation)


def caption_batch(
    images: Iterable[ImageInput],
    *,
    model: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    errors: ErrorMode = "raise",
    **generation: Any,
) -> list[str | InvalidImageError]:
    """Caption many images in batches. See `Captioner.caption_batch`."""
    captioner = get_captioner(model, device=device, dtype=dtype)
    return captioner.caption_batch(images, batch_size=batch_size, errors=errors, **generation)
