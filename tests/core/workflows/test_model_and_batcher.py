"""ModelLoader (background load, remembered failure) and CaptionBatcher (merged model calls)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import core
from core import ModelUnavailableError
from core.workflows import CaptionBatcher, ModelLoader

GREEDY = {"num_beams": 1, "max_new_tokens": 8}


def wait_until(predicate, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_failure_is_remembered_until_retry_or_the_minute_is_up(tmp_path: Path) -> None:
    now = [0.0]
    loader = ModelLoader(str(tmp_path / "no-such-model"), "cpu", clock=lambda: now[0])
    assert loader.state.status == "idle"
    loader.start()
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        loader.get()
    assert loader.state.status == "failed" and "does not exist" in loader.state.message
    for _ in range(5):  # answered from memory: no new attempt
        with pytest.raises(ModelUnavailableError):
            loader.get()
    assert loader.attempts == 1
    assert loader.state.text == "The captioning model could not be loaded (attempt 1)."  # what the page shows
    now[0] = 61.0  # a minute later the next request tries again
    with pytest.raises(ModelUnavailableError):
        loader.get()
    assert loader.attempts == 2
    loader.retry()  # the Retry button tries at once
    wait_until(lambda: loader.state.status != "loading")
    assert loader.attempts == 3 and loader.state.attempts == 3 and "(attempt 3)" in loader.state.text


def test_loads_in_the_background_and_reports_loading_then_ready(tiny_model_dir: Path) -> None:
    release = threading.Event()

    def slow_load(model: str | None, device: str, dtype: str | None, **_: Any) -> core.Captioner:
        release.wait(30)
        return core.get_captioner(model, device=device)

    loader = ModelLoader(str(tiny_model_dir), "cpu", load=slow_load)
    loader.start()
    assert loader.state.status == "loading"  # start() returned while the model loads
    release.set()
    captioner = loader.get()
    assert loader.state.status == "ready" and loader.state.message == str(captioner.spec)
    assert loader.get() is captioner and loader.attempts == 1


def test_batcher_merges_concurrent_requests_and_each_answer_is_right(tiny_model_dir: Path,
                                                                      sample_images: list[Path]) -> None:
    captioner = core.get_captioner(str(tiny_model_dir), device="cpu")
    images = [core.load_image(p) for p in sample_images[:4]] * 2
    want = [captioner.caption(im, **GREEDY) for im in images]
    batcher = CaptionBatcher(lambda: captioner, max_batch=8, window_s=0.2)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda im: batcher.caption(im, **GREEDY), images))
    assert got == want
    assert sum(batcher.batch_sizes) == 8 and max(batcher.batch_sizes) > 1  # merged into fewer calls


def test_batcher_errors_go_to_their_own_request(tiny_model_dir: Path) -> None:
    batcher = CaptionBatcher(lambda: core.get_captioner(str(tiny_model_dir), device="cpu"), max_pixels=100)
    with pytest.raises(core.InvalidImageError, match="over the limit of 100"):
        batcher.caption(Image.new("RGB", (20, 20)), **GREEDY)
    with pytest.raises(ValueError, match="num_beams"):
        batcher.caption(Image.new("RGB", (5, 5)), num_beams=0)
    assert batcher.caption(Image.new("RGB", (8, 8)), **GREEDY)

    def broken() -> core.Captioner:
        raise ModelUnavailableError("no model here")

    with pytest.raises(ModelUnavailableError, match="no model here"):
        CaptionBatcher(broken).caption(Image.new("RGB", (8, 8)))


def test_model_choices_load_int8_on_first_use_only(tiny_model_dir: Path) -> None:
    from core.workflows import PRECISIONS, ModelChoices

    calls: list[tuple[str, str | None]] = []

    def recording_load(model: str | None, device: str, dtype: str | None = None, **_: Any) -> core.Captioner:
        calls.append((device, dtype))
        return core.get_captioner(model, device=device)  # the float32 one stands in: no compile here

    choices = ModelChoices(str(tiny_model_dir), "cpu",
                           make=lambda *a, **k: ModelLoader(*a, load=recording_load, **k))
    assert choices.loader() is choices.loader("float32") and calls == []  # the app starts float32 itself
    int8 = choices.loader("int8")  # first use: created and started in the background
    int8.get()
    assert calls == [("cpu", "int8")] and choices.loader("int8") is int8 and int8.attempts == 1
    release = threading.Event()
    blocked = ModelLoader("m", "cpu", dtype="int8", load=lambda *a, **k: release.wait(30))
    blocked.start()
    assert blocked.state.text == "Loading the captioning model m (int8)…"  # the page says which copy loads
    release.set()
    assert PRECISIONS == ("float32", "int8")
    with pytest.raises(core.ConfigError, match="precision 'fp8'"):
        choices.loader("fp8")


def test_report_gets_the_bar_line_when_a_load_starts_and_ends(tiny_model_dir: Path) -> None:
    lines: list[str] = []
    loader = ModelLoader(str(tiny_model_dir), "cpu", report=lines.append)
    loader.get()
    assert lines == [f"Loading the captioning model {tiny_model_dir}…", f"Model ready: {loader.get().spec}"]


def test_the_state_names_each_loading_stage_and_its_seconds(tiny_model_dir: Path) -> None:
    """Stages come from the captioner's progress callback; int8 is ready while its encoder compiles."""
    now = [100.0]
    steps = {"reading": threading.Event(), "quantising": threading.Event(), "return": threading.Event()}
    compiled = threading.Event()
    reached: list[str] = []

    def load(model: str | None, device: str, dtype: str | None = None, **kwargs: Any) -> core.Captioner:
        def compile_fn(m: Any) -> Any:
            compiled.wait(60)
            return m.encoder

        def progress(stage: str) -> None:
            kwargs["progress"](stage)
            reached.append(stage)
            if stage in ("reading weights", "quantising to int8"):
                steps[stage.split()[0]].wait(60)

        return core.Captioner(model, device=device, dtype=dtype, progress=progress, compile_fn=compile_fn,
                              int8_kernel="torchao")  # the kernel that compiles (fbgemm: nothing to)

    lines: list[str] = []
    loader = ModelLoader(str(tiny_model_dir), "cpu", dtype="int8", load=load, clock=lambda: now[0],
                         report=lines.append)
    loader.start()
    wait_until(lambda: reached == ["reading weights"])
    now[0] = 103.0
    assert loader.state.text == f"Loading the captioning model {tiny_model_dir} (int8): reading weights, 3 s"
    steps["reading"].set()
    wait_until(lambda: reached[-1] == "quantising to int8")
    now[0] = 107.0
    assert loader.state.stage == "quantising to int8" and loader.state.text.endswith("quantising to int8, 4 s")
    steps["quantising"].set()
    captioner = loader.get()
    now[0] = 119.0
    state = loader.state
    assert state.status == "ready" and captioner.stage == "compiling the encoder in the background"
    assert state.text == f"Model ready: {captioner.spec} (int8; compiling the encoder in the background, 12 s)"
    compiled.set()
    assert captioner.wait_compiled(30)
    assert loader.state.text == f"Model ready: {captioner.spec} (int8)"
    assert any("quantising to int8" in line for line in lines)  # the server log gets every stage
    wait_until(lambda: lines[-1] == f"Model ready: {captioner.spec} (int8)")
