"""Which captioning model, and why it cannot be loaded: torch-free, so a front end can say so at once.

:func:`resolve_model_spec` turns ``--model`` / ``$IMG2TEXT_MODEL`` / the default into a
:class:`ModelSpec`; :func:`preflight_model` refuses, in well under a second and before torch or
transformers are imported, a hub model that is not in the local cache while the hub may not be
asked (``HF_HUB_OFFLINE=1``). :func:`unavailable_message` is the fix-it text every front end
shows: what was tried, then commands that paste as they are. It is written for the CLI
(``img2text caption IMAGE --model ...``); :func:`for_command` rewrites it for an app's command.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from core.errors import ModelUnavailableError

DEFAULT_MODEL = "ydshieh/vit-gpt2-coco-en"
MODEL_ENV = "IMG2TEXT_MODEL"
CLI_COMMAND = "img2text caption IMAGE"  # how the fix-it text starts a command; see for_command
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


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


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) forbids asking the hub."""
    flags = (os.environ.get(name, "") for name in _OFFLINE_VARS)
    return any(f.strip().upper() in ("1", "ON", "YES", "TRUE") for f in flags)


def hub_cache_dir() -> str:
    """Where the Hugging Face cache of models is (``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or the default)."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def unavailable_message(spec: ModelSpec, reason: str, tried: str | None = None) -> str:
    """The fix-it text shown whenever a model cannot be loaded: the reason, what was tried
    (``tried``; the default says what a hub id tried), and commands to paste."""
    if tried is None and not spec.is_local:
        tried = (f"the local Hugging Face cache ({hub_cache_dir()}); "
                 + ("the hub was not asked, as HF_HUB_OFFLINE=1 is set" if hub_offline()
                    else "then the hub, once"))
    steps = [
        "Use a local copy (a folder written by save_pretrained()):\n"
        f"       {CLI_COMMAND} --model /path/to/vit-gpt2-coco-en\n"
        f"     or, for every command: export {MODEL_ENV}=/path/to/vit-gpt2-coco-en",
    ]
    if not spec.is_local:
        steps.append(
            "Or download it once on a machine with internet access:\n"
            f"       hf download {spec.name}" + (f" --revision {spec.revision}" if spec.revision else "")
            + f"\n     and copy its Hugging Face cache folder to {hub_cache_dir()} here"
            + (" (HF_HUB_OFFLINE=1, already set, then loads it from there)." if hub_offline() else
               ", then `export HF_HUB_OFFLINE=1` so loading uses the cache without trying the network."))
    return (f"Cannot load captioning model {str(spec)!r}: {reason}\n"
            + (f"Tried: {tried}.\n" if tried else "")
            + "How to fix it:\n" + "\n".join(f"  {i}. {s}" for i, s in enumerate(steps, 1)))


def for_command(message: str, command: str) -> str:
    """A fix-it text with its commands starting ``command`` (an app's: ``python -m gradio_app``,
    ``streamlit run streamlit_app/app.py --``) instead of the CLI's."""
    return message.replace(CLI_COMMAND, command)


def preflight_model(model: str | os.PathLike | ModelSpec | None = None) -> ModelSpec:
    """The model's spec, refused at once when it cannot load without asking the hub.

    Torch-free and fast (only ``huggingface_hub``'s cache lookup): a hub id offline that is not
    in the cache is refused here, before the seconds of importing torch and transformers.

    Raises:
        ModelUnavailableError: a model folder that does not exist, or offline and not cached.
    """
    spec = resolve_model_spec(model)
    if spec.is_local or not hub_offline():
        return spec
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(spec.name, "config.json", revision=spec.revision), str):
        raise ModelUnavailableError(unavailable_message(spec, "it is not in the local Hugging Face cache"))
    return spec
