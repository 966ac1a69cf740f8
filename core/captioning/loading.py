"""Find and load a captioning model: hub id (optionally ``id@revision``) or a local folder.

The model, its image processor and its tokenizer always come from the same place. Weights
load from safetensors, or from ``.bin`` files with ``torch.load(weights_only=True)``; never
through unrestricted pickle.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError

from core.errors import ModelUnavailableError

DEFAULT_MODEL = "ydshieh/vit-gpt2-coco-en"
MODEL_ENV = "IMG2TEXT_MODEL"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
T = TypeVar("T")


@dataclass(frozen=True)
class ModelSpec:
    """Where a model comes from."""

    name: str  # hub id or local folder
    revision: str | None = None  # hub branch, tag or commit; None = the hub default

    @property
    def is_local(self) -> bool:
        return Path(self.name).expanduser().is_dir()

    def __str__(self) -> str:
        return f"{self.name}@{self.revision}" if self.revision else self.name


def resolve_model_spec(model: str | os.PathLike | ModelSpec | None = None) -> ModelSpec:
    """Argument, then ``$IMG2TEXT_MODEL``, then the default. ``"id@rev"`` pins a hub revision."""
    if isinstance(model, ModelSpec):
        return model
    raw = os.fspath(model) if model is not None else os.environ.get(MODEL_ENV) or DEFAULT_MODEL
    if Path(raw).expanduser().exists():
        return ModelSpec(str(Path(raw).expanduser()))
    looks_like_path = raw.startswith((".", "/", "~")) or os.sep in raw.replace("/", "", 1)
    if looks_like_path:
        raise ModelUnavailableError(
            f"model folder {raw!r} does not exist. Pass a folder written by save_pretrained() "
            f"or a Hugging Face hub id such as {DEFAULT_MODEL!r}."
        )
    if "@" in raw:
        name, _, revision = raw.partition("@")
        return ModelSpec(name, revision or None)
    return ModelSpec(raw)


def unavailable_message(spec: ModelSpec, reason: str) -> str:
    """The fix-it text shown whenever a model cannot be loaded."""
    return (
        f"Cannot load captioning model {str(spec)!r}: {reason}\n"
        "How to fix it:\n"
        f"  1. Use a local copy: pass a folder saved with save_pretrained(), e.g. "
        f"--model /path/to/vit-gpt2-coco-en (or set {MODEL_ENV}=/path/to/folder).\n"
        "  2. Or download it once on a machine with internet access "
        f"(`hf download {spec.name}`) and copy the Hugging Face cache "
        "(~/.cache/huggingface/hub, or $HF_HOME) here.\n"
        "  3. Then set HF_HUB_OFFLINE=1 so loading uses the cache without trying the network."
    )


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

    flags = (os.environ.get(name, "") for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return bool(constants.HF_HUB_OFFLINE) or any(f.upper() in ("1", "ON", "YES", "TRUE") for f in flags)


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
    except OSError as exc:  # not (completely) in the cache
        cache_miss = _first_line(exc)
    if _hub_offline():
        raise ModelUnavailableError(unavailable_message(spec, cache_miss))
    reason = hub_unreachable_reason()
    if reason is not None:
        raise ModelUnavailableError(unavailable_message(spec, f"not in the local cache, and {reason}"))
    return load()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]
