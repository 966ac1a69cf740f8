"""Settings of the Gradio app: one typed dataclass, filled from CLI flags, then env, then defaults."""

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
EXAMPLES_ENV = "IMG2TEXT_EXAMPLES"  # folder of example images shown under the Caption tab
HOST_ENV = "IMG2TEXT_HOST"
PORT_ENV = "IMG2TEXT_PORT"
MAX_UPLOAD_ENV = "IMG2TEXT_MAX_UPLOAD_MB"
DEVICE_ENV = "IMG2TEXT_DEVICE"
MAX_PIXELS_ENV = "IMG2TEXT_MAX_PIXELS"
QUEUE_SIZE_ENV = "IMG2TEXT_QUEUE_SIZE"


@dataclass(frozen=True)
class AppConfig:
    """Everything the Gradio front end can be told at start-up."""

    # Captioning model: hub id, "id@revision" or a save_pretrained folder; None = $IMG2TEXT_MODEL
    # or core's default. Loaded lazily, on the first caption.
    model: str | None = None
    # "auto" = CUDA, then MPS, then CPU.
    device: str = "auto"
    # Saved EmbeddingIndex folders offered under "Similar images"; the first one is the default.
    indexes: tuple[Path, ...] = ()
    # Training run folders (checkpoint.safetensors, history.json, loss.png) for "Training run".
    runs: tuple[Path, ...] = ()
    # Folder of example images; None = no examples (no images are bundled with the app).
    examples: Path | None = None
    # Interface to bind: 127.0.0.1 keeps the app local; 0.0.0.0 exposes it on the network.
    host: str = "127.0.0.1"
    port: int = 7860
    # Largest accepted upload, in MB (enforced by Gradio before the file reaches our code).
    max_upload_mb: int = 10
    # Largest accepted image, in pixels (checked from the header, before decoding).
    max_pixels: int = DEFAULT_MAX_PIXELS
    # Requests allowed to wait in the queue; more are refused with "queue full".
    queue_size: int = 32
    # Caption requests merged into one model call (Captioner.caption_batch).
    max_batch_size: int = 8
    # Most files accepted by one Batch run.
    max_batch_files: int = 200
    # Nearest neighbours shown next to a caption when an index is loaded.
    neighbours: int = 4
    # Index images shown as a clickable gallery under "Similar images".
    browse_limit: int = 48

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _paths(raw: str | None) -> tuple[Path, ...]:
    if not raw:
        return ()
    return tuple(Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gradio_app",
        description="Caption images, search similar images and inspect training runs in a browser.",
    )
    parser.add_argument("--model", default=None,
                        help=f"hub id or save_pretrained folder (env {MODEL_ENV})")
    parser.add_argument("--device", default=None, help=f"auto, cpu, cuda, cuda:N or mps (env {DEVICE_ENV})")
    parser.add_argument("--index", action="append", default=None, metavar="DIR",
                        help=f"saved embedding index folder; repeat for several (env {INDEX_ENV})")
    parser.add_argument("--run", action="append", default=None, metavar="DIR",
                        help=f"training run folder; repeat for several (env {RUN_ENV})")
    parser.add_argument("--examples", default=None, metavar="DIR",
                        help=f"folder of example images (env {EXAMPLES_ENV})")
    parser.add_argument("--host", default=None, help=f"interface to bind (env {HOST_ENV}; default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help=f"port (env {PORT_ENV}; default 7860)")
    parser.add_argument("--max-upload-mb", type=int, default=None,
                        help=f"upload size limit in MB (env {MAX_UPLOAD_ENV}; default 10)")
    parser.add_argument("--max-pixels", type=int, default=None,
                        help=f"image pixel limit (env {MAX_PIXELS_ENV}; default {DEFAULT_MAX_PIXELS:,})")
    parser.add_argument("--queue-size", type=int, default=None,
                        help=f"requests allowed to wait; more get 'queue full' (env {QUEUE_SIZE_ENV}; default 32)")
    return parser


def parse_config(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> AppConfig:
    """Flags win over environment variables, which win over the defaults.

    Raises:
        SystemExit: bad flags or values (argparse prints the reason).
    """
    env = os.environ if env is None else env
    parser = build_parser()
    args = parser.parse_args(argv)
    defaults = AppConfig()
    try:
        port = args.port if args.port is not None else int(env.get(PORT_ENV) or defaults.port)
        upload = (args.max_upload_mb if args.max_upload_mb is not None
                  else int(env.get(MAX_UPLOAD_ENV) or defaults.max_upload_mb))
        max_pixels = args.max_pixels or int(env.get(MAX_PIXELS_ENV) or defaults.max_pixels)
        queue_size = args.queue_size or int(env.get(QUEUE_SIZE_ENV) or defaults.queue_size)
    except ValueError as exc:
        parser.error(f"not a number: {exc}")
    if not 0 < port < 65536:
        parser.error(f"port must be 1-65535, got {port}")
    if upload < 1:
        parser.error(f"--max-upload-mb must be >= 1, got {upload}")
    if max_pixels < 1:
        parser.error(f"--max-pixels must be >= 1, got {max_pixels}")
    if queue_size < 1:
        parser.error(f"--queue-size must be >= 1, got {queue_size}")
    examples = args.examples or env.get(EXAMPLES_ENV)
    return AppConfig(
        model=args.model or env.get(MODEL_ENV) or None,
        device=args.device or env.get(DEVICE_ENV) or defaults.device,
        indexes=tuple(Path(p).expanduser() for p in args.index) if args.index else _paths(env.get(INDEX_ENV)),
        runs=tuple(Path(p).expanduser() for p in args.run) if args.run else _paths(env.get(RUN_ENV)),
        examples=Path(examples).expanduser() if examples else None,
        host=args.host or env.get(HOST_ENV) or defaults.host,
        port=port,
        max_upload_mb=upload,
        max_pixels=max_pixels,
        queue_size=queue_size,
    )
