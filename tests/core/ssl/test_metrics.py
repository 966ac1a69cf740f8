"""Training-health metrics: held-out neighbour precision counted with the project's one P@k."""

from __future__ import annotations

import pytest
import torch

from core.ssl.metrics import embedding_std, neighbour_precision


def test_neighbour_precision_hand_computed() -> None:
    # Four points on a line of angles: 0 and 1 are close, 2 and 3 are close.
    angles = torch.tensor([0.0, 0.1, 1.5, 1.6])
    emb = torch.stack([angles.cos(), angles.sin()], dim=1)
    cats = [[1], [1], [2], []]  # image 3 has no label: it is a neighbour but never a query
    # k=1: 0->1 (shares 1), 1->0 (shares), 2->3 (no category): (1 + 1 + 0) / 3
    assert neighbour_precision(emb, cats, 1) == pytest.approx(2 / 3)
    # k=2: 0 -> {1, 2}: 1/2; 1 -> {0, 2}: 1/2; 2 -> {3, 1}: 0
    assert neighbour_precision(emb, cats, 2) == pytest.approx((0.5 + 0.5 + 0) / 3)
    # k is capped at N - 1 = 3: every query sees all others
    assert neighbour_precision(emb, cats, 10) == pytest.approx((1 / 3 + 1 / 3 + 0) / 3)


def test_neighbour_precision_is_none_without_queries_or_neighbours() -> None:
    emb = torch.randn(3, 4)
    assert neighbour_precision(emb, [[], [], []], 2) is None
    assert neighbour_precision(emb[:1], [[1]], 2) is None


def test_embedding_std_is_near_zero_for_a_collapsed_batch() -> None:
    same = torch.ones(8, 16)
    assert embedding_std(same) == pytest.approx(0.0, abs=1e-6)
    spread = torch.eye(16)
    assert embedding_std(spread) > 0.2
