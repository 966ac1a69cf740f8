"""One settings source for both web apps: environment names, defaults, limits, flag parsing.

Each app's own ``config.py`` adds only what belongs to its framework (Gradio's host, port and
queue). Precedence everywhere: flags, then environment variables, then the defaults below.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.captioning.modelspec import MODEL_ENV
from core.errors import ConfigError
from core.images import DEFAULT_MAX_PIXELS

INDEX_ENV = "IMG2TEXT_INDEX"  # index folder(s), separated by os.pathsep
RUN_ENV = "IMG2TEXT_RUN"  # training run folder(s), separated by os.pathsep
EXAMPLES_ENV = "IMG2TEXT_EXAMPLES"  # folder of example images
DEVICE_ENV = "IMG2TEXT_DEVICE"  # auto, cpu, cuda, cuda:N or mps
MAX_PIXELS_ENV = "IMG2TEXT_MAX_PIXELS"  # pixel cap per image
MAX_UPLOAD_ENV = "IMG2TEXT_MAX_UPLOAD_MB"  # upload cap in MB (Gradio; Streamlit has its own option)
PRECISION_ENV = "IMG2TEXT_PRECISION"  # the precision the apps load first and preselect: float32 or int8
# Gradio-only settings (gradio_app.config reads them; named here so a deployment can set them)
HOST_ENV = "IMG2TEXT_HOST"  # interface to bind
PORT_ENV = "IMG2TEXT_PORT"  # TCP port
QUEUE_SIZE_ENV = "IMG2TEXT_QUEUE_SIZE"  # requests allowed to wait
MCP_ENV = "IMG2TEXT_MCP"  # "1": also serve the MCP tools at /gradio_api/mcp/

__all__ = [
    "DEVICE_ENV", "EXAMPLES_ENV", "HOST_ENV", "INDEX_ENV", "MAX_PIXELS_ENV", "MAX_UPLOAD_ENV", "MCP_ENV",
    "MODEL_ENV", "PORT_ENV", "PRECISION_ENV", "QUEUE_SIZE_ENV", "RUN_ENV", "env_flag", "AppSettings", "add_arguments", "env_int", "path_list", "settings_from_args",
]


@dataclass(frozen=True)
class AppSettings:
    """What both apps can be told at start-up (the Gradio app extends it with server settings)."""

    # Captioning model: hub id, "id@revision" or a save_pretrained folder; None = $IMG2TEXT_MODEL
    # or core's default. Loaded in the background when the app starts.
    model: str | None = None
    # "auto" = CUDA, then MPS, then CPU.
    device: str = "auto"
    # The precision loaded at start-up and preselected in the generation panel: float32 or int8.
    precision: str = "float32"
    # Saved EmbeddingIndex folders offered under "Similar images"; the first one is the default.
    indexes: tuple[Path, ...] = ()
    # Training run folders (checkpoint.safetensors, history.json, loss.png) for "Training run".
    runs: tuple[Path, ...] = ()
    # Folder of example images; None = no examples (no images are bundled with the apps).
    examples: Path | None = None
    # Largest accepted image, in pixels (checked from the header, before decoding).
    max_pixels: int = DEFAULT_MAX_PIXELS
    # Images per model call in the Batch tab (also the progress bar's step) and merged requests.
    batch_size: int = 8
    # Most files accepted by one Batch run.
    max_batch_files: int = 200
    # Nearest gallery images shown next to a caption when an index is loaded.
    neighbours: int = 4
    # Example images shown under the Caption tab.
    example_limit: int = 12
    # Gallery images listed at once when picking a query (filtered by id, file name or caption).
    pick_limit: int = 50


def path_list(raw: str | None) -> tuple[Path, ...]:
    """``"a:b"`` (``os.pathsep``-separated) -> ``(Path("a"), Path("b"))``; empty parts dropped."""
    if not raw:
        return ()
    return tuple(Path(p.strip()).expanduser() for p in raw.split(os.pathsep) if p.strip())


def env_int(value: Any, name: str, default: int, minimum: int = 1) -> int:
    """A whole-number setting (flag value, else env text, else ``default``), at least ``minimum``.

    Raises:
        ConfigError: not a whole number, or below ``minimum``; the message names ``name``.
    """
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: {value!r} is not a whole number") from None
    if number < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {number}")
    return number


def env_flag(value: str | None, name: str) -> bool:
    """An on/off setting from the environment: 1/true/yes/on or 0/false/no/off/empty.

    Raises:
        ConfigError: any other text; the message names ``name``.
    """
    text = (value or "").strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: {value!r} is not on or off; use 1 or 0")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags both apps share (``--model --device --index --run --examples --max-pixels``)."""
    parser.add_argument("--model", default=None, help=f"hub id or save_pretrained folder (env {MODEL_ENV})")
    parser.add_argument("--device", default=None, help=f"auto, cpu, cuda, cuda:N or mps (env {DEVICE_ENV})")
    parser.add_argument("--index", action="append", default=None, metavar="DIR",
                        help=f"saved embedding index folder; repeat for several (env {INDEX_ENV})")
    parser.add_argument("--run", action="append", default=None, metavar="DIR",
                        help=f"training run folder; repeat for several (env {RUN_ENV})")
    parser.add_argument("--examples", default=None, metavar="DIR",
                        help=f"folder of example images (env {EXAMPLES_ENV})")
    parser.add_argument("--max-pixels", default=None,
                        help=f"image pixel limit (env {MAX_PIXELS_ENV}; default {DEFAULT_MAX_PIXELS:,})")


def settings_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The :class:`AppSettings` fields from parsed shared flags and the environment.

    Returns a dict so an app's own settings class (a subclass) can add its fields.

    Raises:
        ConfigError: a number that is not one, or out of range.
    """
    env = os.environ if env is None else env
    defaults = AppSettings()
    examples = args.examples or env.get(EXAMPLES_ENV)
    precision = env.get(PRECISION_ENV) or defaults.precision
    if precision not in ("float32", "int8"):
        raise ConfigError(f"{PRECISION_ENV}: {precision!r} is not a precision; use float32 or int8")
    values = {
        "model": args.model or env.get(MODEL_ENV) or None,
        "device": args.device or env.get(DEVICE_ENV) or defaults.device,
        "precision": precision,
        "indexes": tuple(Path(p).expanduser() for p in args.index) if args.index else path_list(env.get(INDEX_ENV)),
        "runs": tuple(Path(p).expanduser() for p in args.run) if args.run else path_list(env.get(RUN_ENV)),
        "examples": Path(examples).expanduser() if examples else None,
        "max_pixels": env_int(args.max_pixels or env.get(MAX_PIXELS_ENV), "--max-pixels",
                              defaults.max_pixels),
    }
    return values
