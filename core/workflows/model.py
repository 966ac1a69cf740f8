"""The captioning model as an app sees it: loading in the background, ready, or failed (remembered).

An app creates one :class:`ModelLoader` at start-up and calls :meth:`ModelLoader.start`, so the
page opens at once while the model loads. A failed load is remembered: every caption request
gets the same message at once, until the user presses Retry or ``retry_after`` seconds pass.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from core.captioning import Captioner, forget_captioner, get_captioner, model_family
from core.captioning.int8_compile import COMPILING, READY, is_final
from core.errors import ConfigError, Img2TextError, ModelUnavailableError

__all__ = ["MAX_LOADED", "PRECISIONS", "PRECISION_HELP", "ModelChoices", "ModelLoader", "ModelState"]

Status = Literal["idle", "loading", "ready", "failed"]


@dataclass(frozen=True)
class ModelState:
    """What the page shows about the model."""

    status: Status  # idle (not started), loading, ready or failed
    message: str  # the model's name when ready; the fix-it text when failed
    attempts: int = 0  # load attempts so far (a failure answered from memory does not add one)
    stage: str = ""  # loading stage (core.captioning.int8_compile: reading weights, ...); "" = not reported
    elapsed: float = 0.0  # seconds since that stage began
    precision: str = ""  # the loader's precision ("int8"); "" = the default

    @property
    def settled(self) -> bool:
        """Nothing more to show: failed, or ready with no stage still running (a bar stops polling)."""
        return self.status == "failed" or (self.status == "ready" and (self.stage == "" or is_final(self.stage)))

    @property
    def text(self) -> str:
        """One line for a status bar (a failure names the attempt, so a Retry shows as a new one).

        e.g. "Loading the captioning model m (int8): quantising to int8, 4 s" or
        "Model ready: m (int8; compiling the encoder in the background, 12 s)".
        """
        if self.status == "loading" and self.stage:
            return f"Loading the captioning model {self.message}: {self.stage}, {self.elapsed:.0f} s"
        if self.status == "ready" and self.precision:
            after = "" if self.stage in ("", READY) else f"; {self.stage}"
            seconds = f", {self.elapsed:.0f} s" if self.stage == COMPILING else ""
            return f"Model ready: {self.message} ({self.precision}{after}{seconds})"
        return {"idle": "Model not loaded yet", "loading": f"Loading the captioning model {self.message}…",
                "ready": f"Model ready: {self.message}",
                "failed": f"The captioning model could not be loaded (attempt {self.attempts})."}[self.status]


class ModelLoader:
    """Thread-safe, background loading of one captioner, with a remembered failure.

    Args:
        model: hub id, ``"id@revision"``, folder, or None (``$IMG2TEXT_MODEL`` / default).
        device: as for :func:`core.get_captioner`.
        retry_after: seconds a failure is answered from memory before the next request loads again.
        load: the loading function (``core.get_captioner``; its cache makes a reload cheap).
        clock: monotonic seconds (tests pass a fake clock).
        dtype: as for :func:`core.get_captioner` (``"int8"``: the opt-in int8 mode); None = auto.
        report: called with the bar's line when a load starts, at each stage and when it ends (a
            server's log); None = quiet.

    ``load`` is called with ``progress=``, a callback taking each loading stage's name; the state
    keeps the stage and when it began (int8 is ready while its encoder compiles in the background).
    """

    def __init__(self, model: str | None, device: str = "auto", *, retry_after: float = 60.0,
                 load: Callable[..., Captioner] = get_captioner,
                 clock: Callable[[], float] = time.monotonic, dtype: str | None = None,
                 report: Callable[[str], None] | None = None) -> None:
        self.model, self.device, self.retry_after, self.dtype = model, device, retry_after, dtype
        self._load, self._clock, self._report = load, clock, report
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._captioner: Captioner | None = None
        self._error: str | None = None
        self._failed_at = 0.0
        self._thread: threading.Thread | None = None
        self._stage, self._stage_at = "", 0.0  # the last stage reported, and when (self._clock)
        self._dropped: Callable[[Captioner], object] | None = None  # drop()'s forget, once dropped
        self.attempts = 0  # load attempts so far (a remembered failure does not add one)

    @property
    def state(self) -> ModelState:
        with self._lock:
            precision = "" if self.dtype in (None, "auto", "float32") else str(self.dtype)
            if self._captioner is not None:
                self._follow_locked(getattr(self._captioner, "stage", READY))
                return ModelState("ready", str(self._captioner.spec), self.attempts, self._stage,
                                  self._clock() - self._stage_at, precision)
            if self._thread is not None:
                return ModelState("loading", (self.model or "") + (f" ({self.dtype})" if self.dtype else ""),
                                  self.attempts, self._stage, self._clock() - self._stage_at)
            if self._error is not None:
                return ModelState("failed", self._error, self.attempts)
            return ModelState("idle", self.model or "")

    def _follow_locked(self, stage: str) -> None:
        if stage != self._stage:
            self._stage, self._stage_at = stage, self._clock()

    def _progress(self, stage: str) -> None:
        """The captioner's stage callback (from the loading thread, or int8's compile thread)."""
        with self._lock:
            self._follow_locked(stage)
            loading = self._thread is not None
        if self._report is not None and not (loading and stage == READY):  # _run reports "ready"
            self._report(self.state.text)

    def start(self) -> None:
        """Begin loading in a background thread, unless loaded, loading, or a failure is remembered."""
        with self._lock:
            self._start_locked()

    def retry(self) -> None:
        """Forget a remembered failure and load again (the Retry button)."""
        with self._lock:
            self._error = None
            self._start_locked()

    def get(self) -> Captioner:
        """The loaded captioner, waiting for a load in progress.

        Raises:
            ModelUnavailableError: the load failed (now, or within ``retry_after`` seconds: then
                at once, without another attempt).
        """
        with self._lock:
            if self._captioner is not None:
                return self._captioner
            self._start_locked()
            done = self._done
        done.wait()
        with self._lock:
            if self._captioner is not None:
                return self._captioner
            raise ModelUnavailableError(self._error or "the captioning model did not load")

    def drop(self, forget: Callable[[Captioner], object]) -> None:
        """This loader is no longer kept: ``forget`` its captioner now, or when a load in progress ends.

        Either way ``forget`` is called once, so a model dropped while it loads does not stay in
        ``core.get_captioner``'s cache (and memory) after its load finishes.
        """
        with self._lock:
            self._dropped = forget
            captioner = self._captioner
        if captioner is not None:
            forget(captioner)

    def _start_locked(self) -> None:
        if self._captioner is not None or self._thread is not None:
            return
        if self._error is not None and self._clock() - self._failed_at < self.retry_after:
            return
        self._error = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._done,), daemon=True,
                                        name="img2text-model-load")
        self.attempts += 1
        self._stage = ""
        self._thread.start()

    def _run(self, done: threading.Event) -> None:
        captioner: Any = None
        error: str | None = None
        if self._report is not None:
            self._report(self.state.text)
        try:
            captioner = self._load(self.model, device=self.device, dtype=self.dtype, progress=self._progress)
        except Img2TextError as exc:
            error = str(exc)
        except Exception as exc:  # thread boundary: an escaped error would leave every get() waiting
            error = f"{type(exc).__name__}: {exc}"
        finally:
            with self._lock:
                self._captioner, self._error = captioner, error
                if captioner is None and error is None:  # a BaseException (e.g. SystemExit) ended the load
                    self._error = "the captioning model load was interrupted; press Retry"
                self._failed_at = self._clock()
                self._thread = None
                forget = self._dropped if captioner is not None else None  # dropped while it loaded
                done.set()
        if forget is not None:
            forget(captioner)
        if self._report is not None:
            self._report(self.state.text)


# The precisions the apps' settings panel offers; float32 is the default everywhere.
PRECISIONS = ("float32", "int8")
PRECISION_HELP = ("int8: faster on a CPU; captions may differ slightly. Its first use loads a second copy "
                  "of the model (seconds) and captions at once; on a CPU with AVX-512 VNNI or AMX a faster "
                  "compiled encoder is then built in the background (the model bar shows it).")


MAX_LOADED = 2  # (model, precision) loaders an app keeps at once; the least recently used goes


class ModelChoices:
    """An app's captioners by (model, precision), shared by every session: the start-up model's
    float32 loads at once, any other choice on first use; at most ``max_loaded`` at once.

    Choosing one more drops the least recently used loader and forgets its captioner from
    ``core.get_captioner``'s cache (``forget``), so memory stays bounded by ``max_loaded`` models.

    Args:
        model, device, report: as for :class:`ModelLoader` (``model``: the default choice).
        make: builds a loader (tests pass their own).
        max_loaded: loaders kept at once (at least 1).
        forget: called with a dropped loader's captioner (``core.captioning.forget_captioner``).
        check: reads a picked model's family before a loader is made for it (raises
            ModelUnavailableError: ``core.captioning.model_family``), so an unreadable choice
            never drops a loaded model.
    """

    def __init__(self, model: str | None, device: str = "auto", *,
                 make: Callable[..., ModelLoader] = ModelLoader, report: Callable[[str], None] | None = None,
                 max_loaded: int = MAX_LOADED, forget: Callable[[Captioner], object] = forget_captioner,
                 check: Callable[[str], object] = model_family) -> None:
        if max_loaded < 1:
            raise ConfigError(f"max_loaded={max_loaded}: keep at least 1 loaded model")
        self.model, self.device, self._make, self._forget, self._check = model, device, make, forget, check
        self.max_loaded = max_loaded
        self._extra = {} if report is None else {"report": report}
        self._lock = threading.Lock()
        self._loaders: OrderedDict[tuple[str | None, str], ModelLoader] = OrderedDict()
        self._loaders[(model, "float32")] = make(model, device, **self._extra)

    def key(self, precision: str = "float32", model: str | None = None) -> tuple[str | None, str]:
        """``(model, precision)`` as the loaders are keyed (None or blank model: the default).

        Raises:
            ConfigError: ``precision`` is not one of :data:`PRECISIONS`.
        """
        if precision not in PRECISIONS:
            raise ConfigError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
        name = model.strip() if isinstance(model, str) else None
        return (name or self.model, precision)

    def keys(self) -> list[tuple[str | None, str]]:
        """The (model, precision) pairs held now, least recently used first."""
        with self._lock:
            return list(self._loaders)

    def loader(self, precision: str = "float32", *, model: str | None = None) -> ModelLoader:
        """The loader of ``(model, precision)`` (created and started in the background on first
        use; the least recently used one is dropped past ``max_loaded``).

        Raises:
            ConfigError: ``precision`` is not one of :data:`PRECISIONS`.
            ModelUnavailableError: a picked model (not the default) whose config cannot be read.
        """
        key = self.key(precision, model)
        with self._lock:
            if key in self._loaders:
                self._loaders.move_to_end(key)
                return self._loaders[key]
        if key[0] != self.model and key[0] is not None:
            self._check(key[0])  # outside the lock: a hub lookup may take a while
        with self._lock:
            if key in self._loaders:  # another session made it meanwhile
                self._loaders.move_to_end(key)
                return self._loaders[key]
            dtype = {} if precision == "float32" else {"dtype": precision}
            made = self._loaders[key] = self._make(key[0], self.device, **dtype, **self._extra)
            dropped = [self._loaders.popitem(last=False)[1] for _ in range(len(self._loaders) - self.max_loaded)]
        made.start()
        for old in dropped:  # a ready one is forgotten now; one still loading when its load ends
            old.drop(self._forget)
        return made
