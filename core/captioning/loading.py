"""Find and load a captioning model: hub id (optionally ``id@revision``) or a local folder.

The model, its image processor and its tokenizer always come from the same place. Weights
load from safetensors, or from ``.bin`` files with ``torch.load(weights_only=True)``; never
through unrestricted pickle.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError

from core.captioning.modelspec import (
    DEFAULT_MODEL,
    MODEL_ENV,
    ModelSpec,
    hub_offline,
    resolve_model_spec,
    unavailable_message,
)
from core.errors import ModelUnavailableError

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
T = TypeVar("T")
__all__ = ["DEFAULT_MODEL", "MODEL_ENV", "ModelSpec", "load_components", "load_with", "read_model_config",
           "resolve_model_spec", "unavailable_message"]


def _check_local_folder(spec: ModelSpec) -> None:
    folder = Path(spec.name).expanduser()
    missing = [n for n in ("config.json",) if not (folder / n).is_file()]
    if missing:
        raise ModelUnavailableError(
            unavailable_message(spec, f"folder has no {', '.join(missing)} (not a save_pretrained folder)")
        )
    if not any(p.suffix in _WEIGHT_SUFFIXES for p in folder.iterdir()):
        raise ModelUnavailableError(unavailable_message(spec, "folder holds no weight file"))


# Errors a model folder or cache entry can raise while loading: missing/unreadable files (OSError),
# bad configs (ValueError, KeyError, TypeError, AttributeError), corrupt or truncated weights
# (SafetensorError, RuntimeError, EOFError) and pickles refused by weights_only (UnpicklingError).
_LOAD_ERRORS: tuple[type[BaseException], ...] = (
    OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError, EOFError,
    pickle.UnpicklingError, SafetensorError,
)
# Seconds the one reachability check of the hub may take before the hub counts as unreachable.
HUB_PROBE_TIMEOUT = 5.0


def _load_all(spec: ModelSpec, dtype: torch.dtype, **hub: Any) -> tuple[Any, Any, Any]:
    """``from_pretrained`` of model, image processor and tokenizer from one place."""
    from transformers import AutoImageProcessor, AutoTokenizer, VisionEncoderDecoderModel

    if spec.revision:
        hub["revision"] = spec.revision
    model = VisionEncoderDecoderModel.from_pretrained(spec.name, dtype=dtype, weights_only=True, **hub)
    processor = AutoImageProcessor.from_pretrained(spec.name, **hub)
    tokenizer = AutoTokenizer.from_pretrained(spec.name, **hub)
    return model, processor, tokenizer


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or hub_offline()


def hub_unreachable_reason(timeout: float = HUB_PROBE_TIMEOUT) -> str | None:
    """One request to the hub's endpoint: why it cannot be reached, or None when it answers.

    ``huggingface_hub`` retries a failed connection five times with back-off (about 30 s);
    asking once first lets an unreachable hub fail in seconds.
    """
    import httpx
    from huggingface_hub import constants

    try:
        httpx.head(constants.ENDPOINT, timeout=timeout)
    except httpx.TransportError as exc:
        return f"the Hugging Face hub ({constants.ENDPOINT}) is unreachable ({_first_line(exc)})"
    return None


def read_model_config(spec: ModelSpec) -> dict[str, Any]:
    """The model's ``config.json`` as a dict (a hub model's from the cache first, as for loading).

    Raises:
        ModelUnavailableError: not found, not reachable, not cached, or not JSON.
    """
    def read(**hub: Any) -> dict[str, Any]:
        if spec.is_local:
            path = Path(spec.name).expanduser() / "config.json"
        else:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(spec.name, "config.json", revision=spec.revision, **hub))
        config = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError("config.json is not a JSON object")
        return config

    return _guarded(spec, read)


def load_components(
    spec: ModelSpec, *, device: torch.device, dtype: torch.dtype
) -> tuple[Any, Any, Any]:
    """Load ``(model, image_processor, tokenizer)`` onto ``device`` in ``dtype``, in eval mode.

    A hub model comes from the local Hugging Face cache when it is there, without contacting
    the hub (pin ``id@revision`` to get another version). Otherwise the hub is asked once
    (:func:`hub_unreachable_reason`): unreachable or offline means an immediate error, not
    the library's retries.

    Raises:
        ModelUnavailableError: not found, not reachable, not cached, or unsafe/corrupt weights.
    """
    model, processor, tokenizer = _guarded(spec, lambda **hub: _load_all(spec, dtype, **hub))
    model.to(device)  # type: ignore[arg-type]  # transformers' stub types .to oddly
    model.eval()
    return model, processor, tokenizer


def load_with(spec: ModelSpec, load: Callable[..., T]) -> T:
    """Run ``load(**hub_kwargs)`` the way :func:`load_components` loads (cache first, one hub
    probe, errors turned into :class:`ModelUnavailableError`); for the other families' loaders."""
    def with_revision(**hub: Any) -> T:
        if spec.revision:
            hub["revision"] = spec.revision
        return load(**hub)

    return _guarded(spec, with_revision)


def _guarded(spec: ModelSpec, load: Callable[..., T]) -> T:
    """``load`` from the local folder or the hub, every load failure as a fix-it message."""
    try:
        if spec.is_local:
            _check_local_folder(spec)
            return load()
        return _load_from_hub(spec, load)
    except ModelUnavailableError:
        raise
    except _LOAD_ERRORS as exc:
        reason = _first_line(exc)
        if not isinstance(exc, (OSError, ValueError)):
            reason = f"{type(exc).__name__}: {reason}"
        raise ModelUnavailableError(unavailable_message(spec, reason)) from exc


def _load_from_hub(spec: ModelSpec, load: Callable[..., T]) -> T:
    """The cached copy, else one reachability check, then the download."""
    try:
        return load(local_files_only=True)
    except OSError:  # not (completely) in the cache (the library's "couldn't connect to
        pass  # huggingface.co" is not what happened offline: it never tried)
    if _hub_offline():
        raise ModelUnavailableError(unavailable_message(spec, "it is not in the local Hugging Face cache"))
    reason = hub_unreachable_reason()
    if reason is not None:
        raise ModelUnavailableError(unavailable_message(spec, f"it is not in the local cache, and {reason}"))
    return load()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]
