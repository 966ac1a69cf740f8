"""What ``img2text deploy space`` is told (torch-free: ``img2text --help`` builds its flags from it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core.errors import ConfigError

APP_FILES = {"gradio": "app.py", "streamlit": "streamlit_app.py"}


@dataclass(frozen=True)
class SpaceConfig:
    """What goes into the folder (each field is an ``img2text deploy space`` flag)."""

    sdk: Literal["gradio", "streamlit"] = field(default="gradio", metadata={
        "help": "gradio: a Gradio Space (app.py); streamlit: a Streamlit Space or Streamlit Community Cloud app "
                "(streamlit_app.py)"})
    model: str | None = field(default=None, metadata={
        "help": "captioning model: a hub id (id@revision pins one; named under models: in the README) or a "
                "save_pretrained folder, copied into the Space as model/; none = core's default model"})
    precision: Literal["float32", "int8"] = field(default="float32", metadata={
        "help": "the apps' default precision on a CPU Space: float32 (exact) or int8 (faster, captions may differ)"})
    index: Path | None = field(default=None, metadata={
        "help": "a saved index folder shipped as index/, with its SimCLR encoder and (see --index-images) its "
                "gallery images copied in, so search by image works in the Space; none = no Similar images"})
    index_images: bool = field(default=True, metadata={
        "help": "copy the index's gallery images into index/images/ (--no-index-images: results show ids, "
                "scores and captions without pictures)"})
    queue_size: int = field(default=16, metadata={"help": "requests allowed to wait (Gradio); more get 'queue full'"})
    max_upload_mb: int = field(default=10, metadata={"help": "largest accepted upload in MB"})
    mcp: bool = field(default=False, metadata={"help": "also serve the MCP tools at /gradio_api/mcp/ (Gradio)"})
    title: str = field(default="image-to-text", metadata={"help": "the Space's title"})
    device: str = field(default="auto", metadata={"help": "auto (GPU when the Space has one), cpu or cuda"})

    def __post_init__(self) -> None:
        if self.sdk not in APP_FILES:
            raise ConfigError(f"--sdk {self.sdk!r}: choose gradio or streamlit")
        if self.precision not in ("float32", "int8"):
            raise ConfigError(f"--precision {self.precision!r}: choose float32 or int8")
        for name in ("queue_size", "max_upload_mb"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.index is not None and not (Path(self.index) / "index.json").is_file():
            raise ConfigError(f"--index {self.index}: not a saved index folder (no index.json); build one with "
                              "`img2text ssl embed`")
