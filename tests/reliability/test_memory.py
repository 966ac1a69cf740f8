"""Captioning a large folder streams: the CLI's peak RSS does not grow with the number of images."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.conftest import REPO, child_env
from tests.reliability.datagen import make_images

pytestmark = pytest.mark.slow

SMALL, LARGE = 500, 3000
MAX_GROWTH_MB = 60

# A wrapper whose only child is the CLI: RUSAGE_CHILDREN's ru_maxrss is then exactly its peak RSS.
PEAK_OF_CHILD = r"""
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode
print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def caption_peak_mb(folder: Path, out: Path, model: Path) -> float:
    cmd = [sys.executable, "-c", PEAK_OF_CHILD, sys.executable, "-m", "core.cli", "caption", str(folder),
           "--model", str(model), "--device", "cpu", "--greedy", "--max-new-tokens", "4",
           "--batch-size", "32", "--format", "jsonl", "-o", str(out), "--quiet"]
    proc = subprocess.run(cmd, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=500)
    code, peak_kb = proc.stdout.split()
    assert code == "0", proc.stderr[-2000:]
    return int(peak_kb) / 1024


@pytest.mark.timeout(600)
def test_peak_rss_is_flat_from_500_to_3000_images(tiny_model_dir: Path, tmp_path: Path) -> None:
    small, large = tmp_path / "small", tmp_path / "large"
    make_images(small, SMALL, size=16)
    make_images(large, LARGE, size=16)
    peak_small = caption_peak_mb(small, tmp_path / "small.jsonl", tiny_model_dir)
    peak_large = caption_peak_mb(large, tmp_path / "large.jsonl", tiny_model_dir)
    assert len((tmp_path / "large.jsonl").read_text().splitlines()) == LARGE
    growth = peak_large - peak_small
    print(f"\npeak RSS: {SMALL} images {peak_small:.0f} MB, {LARGE} images {peak_large:.0f} MB "
          f"(growth {growth:+.1f} MB)")
    assert growth < MAX_GROWTH_MB, f"peak RSS grew by {growth:.0f} MB from {SMALL} to {LARGE} images"
