"""Merge caption requests that arrive together into one model call, after each loaded its own image.

A web app answers each request in its own thread: the thread loads (and checks) its upload, then
hands the decoded image to :meth:`CaptionBatcher.caption`. Requests waiting at the same moment
with the same settings share one ``caption_batch`` call. A file that is slow to decode therefore
delays only its own request, never the images that arrived with it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from PIL import Image

from core.captioning import Captioner, GenerationOptions
from core.errors import ConfigError
from core.images import DEFAULT_MAX_PIXELS

__all__ = ["CaptionBatcher"]


class CaptionBatcher:
    """Thread-safe request merger in front of one captioner.

    Args:
        captioner: returns the captioner (e.g. ``ModelLoader.get``); called once per model call.
        max_batch: most images in one model call.
        window_s: how long the worker waits for more requests after the first one arrives.
        max_pixels: the app's pixel cap, passed to ``caption_batch``.
    """

    def __init__(self, captioner: Callable[[], Captioner], *, max_batch: int = 8, window_s: float = 0.02,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        if max_batch < 1:
            raise ConfigError(f"max_batch must be >= 1, got {max_batch}")
        self._captioner, self.max_batch, self.window_s, self.max_pixels = captioner, max_batch, window_s, max_pixels
        self._cond = threading.Condition()
        self._pending: list[tuple[tuple, Image.Image, Future]] = []
        self._worker: threading.Thread | None = None
        self.batch_sizes: list[int] = []  # images per model call so far (for tests and logs)

    def caption(self, image: Image.Image, **generation: Any) -> str:
        """Caption one loaded image, sharing a model call with requests that arrive meanwhile.

        Raises:
            ValueError: invalid generation options (checked before queueing).
            ModelUnavailableError: from the ``captioner`` callable.
        """
        GenerationOptions.from_kwargs(**generation)
        future: Future = Future()
        with self._cond:
            self._pending.append((tuple(sorted(generation.items())), image, future))
            if self._worker is None:
                self._worker = threading.Thread(target=self._loop, daemon=True, name="img2text-batcher")
                self._worker.start()
            self._cond.notify()
        return future.result()

    def _take(self) -> list[tuple[tuple, Image.Image, Future]]:
        with self._cond:
            while not self._pending:
                self._cond.wait()
        time.sleep(self.window_s)  # let requests that arrive together join this call
        with self._cond:
            key = self._pending[0][0]
            batch = [p for p in self._pending if p[0] == key][: self.max_batch]
            for item in batch:
                self._pending.remove(item)
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            futures = [f for _, _, f in batch]
            try:
                captioner = self._captioner()
                results = captioner.caption_batch([im for _, im, _ in batch], batch_size=len(batch),
                                                  errors="return", max_pixels=self.max_pixels, **dict(batch[0][0]))
            except Exception as exc:  # process boundary of the worker: the waiting requests get it
                for future in futures:
                    future.set_exception(exc)
                continue
            self.batch_sizes.append(len(batch))
            for future, result in zip(futures, results, strict=True):
                if isinstance(result, str):
                    future.set_result(result)
                else:
                    future.set_exception(result)
