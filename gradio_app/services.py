"""What the Gradio handlers share: the model loader and batcher, the indexes, run folders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PIL import Image

from core import workflows as wf
from gradio_app.config import AppConfig


class Services:
    """The app's long-lived objects. Nothing loads until :meth:`start` (or first use)."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.models = wf.ModelChoices(config.model, config.device)
        self.model = self.models.loader(config.precision)  # the model bar shows this one
        self._batchers: dict[str, wf.CaptionBatcher] = {}
        self.indexes = wf.IndexShelf(config.indexes)

    def batcher(self, precision: str = "float32") -> wf.CaptionBatcher:
        """The request merger in front of the captioner of ``precision`` (float32 or int8)."""
        if precision not in self._batchers:  # made once per precision, on first use
            self._batchers[precision] = wf.CaptionBatcher(
                self.models.loader(precision).get, max_batch=self.config.batch_size, max_pixels=self.config.max_pixels)
        return self._batchers[precision]

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
