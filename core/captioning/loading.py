"""Find and load a captioning model: hub id (optionally ``id@revision``) or a local folder.

The model, its image processor and its tokenizer always come from the same place. Weights
load from safetensors, or from ``.bin`` files with ``torch.load(weights_only=True)``; never
through unrestricted pickle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.errors import ModelUnavailableError

DEFAULT_MODEL = "ydshieh/vit-gpt2-coco-en"
MODEL_ENV = "IMG2TEXT_MODEL"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


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
        f"(`huggingface-cli download {spec.name}`) and copy the Hugging Face cache "
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


def load_components(
    spec: ModelSpec, *, device: torch.device, dtype: torch.dtype
) -> tuple[Any, Any, Any]:
    """Load ``(model, image_processor, tokenizer)`` onto ``device`` in ``dtype``, in eval mode.

    Raises:
        ModelUnavailableError: not found, not reachable, not cached, or unsafe weights.
    """
    from transformers import AutoImageProcessor, AutoTokenizer, VisionEncoderDecoderModel

    if spec.is_local:
        _check_local_folder(spec)
    common: dict[str, Any] = {"revision": spec.revision} if spec.revision else {}
    try:
        model = VisionEncoderDecoderModel.from_pretrained(
            spec.name, dtype=dtype, weights_only=True, **common
        )
        processor = AutoImageProcessor.from_pretrained(spec.name, **common)
        tokenizer = AutoTokenizer.from_pretrained(spec.name, **common)
    except ModelUnavailableError:
        raise
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(unavailable_message(spec, _first_line(exc))) from exc
    except Exception as exc:  # unpickling errors, corrupt safetensors, config mismatches
        raise ModelUnavailableError(
            unavailable_message(spec, f"{type(exc).__name__}: {_first_line(exc)}")
        ) from exc
    model.to(device)  # type: ignore[arg-type]  # transformers' stub types .to oddly
    model.eval()
    return model, processor, tokenizer


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]
