"""int8 serves eagerly at once and swaps the compiled encoder in from a background thread
(:mod:`core.captioning.int8_compile`), on the tiny trained ViT-GPT2."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import torch

import core
from core.captioning.int8_compile import COMPILING, QUANTISING, READING, READY

GREEDY = {"num_beams": 1}


@pytest.fixture(scope="module")
def images(tiny_coco_dir: Path) -> list[Path]:
    return sorted((tiny_coco_dir / "val2017").glob("*.jpg"))[:6]



@pytest.fixture(autouse=True)
def torchao_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about torchao's compiled encoder: the fbgemm kernel (chosen on CPUs without
    int8 dot-product instructions) compiles nothing, so every test here asks for torchao."""
    monkeypatch.setenv("IMG2TEXT_INT8_KERNEL", "torchao")

def test_captions_before_and_after_the_swap_are_equal(tiny_model_dir: Path, images: list[Path]) -> None:
    release, built = threading.Event(), threading.Event()
    stages: list[str] = []

    def blocked_compile(model: Any) -> torch.nn.Module:
        assert release.wait(60), "the test never released the compile"
        # A real torch.compile graph of the int8 encoder; aot_eager runs the same kernels as eager
        # (Inductor's fused kernels differ by ~0.2% in the hidden states: see docs/benchmarks.md).
        encoder = torch.compile(model.encoder, dynamic=True, backend="aot_eager")
        built.set()
        return encoder

    captioner = core.Captioner(str(tiny_model_dir), device="cpu", dtype="int8", progress=stages.append,
                               compile_fn=blocked_compile)
    eager = captioner.model.encoder
    assert stages == [READING, QUANTISING, COMPILING] and captioner.stage == COMPILING
    before = captioner.caption_batch(images, **GREEDY)  # served while the compile is blocked
    beams_before = captioner.caption_batch(images[:2], num_beams=3)
    assert captioner.model.encoder is eager and not built.is_set()
    release.set()
    assert captioner.wait_compiled(300)
    assert stages == [READING, QUANTISING, COMPILING, READY] and captioner.stage == READY
    assert captioner.model.encoder is not eager and getattr(captioner.model.encoder, "_orig_mod", None) is eager
    assert captioner.caption_batch(images, **GREEDY) == before
    assert captioner.caption_batch(images[:2], num_beams=3) == beams_before


def test_a_caption_running_during_the_swap_finishes_on_the_eager_encoder(tiny_model_dir: Path,
                                                                         images: list[Path]) -> None:
    swapped_in = torch.nn.Identity()  # a stand-in: the swap itself is what is tested here
    release = threading.Event()

    def compile_fn(model: Any) -> torch.nn.Module:
        release.wait(60)
        return swapped_in

    captioner = core.Captioner(str(tiny_model_dir), device="cpu", dtype="int8", compile_fn=compile_fn)
    eager = captioner.model.encoder
    seen: list[torch.nn.Module] = []
    want = captioner.caption(images[0], **GREEDY)

    def spying_forward(*args: Any, **kwargs: Any) -> Any:
        release.set()  # the compile finishes while this caption runs ...
        assert not captioner.wait_compiled(0.5)  # ... but cannot swap until the caption is done
        seen.append(captioner.model.encoder)
        return eager.__class__.forward(eager, *args, **kwargs)

    eager.forward = spying_forward  # type: ignore[method-assign]
    assert captioner.caption(images[0], **GREEDY) == want
    assert seen == [eager]
    assert captioner.wait_compiled(30) and captioner.model.encoder is swapped_in


def test_a_compile_failure_keeps_eager_int8_and_is_reported_once(tiny_model_dir: Path, images: list[Path],
                                                               caplog: pytest.LogCaptureFixture) -> None:
    stages: list[str] = []

    def broken(model: Any) -> torch.nn.Module:
        raise RuntimeError("no C compiler")

    captioner = core.Captioner(str(tiny_model_dir), device="cpu", dtype="int8", progress=stages.append,
                               compile_fn=broken)
    eager = captioner.model.encoder
    assert captioner.wait_compiled(30)
    failures = [s for s in stages if "did not compile" in s]
    assert failures == [captioner.stage] and "RuntimeError: no C compiler" in failures[0]
    assert [r.getMessage() for r in caplog.records].count(f"int8: {captioner.stage}") == 1
    assert captioner.model.encoder is eager
    off = core.Captioner(str(tiny_model_dir), device="cpu", dtype="int8", int8_compile="off")
    assert captioner.caption_batch(images, **GREEDY) == off.caption_batch(images, **GREEDY)


def test_cli_int8_prints_its_stages_and_quiet_silences_them(tiny_model_dir: Path, images: list[Path],
                                                            tmp_path: Path) -> None:
    import subprocess
    import sys

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "core.cli", "caption", *map(str, images[:2]), "--model",
                               str(tiny_model_dir), "--device", "cpu", "--dtype", "int8", "--greedy",
                               "--format", "jsonl", "-o", str(tmp_path / "caps.jsonl"), "--overwrite", *extra],
                              capture_output=True, text=True, timeout=600, check=True)

    lines = [line for line in run().stderr.splitlines() if line.startswith("int8 model: ")]
    assert [line.split(": ", 1)[1].rsplit(" (", 1)[0] for line in lines[:3]] == [READING, QUANTISING, COMPILING]
    assert all(line.endswith(" s)") for line in lines)
    assert "int8 model:" not in run("--quiet").stderr


def test_the_cli_exits_at_once_with_its_output_while_a_compile_still_runs(tmp_path: Path) -> None:
    """``img2text`` does not wait for (or crash on) a background compile at exit: the process ends
    with the command's code and everything it printed (os._exit after flushing)."""
    import subprocess
    import sys

    script = ("import sys, threading, time\n"
              "from core.captioning import int8_compile\n"
              "threading.Thread(target=time.sleep, args=(120,), name=int8_compile._THREAD, daemon=False).start()\n"
              "assert int8_compile.compiling_now()\n"
              "sys.argv = ['img2text', 'models', '--json']\n"
              "from core.cli import run\n"
              "run()\n")
    # a normal exit would wait for the (non-daemon) thread's 120 s: the timeout fails that
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith(("]", "}")) and "vit-gpt2" in done.stdout  # the whole listing
