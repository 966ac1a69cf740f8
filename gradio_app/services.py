"""What the Gradio handlers share: the lazily loaded captioner, the loaded indexes, run folders.

Nothing here is model logic; it only decides *when* core loads things and keeps them.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from PIL import Image

import core
from core.images import IMAGE_EXTENSIONS
from core.ssl.runs import RunInfo, read_run
from gradio_app.config import AppConfig

ERROR_PREFIX = "Error: "  # /caption answers "Error: <why>" for an unusable image or model


class Services:
    """Lazy, thread-safe access to the captioner and the configured indexes."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._indexes: dict[Path, Any] = {}
        self._index_errors: dict[Path, str] = {}

    # -- captioning ---------------------------------------------------------------------
    def captioner(self) -> core.Captioner:
        """The cached captioner; loads on first use. Raises ModelUnavailableError."""
        return core.get_captioner(self.config.model, device=self.config.device)

    def load_upload(self, path: str | os.PathLike) -> Image.Image:
        """An uploaded file as an RGB image under the app's limits (InvalidImageError if not)."""
        return core.load_image(
            path, max_pixels=self.config.max_pixels, max_bytes=self.config.max_upload_bytes
        )

    # -- indexes ------------------------------------------------------------------------
    @property
    def index_choices(self) -> list[str]:
        return [str(p) for p in self.config.indexes]

    @property
    def default_index(self) -> str | None:
        return self.index_choices[0] if self.config.indexes else None

    def index(self, choice: str | None) -> Any:
        """The loaded ``EmbeddingIndex`` for one of the configured folders.

        Raises:
            ValueError: ``choice`` is not a configured index (clients cannot open other folders).
            FileNotFoundError / CheckpointError: the folder is not a usable index.
        """
        from core.search import EmbeddingIndex

        choice = choice or self.default_index
        if choice is None:
            raise ValueError("no index is loaded; start the app with --index DIR")
        path = Path(choice)
        if path not in self.config.indexes:
            raise ValueError(f"{choice!r} is not one of the app's indexes")
        with self._lock:
            if path not in self._indexes:
                self._indexes[path] = EmbeddingIndex.load(path)
            return self._indexes[path]

    def image_roots(self) -> list[Path]:
        """Folders holding the indexed images (served to the browser, nothing else)."""
        roots: list[Path] = []
        for path in self.config.indexes:
            try:
                index = self.index(str(path))
            except Exception as exc:  # a broken index must not stop the app from starting
                self._index_errors[path] = str(exc)
                continue
            if index.paths:  # the narrowest folder holding every indexed image
                parents = {str(Path(p).resolve().parent) for p in index.paths}
                roots.append(Path(os.path.commonpath(sorted(parents))))
        return roots

    def allowed_paths(self) -> list[str]:
        """``launch(allowed_paths=...)``: the index image folders and the examples folder only."""
        paths = [str(p) for p in self.image_roots()]
        if self.config.examples is not None and self.config.examples.is_dir():
            paths.append(str(self.config.examples.resolve()))
        return sorted(set(paths))

    def index_error(self, path: Path) -> str | None:
        return self._index_errors.get(path)

    # -- examples and runs ----------------------------------------------------------------
    def example_files(self, limit: int = 12) -> list[str]:
        folder = self.config.examples
        if folder is None or not folder.is_dir():
            return []
        files = sorted(p for p in folder.iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        return [str(p.resolve()) for p in files[:limit]]

    def run(self, choice: str | None) -> RunInfo:
        """Read a configured run folder (history.json, config.json, loss.png)."""
        choice = choice or (str(self.config.runs[0]) if self.config.runs else None)
        if choice is None:
            raise ValueError("no training run is configured; start the app with --run DIR")
        path = Path(choice)
        if path not in self.config.runs:
            raise ValueError(f"{choice!r} is not one of the app's runs")
        return read_run(path)
