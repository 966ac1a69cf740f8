"""int8's first use in seconds: serve the eager int8 encoder at once, compile it in the background.

Compiling the int8 encoder (``torch.compile`` for a batch of one and for larger batches) takes
tens of seconds to minutes on a small CPU, while eager int8 already captions: the same int8
weights and the same arithmetic, only the quantise/rescale passes over the encoder's
activations are not fused. So an int8 :class:`~core.captioning.Captioner` is usable as soon as
its weights are quantised; :class:`BackgroundCompile` builds the compiled encoder in a thread of
its own and swaps it in when it is ready:

* the swap is one attribute assignment made under the captioner's own lock, which every caption
  holds while it runs, so a caption running meanwhile finishes on the eager encoder and the next
  one starts on the compiled encoder; no lock is held while compiling;
* a compile failure keeps eager int8 (it still captions), is logged once and reported once
  through the ``progress`` callback, never raised.

Loading reports its stages through ``progress`` (a callable taking the stage's name):
:data:`READING`, :data:`QUANTISING`, :data:`COMPILING` (the captioner is ready meanwhile), then
:data:`READY`, or :func:`compile_failed`'s text.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import torch

READING = "reading weights"
QUANTISING = "quantising to int8"
COMPILING = "compiling the encoder in the background"
READY = "ready"
FAILED_PREFIX = "the encoder did not compile"

Progress = Callable[[str], None]
CompileFn = Callable[[Any], torch.nn.Module]  # the model -> its encoder, compiled and warmed up

_LOG = logging.getLogger(__name__)
_THREAD = "img2text-int8-compile"  # the compile thread's name


def compile_failed(error: BaseException) -> str:
    """The stage text of a failed compile (eager int8 keeps captioning)."""
    return f"{FAILED_PREFIX} ({type(error).__name__}: {error}); int8 runs uncompiled"


def compiling_now() -> bool:
    """Whether a :class:`BackgroundCompile` thread of this process is still building."""
    return any(t.name == _THREAD and t.is_alive() for t in threading.enumerate())


def is_final(stage: str) -> bool:
    """Whether nothing more happens after ``stage`` (ready, or the compile failed)."""
    return stage == READY or stage.startswith(FAILED_PREFIX)


class BackgroundCompile:
    """Build ``compile_fn(model)`` in a daemon thread and swap it in as ``model.encoder``.

    Args:
        model: the quantised ViT-GPT2 model (its eager encoder serves until the swap).
        lock: the captioner's lock (held by every caption; taken only for the swap itself).
        compile_fn: returns the compiled encoder (:func:`core.captioning.quantize.compiled_encoder`).
        progress: called with :data:`READY` or :func:`compile_failed`'s text when done; None = quiet.
    """

    def __init__(self, model: Any, lock: threading.Lock, compile_fn: CompileFn,
                 progress: Progress | None = None) -> None:
        self._model, self._lock, self._compile_fn, self._progress = model, lock, compile_fn, progress
        self._done = threading.Event()
        self.stage = COMPILING  # COMPILING until done, then READY or the failure's text
        self.error: str | None = None  # the failure's text when the compile failed
        self._thread = threading.Thread(target=self._run, daemon=True, name=_THREAD)

    def start(self) -> None:
        """Begin compiling in the background."""
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the compiled encoder is in (or the compile failed); False on timeout."""
        return self._done.wait(timeout)

    def _run(self) -> None:
        try:
            encoder = self._compile_fn(self._model)
        except Exception as exc:  # thread boundary: eager int8 keeps captioning, the failure is shown once
            self.error = self.stage = compile_failed(exc)
            _LOG.warning("int8: %s", self.stage)
        else:
            with self._lock:  # a caption in progress finishes on the eager encoder first
                self._model.encoder = encoder
            self.stage = READY
        finally:
            self._done.set()
        if self._progress is not None:
            self._progress(self.stage)
