from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.search.metrics import (
    average_precision_at_k,
    mean_average_precision,
    precision_at_k,
    relevance_matrix,
    retrieval_metrics,
)


def test_precision_at_k_hand_computed() -> None:
    rel = [[1, 0, 1, 0, 0], [0, 0, 0, 1, 1]]
    assert precision_at_k(rel, 1) == pytest.approx((1 + 0) / 2)
    assert precision_at_k(rel, 3) == pytest.approx((2 / 3 + 0) / 2)
    assert precision_at_k(rel, 5) == pytest.approx((2 / 5 + 2 / 5) / 2)
    # a list shorter than k: the missing places count as misses
    assert precision_at_k([1, 1], 4) == pytest.approx(0.5)


def test_average_precision_hand_computed() -> None:
    # hits at ranks 1 and 3, R = 2: (1/1 + 2/3) / 2
    assert average_precision_at_k([1, 0, 1, 0, 0], 5) == pytest.approx((1 + 2 / 3) / 2)
    # same list, but 4 relevant items exist in the gallery: divide by min(5, 4) = 4
    assert average_precision_at_k([1, 0, 1, 0, 0], 5, total_relevant=4) == pytest.approx(
        (1 + 2 / 3) / 4
    )
    # R > k: divide by k
    assert average_precision_at_k([0, 1, 1], 3, total_relevant=10) == pytest.approx(
        (1 / 2 + 2 / 3) / 3
    )
    # perfect top-k
    assert average_precision_at_k([1, 1, 0], 2, total_relevant=7) == pytest.approx(1.0)
    assert math.isnan(average_precision_at_k([0, 0, 0], 3))
    with pytest.raises(ValueError, match="total_relevant"):
        average_precision_at_k([1, 1], 2, total_relevant=1)


def test_map_excludes_queries_without_relevant_items() -> None:
    rel = [[1, 0, 1], [0, 0, 0], [0, 1, 0]]
    totals = [2, 0, 1]
    expected = ((1 + 2 / 3) / 2 + (1 / 2) / 1) / 2
    assert mean_average_precision(rel, 3, totals) == pytest.approx(expected)
    assert math.isnan(mean_average_precision([[0, 0]], 2))


def test_relevance_matrix_shares_a_category() -> None:
    rel = relevance_matrix([[1, 2], [2], [3], []])
    assert rel.tolist() == [
        [False, True, False, False],
        [True, False, False, False],
        [False, False, False, False],
        [False, False, False, False],
    ]


def test_retrieval_metrics_hand_made_gallery() -> None:
    # 1-D "embeddings" on a circle; angles chosen so each point's neighbour order is clear.
    angles = np.array([0.0, 0.1, 0.3, 2.0, 2.2])
    emb = torch.tensor(np.stack([np.cos(angles), np.sin(angles)], axis=1))
    cats = [[1], [1], [2], [2], []]
    m = retrieval_metrics(emb, cats, ks=(1, 2), map_k=2)
    # neighbours by angle: 0 -> 1,2 ; 1 -> 0,2 ; 2 -> 1,0 ; 3 -> 4,2 ; 4 -> 3,2
    # relevant: 0<->1 (cat 1), 2<->3 (cat 2); 4 has none.
    # P@1 per query: 1, 1, 0, 0, 0 -> 0.4
    assert m.precision[1] == pytest.approx(0.4)
    # P@2: 0: [1,0] 0.5 ; 1: [1,0] 0.5 ; 2: [0,0] 0 ; 3: [0,1] 0.5 ; 4: 0 -> 1.5/5
    assert m.precision[2] == pytest.approx(0.3)
    # AP@2 (R=1 for queries 0-3): 1, 1, 0, 1/2 ; query 4 excluded
    assert m.mean_ap == pytest.approx((1 + 1 + 0 + 0.5) / 4)
    assert m.n_without_relevant == 1 and m.n_queries == 5
    # chance: R/(N-1) = 1/4 for four queries, 0 for one
    assert m.chance == pytest.approx(4 * 0.25 / 5)


def test_map_definition_differs_from_torchmetrics_and_trec_eval_as_documented() -> None:
    """One ranking, the three definitions by hand: ours / min(k, R), torchmetrics / hits in top k,
    trec_eval / R (see the core.search.metrics docstring and docs/search.md)."""
    ranking = [0, 1, 0, 0, 0, 1, 1]  # relevant at ranks 2, 6, 7; k = 5 sees only rank 2
    k, total_relevant = 5, 10
    top = ranking[:k]
    s = sum(sum(top[: i + 1]) / (i + 1) for i in range(k) if top[i])  # sum of P@i at hits = 0.5
    ours = s / min(k, total_relevant)
    torchmetrics_style = s / sum(top)
    trec_eval_style = s / total_relevant
    assert (ours, torchmetrics_style, trec_eval_style) == pytest.approx((0.1, 0.5, 0.05))
    assert average_precision_at_k(ranking, k, total_relevant) == pytest.approx(ours)
    assert trec_eval_style < ours < torchmetrics_style
    # all three agree when R <= k and every relevant item is in the top k
    assert average_precision_at_k([1, 1, 0, 0, 0], 5, 2) == pytest.approx(1.0)
