"""Streaming builds from several index folders, and SIGKILL in the middle of index builds."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from core.search import EmbeddingIndex, IndexConfigError
from core.search.storage import MANIFEST_NAME, embeddings_path
from core.search.streaming import build_from_folders

REPO = Path(__file__).resolve().parents[3]


def _vectors(marker: int, n: int = 4000, d: int = 32) -> np.ndarray:
    x = np.random.default_rng(marker).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _part(folder: Path, start: int, n: int, seed: int) -> EmbeddingIndex:
    index = EmbeddingIndex.from_arrays(_vectors(seed, n), list(range(start, start + n)),
                                       paths=[f"/img/{i}.jpg" for i in range(start, start + n)],
                                       captions=[f"picture number {i}" for i in range(start, start + n)],
                                       kind="exact")
    index.save(folder)
    return index


def test_streaming_build_equals_building_from_the_concatenation(tmp_path: Path) -> None:
    a, b = _part(tmp_path / "a", 0, 3000, 1), _part(tmp_path / "b", 3000, 2000, 2)
    out = build_from_folders([tmp_path / "a", tmp_path / "b"], tmp_path / "all", kind="IVF32,Flat",
                             captions={"/img/10.jpg": "a zebra"})
    merged = EmbeddingIndex.load(out, mmap=True)
    assert merged.kind == "IVF32,Flat" and merged.recall_at_10 >= 0.95
    assert merged.image_ids == a.image_ids + b.image_ids
    assert torch.equal(merged.embeddings, torch.cat([a.embeddings, b.embeddings]))
    assert merged.sources[0] == str(tmp_path / "a") and merged.sources[-1] == str(tmp_path / "b")
    assert merged.find_text("zebra", 1)[0].image_id == 10
    assert load_file(str(embeddings_path(out)))["embeddings"].shape == (5000, 32)  # plain safetensors
    whole = EmbeddingIndex.from_arrays(merged.embeddings.numpy(), merged.image_ids, kind="exact")
    q = _vectors(9, 20)
    _, want = whole.search(q, 10)
    _, got = merged.search(q, 10)
    assert np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want, strict=True)]) >= 0.9
    _part(tmp_path / "a2", 0, 10, 3)  # ids 0..9 again
    with pytest.raises(IndexConfigError, match="already in an earlier source"):
        build_from_folders([tmp_path / "a", tmp_path / "a2"], tmp_path / "dup", kind="exact")
    assert not (tmp_path / "dup" / MANIFEST_NAME).exists()  # a failed build commits nothing
    with pytest.raises(IndexConfigError, match="also a source"):
        build_from_folders([tmp_path / "a"], tmp_path / "a")


WRITER = r"""
import sys, numpy as np
from pathlib import Path
from core.search import EmbeddingIndex
from tests.core.search.test_streaming_crash import _vectors
folder, marker = Path(sys.argv[1]), int(sys.argv[2])
while True:
    marker += 1
    kind = ["IVF16,Flat", "HNSW16", "exact"][marker % 3]
    EmbeddingIndex.from_arrays(_vectors(marker), [f"{marker}-{i}" for i in range(4000)], kind=kind).save(folder)
    print(marker, flush=True)
"""


@pytest.mark.timeout(400)
def test_sigkill_in_the_middle_of_a_build_leaves_a_readable_index(tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    EmbeddingIndex.from_arrays(_vectors(0), [f"0-{i}" for i in range(4000)], kind="IVF16,Flat").save(folder)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    rng, last = random.Random(0), 0
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(last)], cwd=REPO,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert proc.stdout is not None
            proc.stdout.readline()  # one complete build, then kill at a random moment of the next
            time.sleep(rng.uniform(0.0, 1.0))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        loaded = EmbeddingIndex.load(folder)  # never refused: the old index or the new one
        marker = int(str(loaded.image_ids[0]).split("-")[0])
        assert marker >= last + 1, "a completed build was lost"
        assert torch.allclose(loaded.embeddings, torch.from_numpy(_vectors(marker)), atol=1e-6)
        top = loaded.find_similar(loaded.embeddings[7], k=1)[0]
        assert top.image_id == f"{marker}-7" and top.score == pytest.approx(1.0, abs=1e-5)
        last = marker
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert MANIFEST_NAME in names
