"""Shared fixtures: Tiny COCO location, generated images, and a tiny captioning model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures.tiny_model"]


@pytest.fixture(scope="session")
def tiny_coco_dir() -> Path:
    """Tiny COCO from ``$TINY_COCO_DIR``; a hard failure in CI, a skip elsewhere."""
    raw = os.environ.get("TINY_COCO_DIR")
    path = Path(raw) if raw else None
    if path is None or not (path / "annotations").is_dir():
        msg = f"TINY_COCO_DIR is not set to a Tiny COCO folder (got {raw!r})"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def test_output_dir() -> Path:
    """Where tests leave artefacts worth looking at (screenshots, plots)."""
    out = Path(__file__).resolve().parent.parent / "test-output"
    out.mkdir(exist_ok=True)
    return out
