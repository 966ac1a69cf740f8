"""Shared by the reliability tests: the hostile corpus on disk, a CPU captioner, subprocess helpers.

App tests need gradio / streamlit / chromium: they skip with the reason when those are missing,
except in CI (``$CI`` set), where a missing piece is a failure.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.support import CHROMIUM, CHROMIUM_ARGS, wait_http  # noqa: F401 (re-exported)
from tests.reliability.corpus import write_corpus

REPO = Path(__file__).resolve().parents[2]


def skip_or_fail(reason: str) -> None:
    """Skip outside CI; in CI a missing dependency must not turn into a silent pass."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def require(module: str) -> object:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        skip_or_fail(f"{module} is not importable ({exc}); install the project's extras")
        raise  # unreachable


def require_chromium() -> Path:
    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} not found (apt-get install -y chromium)")
    return CHROMIUM


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False", "TOKENIZERS_PARALLELISM": "false",
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    env.update(extra)
    return env


def cli(*args: str, timeout: float = 300, **popen: object) -> subprocess.CompletedProcess[str]:
    """``img2text ARGS`` in a fresh process (the way users run it)."""
    return subprocess.run([sys.executable, "-m", "core.cli", *args], cwd=REPO, env=child_env(),
                          capture_output=True, text=True, timeout=timeout, **popen)  # type: ignore[call-overload]


def cli_popen(*args: str, **popen: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "core.cli", *args], cwd=REPO, env=child_env(),
                            text=True, **popen)  # type: ignore[call-overload]


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL one process we started, and reap it."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def start_server(cmd: list[str], url: str, **env: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(cmd, cwd=REPO, env=child_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    wait_http(url, proc, timeout=180.0)
    return proc


def stop_server(proc: subprocess.Popen) -> str:
    """Stop a server we started; returns its output."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            kill(proc)
    return proc.stdout.read() if proc.stdout else ""


def vm_hwm_mb(pid: int) -> float:
    """Peak resident memory of a live process (``VmHWM``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hostile corpus written to one folder (names keep their lying extensions)."""
    folder = tmp_path_factory.mktemp("hostile-corpus")
    write_corpus(folder)
    return folder


@pytest.fixture(scope="session")
def captioner(tiny_model_dir: Path) -> Iterator[object]:
    import core

    yield core.Captioner(str(tiny_model_dir), device="cpu")
