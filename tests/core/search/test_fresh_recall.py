"""Issue 23 item 9: a user who asks for recall@10 0.95 gets at least 0.95 on new images.

The knob is tuned on one held-out set and confirmed on another (core/search/recall.py). Before,
the recorded recall was the tuning set's, optimistic by selection: on this 30,000 x 32 clustered
gallery HNSW32 tuned for 0.95 recorded 0.950 and gave 0.947 on fresh queries.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.search import EmbeddingIndex
from core.search.recall import recall
from tests.core.search.ann_data import clustered, exact_top

N, D, FRESH = 30_000, 32, 1_000

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gallery() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = clustered(N, D, seed=0)
    queries = clustered(FRESH, D, seed=777)  # new points from the same distribution
    return x, queries, exact_top(x, queries, 10)


@pytest.mark.timeout(900)
@pytest.mark.parametrize(("kind", "target"), [("HNSW32", 0.95), ("IVF64,Flat", 0.95), ("IVF64,PQ8x4fs", 0.9)])
def test_fresh_query_recall_reaches_the_target(gallery, kind: str, target: float) -> None:  # type: ignore[no-untyped-def]
    x, queries, truth = gallery
    index = EmbeddingIndex.from_arrays(x, list(range(N)), kind=kind, target_recall=target)
    fresh = recall(index.search(queries, 10)[1], truth)
    info = index.ann_info
    print(f"{kind}: tuning {info['tuning_recall_at_10']:.3f}, confirmed (recorded) {index.recall_at_10:.3f}, "
          f"fresh {fresh:.3f} at {info['param']}={info['value']}, re-rank {info['rerank']}")
    assert info["reached"] and index.recall_at_10 >= target
    assert info["confirm_queries"] == info["tuning_queries"] == 500
    assert fresh >= target, (kind, fresh, info)
    assert abs(fresh - index.recall_at_10) <= 0.02  # the recorded figure is what new images get
