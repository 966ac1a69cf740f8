"""Quiet logs (issue 24): the CLI's stderr holds the project's own lines only, unless --verbose.

Run as users run it, in a fresh interpreter each time: torch's ``_pytree.py:630 ...
KernelPreference is an Enum subclass`` warnings (printed when torchao is imported) and int8's
``No CUDA runtime is found`` come from torch's loggers at import and compile time.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
# A line of torch's log format ("W1207 01:12:06.475000 20950 .../_pytree.py:630] ...") or of the two warnings.
LIBRARY_LINE = re.compile(r"^[DIWEC]\d{4} \d\d:\d\d|_pytree\.py|KernelPreference|No CUDA runtime", re.M)


def library_lines(text: str) -> list[str]:
    """The lines of ``text`` that come from torch's or torchao's loggers."""
    return [line for line in text.splitlines() if LIBRARY_LINE.search(line)]


def _cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "IMG2TEXT_LOG_LEVEL"}
    full.update({"HF_HUB_OFFLINE": "1", **(env or {})})
    return subprocess.run([sys.executable, "-m", "core.cli", *argv], capture_output=True, text=True,
                          env=full, cwd=REPO, timeout=600)


@pytest.fixture(scope="module")
def image(tiny_coco_dir: Path) -> Path:
    return sorted((tiny_coco_dir / "val2017").glob("*.jpg"))[0]


def test_caption_prints_only_its_own_lines_and_verbose_shows_the_libraries(tiny_model_dir: Path, image: Path) -> None:
    args = ["caption", str(image), "--model", str(tiny_model_dir), "--greedy", "--max-new-tokens", "4"]
    quiet = _cli(*args)
    assert quiet.returncode == 0, quiet.stderr
    assert library_lines(quiet.stderr) == [] and quiet.stderr.splitlines() == [
        "img2text: captioned 1 image(s), 0 failed"]
    # The warnings exist in this environment (so the check above can fail): --verbose shows them,
    # and so does a log level in the environment.
    for loud in (_cli(*args, "--verbose"), _cli(*args, env={"IMG2TEXT_LOG_LEVEL": "warning"})):
        assert loud.returncode == 0 and any("KernelPreference" in line for line in library_lines(loud.stderr))
    assert quiet.stdout == loud.stdout  # the same caption either way


@pytest.mark.slow
def test_int8_captioning_is_quiet_too(tiny_model_dir: Path, image: Path) -> None:
    got = _cli("caption", str(image), "--model", str(tiny_model_dir), "--greedy", "--max-new-tokens", "4",
               "--dtype", "int8")
    assert got.returncode == 0, got.stderr
    assert library_lines(got.stderr) == [], got.stderr

