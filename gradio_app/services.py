"""What the Gradio handlers share: the model loader and batcher, the indexes, run folders."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from PIL import Image

from core import workflows as wf
from gradio_app.config import AppConfig


class Services:
    """The app's long-lived objects. Nothing loads until :meth:`start` (or first use)."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.models = wf.ModelChoices(config.model, config.device)  # shared by all sessions, LRU-bounded
        self.models.loader(config.precision)  # the start-up choice (int8: starts loading now)
        self._batchers: dict[tuple[str | None, str], tuple[wf.ModelLoader, wf.CaptionBatcher]] = {}
        self._lock = threading.Lock()
        self.indexes = wf.IndexShelf(config.indexes)

    @property
    def model(self) -> wf.ModelLoader:
        """The start-up model's loader at the start-up precision (a page's default choice)."""
        return self.models.loader(self.config.precision)

    def batcher(self, precision: str = "float32", model: str | None = None) -> wf.CaptionBatcher:
        """The request merger in front of the captioner of ``(model, precision)`` (None: the
        start-up model); one per loader the model choices hold, dropped with it."""
        loader = self.models.loader(precision, model=model)
        key = self.models.key(precision, model)
        with self._lock:
            held = self._batchers.get(key)
            if held is None or held[0] is not loader:  # new, or its loader was dropped and made again
                held = self._batchers[key] = (loader, wf.CaptionBatcher(
                    loader.get, max_batch=self.config.batch_size, max_pixels=self.config.max_pixels))
            live = set(self.models.keys())
            for old in [k for k in self._batchers if k not in live]:
                del self._batchers[old]
        return held[1]

    def start(self) -> None:
        """Begin loading the model in the background (the page opens meanwhile)."""
        self.model.start()

    @property
    def limits(self) -> dict[str, int]:
        """The app's upload limits as ``load_upload`` / ``search_gallery`` keywords."""
        return {"max_pixels": self.config.max_pixels, "max_bytes": self.config.max_upload_bytes}

    def load(self, path: str | os.PathLike) -> Image.Image:
        """An uploaded file as an RGB image under the app's limits (InvalidImageError if not)."""
        return wf.load_upload(path, **self.limits)

    def allowed_paths(self) -> list[str]:
        """``launch(allowed_paths=...)``: the index image folders and the examples folder only."""
        paths = self.indexes.image_roots()
        if self.config.examples is not None and self.config.examples.is_dir():
            paths.append(str(self.config.examples.resolve()))
        return sorted(set(paths))

    def run(self, choice: str | None) -> wf.RunInfo:
        """Read a configured run folder (history.json, config.json, loss.png)."""
        choice = choice or (str(self.config.runs[0]) if self.config.runs else None)
        if choice is None or Path(choice) not in self.config.runs:
            raise ValueError(f"{choice!r} is not one of the app's runs" if choice else
                             "no training run is configured; start the app with --run DIR")
        return wf.read_run(Path(choice))

    def runs_index(self, info: wf.RunInfo) -> Any:
        """The configured index built from this run's weights, or None."""
        return wf.index_for_run(info, self.config.indexes, self.indexes.get)
