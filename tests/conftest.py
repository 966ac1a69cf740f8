"""Shared fixtures: Tiny COCO location, generated images, and a tiny captioning model."""

from __future__ import annotations

import os

# Before anything imports huggingface_hub: tests never reach the hub, and an offline hub fails
# at once instead of waiting for a network time-out.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one pytest-xdist worker per core: one intra-op thread each (servers and
    # CLI runs started by the tests inherit it), else torch's spinning thread pools fight.
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

pytest_plugins = ["tests.fixtures.tiny_model", "tests.fixtures.tiny_encoders"]


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
