"""Long-lived objects, cached once per server process with ``st.cache_resource``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

import core
from core.images import IMAGE_EXTENSIONS


@st.cache_resource(show_spinner="Loading the captioning model…")
def captioner(model: str | None, device: str) -> core.Captioner:
    """The shared, thread-safe captioner (a failed load is not cached, so a fix is picked up)."""
    return core.get_captioner(model, device=device)


@st.cache_resource(show_spinner="Loading the index…")
def index(path: str) -> Any:
    """A loaded ``EmbeddingIndex`` (FileNotFoundError / CheckpointError when unusable)."""
    from core.search import EmbeddingIndex

    return EmbeddingIndex.load(Path(path))


@st.cache_data(show_spinner=False)
def weights_sha256(path: str, mtime: float) -> str:
    """sha256 of a run's weights (``mtime`` makes a rewritten file count as new)."""
    from core.search.storage import sha256_file

    return sha256_file(Path(path))


def example_files(folder: Path | None, limit: int = 8) -> list[Path]:
    """Image files in the configured examples folder, sorted, at most ``limit``."""
    if folder is None or not folder.is_dir():
        return []
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    return files[:limit]
