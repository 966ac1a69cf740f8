"""Settings of the Streamlit app: one typed dataclass, from flags after ``--``, then env, then defaults.

Host, port and the upload limit belong to Streamlit itself: ``--server.address``,
``--server.port``, ``--server.maxUploadSize`` (or ``STREAMLIT_SERVER_*`` env variables, or
``streamlit_app/.streamlit/config.toml``, which sets 127.0.0.1:8501 and 10 MB).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.captioning.loading import MODEL_ENV
from core.images import DEFAULT_MAX_PIXELS

INDEX_ENV = "IMG2TEXT_INDEX"  # index folder(s), separated by os.pathsep
RUN_ENV = "IMG2TEXT_RUN"  # training run folder(s), separated by os.pathsep
EXAMPLES_ENV = "IMG2TEXT_EXAMPLES"  # folder of example images
DEVICE_ENV = "IMG2TEXT_DEVICE"
MAX_PIXELS_ENV = "IMG2TEXT_MAX_PIXELS"


@dataclass(frozen=True)
class AppSettings:
    """What the Streamlit app can be told at start-up."""

    # Captioning model (hub id, "id@revision" or save_pretrained folder); None = core's default.
    model: str | None = None
    # "auto" = CUDA, then MPS, then CPU.
    device: str = "auto"
    # Saved EmbeddingIndex folders for "Similar images"; the first is the default.
    indexes: tuple[Path, ...] = ()
    # Training run folders for "Training run".
    runs: tuple[Path, ...] = ()
    # Folder of example images (none are bundled).
    examples: Path | None = None
    # Largest accepted image in pixels, checked from the header before decoding.
    max_pixels: int = DEFAULT_MAX_PIXELS
    # Images per model call in the Batch tab (also the progress bar's step).
    batch_size: int = 8
    # Nearest gallery images shown under a caption when an index is loaded.
    neighbours: int = 4


def _paths(raw: str | None) -> tuple[Path, ...]:
    if not raw:
        return ()
    return tuple(Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamlit run streamlit_app/app.py --", allow_abbrev=False,
                                     add_help=False)
    parser.add_argument("--model", default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--index", action="append", default=None)
    parser.add_argument("--run", action="append", default=None)
    parser.add_argument("--examples", default=None)
    parser.add_argument("--max-pixels", type=int, default=None)
    return parser


def parse_settings(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> tuple[AppSettings, list[str]]:
    """Flags win over env, env over defaults. Returns the settings and any ignored arguments."""
    env = os.environ if env is None else env
    args, unknown = build_parser().parse_known_args(list(argv or []))
    raw_pixels = args.max_pixels or env.get(MAX_PIXELS_ENV)
    examples = args.examples or env.get(EXAMPLES_ENV)
    settings = AppSettings(
        model=args.model or env.get(MODEL_ENV) or None,
        device=args.device or env.get(DEVICE_ENV) or "auto",
        indexes=tuple(Path(p).expanduser() for p in args.index) if args.index else _paths(env.get(INDEX_ENV)),
        runs=tuple(Path(p).expanduser() for p in args.run) if args.run else _paths(env.get(RUN_ENV)),
        examples=Path(examples).expanduser() if examples else None,
        max_pixels=int(raw_pixels) if raw_pixels else DEFAULT_MAX_PIXELS,
    )
    return settings, unknown
