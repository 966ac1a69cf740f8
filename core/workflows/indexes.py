"""The indexes an app was started with: loaded once, on first use, and only those folders."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

from core.errors import ConfigError
from core.search import EmbeddingIndex
from core.workflows.similarity import collapse_warning

__all__ = ["IndexShelf"]


class IndexShelf:
    """Thread-safe, lazy access to the configured index folders (clients cannot open others).

    Args:
        paths: the configured index folders; the first is the default.
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = tuple(Path(p) for p in paths)
        self._lock = threading.Lock()
        self._loaded: dict[Path, EmbeddingIndex] = {}
        self._warnings: dict[Path, str | None] = {}

    @property
    def choices(self) -> list[str]:
        return [str(p) for p in self.paths]

    def _path(self, choice: str | Path | None) -> Path:
        if choice in (None, "") and not self.paths:
            raise ConfigError("no index is loaded; start the app with --index DIR")
        path = Path(choice) if choice not in (None, "") else self.paths[0]  # type: ignore[arg-type]
        if path not in self.paths:
            raise ConfigError(f"{str(choice)!r} is not one of the app's indexes; choose one from the list")
        return path

    def get(self, choice: str | Path | None = None) -> EmbeddingIndex:
        """The loaded index of a configured folder (``None``: the first).

        Raises:
            ValueError: not a configured folder. OSError / CheckpointError: not a usable index.
        """
        path = self._path(choice)
        with self._lock:
            if path not in self._loaded:
                index = EmbeddingIndex.load(path)
                self._loaded[path], self._warnings[path] = index, collapse_warning(index)
            return self._loaded[path]

    def warning(self, choice: str | Path | None = None) -> str | None:
        """The index's :func:`collapse_warning` (computed once, on load)."""
        self.get(choice)
        return self._warnings[self._path(choice)]

    def image_roots(self) -> list[str]:
        """For each loadable index, the narrowest folder holding all its images (broken ones skipped)."""
        roots = []
        for path in self.paths:
            try:
                index = self.get(path)
            except (OSError, ValueError):  # a broken index must not stop the app from starting
                continue
            if index.paths:
                roots.append(os.path.commonpath(sorted({str(Path(p).resolve().parent) for p in index.paths})))
        return roots
