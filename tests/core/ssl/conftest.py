"""Fixtures of the SSL tests; the generated data sets come from tests.fixtures.datasets."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.datasets import (  # noqa: F401  (re-exported for the SSL tests)
    build_notebook,
    build_tiny_coco,
    captions_json,
    coco_json,
    make_folder,
    make_image,
)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    make_folder(tmp_path / "imgs", 12)
    return tmp_path / "imgs"


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """The tensors here are tiny: one intra-op thread avoids spin-waiting on a shared 2-core box."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
