"""NT-Xent and the cross-view loss against slow hand-written loops, plus argument checks."""

from __future__ import annotations

import math

import pytest
import torch

from core.errors import ConfigError
from core.ssl.loss import NTXentLoss, cross_view_loss, nt_xent_loss, positive_top1


def _cos(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def reference_nt_xent(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    views = z1.tolist() + z2.tolist()
    n = len(z1)
    total = 0.0
    for a in range(2 * n):
        positive = a + n if a < n else a - n
        denominator = 0.0
        for k in range(2 * n):
            if k != a:
                denominator += math.exp(_cos(views[a], views[k]) / t)
        total += -math.log(math.exp(_cos(views[a], views[positive]) / t) / denominator)
    return total / (2 * n)


def reference_cross_view(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    a, b = z1.tolist(), z2.tolist()
    total = 0.0
    for i in range(len(a)):
        denominator = sum(math.exp(_cos(a[i], b[j]) / t) for j in range(len(b)))
        total += -math.log(math.exp(_cos(a[i], b[i]) / t) / denominator)
    return total / len(a)


@pytest.mark.parametrize("n", [1, 2, 3, 8])
@pytest.mark.parametrize("t", [0.05, 0.1, 0.5, 1.0])
def test_nt_xent_matches_reference(n: int, t: float) -> None:
    g = torch.Generator().manual_seed(n * 100 + int(t * 100))
    z1 = torch.randn(n, 5, generator=g, dtype=torch.float64)
    z2 = torch.randn(n, 5, generator=g, dtype=torch.float64)
    got = nt_xent_loss(z1, z2, t)
    assert got.dim() == 0
    assert float(got) == pytest.approx(reference_nt_xent(z1, z2, t), rel=1e-9, abs=1e-12)
    assert float(NTXentLoss(t)(z1, z2)) == pytest.approx(float(got), rel=1e-12)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
@pytest.mark.parametrize("t", [0.1, 0.7])
def test_cross_view_matches_reference(n: int, t: float) -> None:
    g = torch.Generator().manual_seed(7 + n)
    z1 = torch.randn(n, 4, generator=g, dtype=torch.float64)
    z2 = torch.randn(n, 4, generator=g, dtype=torch.float64)
    expected = reference_cross_view(z1, z2, t)
    assert float(cross_view_loss(z1, z2, t)) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert float(NTXentLoss(t, variant="cross_view")(z1, z2)) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_single_pair_has_no_negatives_and_zero_loss() -> None:
    z = torch.randn(1, 3, requires_grad=True)
    loss = nt_xent_loss(z, torch.randn(1, 3), 0.1)
    assert loss.item() == 0.0
    loss.backward()
    assert z.grad is not None and torch.all(torch.isfinite(z.grad))


def test_chance_level_for_identical_projections() -> None:
    z = torch.ones(6, 4)
    assert float(nt_xent_loss(z, z, 0.1)) == pytest.approx(math.log(11), rel=1e-5)
    assert float(cross_view_loss(z, z, 0.1)) == pytest.approx(math.log(6), rel=1e-5)


def test_gathered_batches_equal_the_single_process_loss() -> None:
    # Two "processes" of 4 rows each, contrasting local positives against the global batch.
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(8, 6, generator=g, dtype=torch.float64), torch.randn(8, 6, generator=g, dtype=torch.float64)
    full = nt_xent_loss(z1, z2, 0.2)
    parts = [
        nt_xent_loss(z1[r * 4 : r * 4 + 4], z2[r * 4 : r * 4 + 4], 0.2, z1_all=z1, z2_all=z2, offset=r * 4)
        for r in range(2)
    ]
    assert float(sum(parts) / 2) == pytest.approx(float(full), rel=1e-12)
    # The gather hook stands in for an all-gather: it maps rank 1's rows to the global tensor.
    local1, local2 = z1[4:], z2[4:]
    global_of = {id(local1): z1, id(local2): z2}
    module = NTXentLoss(0.2, gather=lambda z: global_of[id(z)], rank=1)
    assert float(module(local1, local2)) == pytest.approx(float(parts[1]), rel=1e-12)


def test_gradients_flow_to_both_views() -> None:
    z1 = torch.randn(4, 3, requires_grad=True)
    z2 = torch.randn(4, 3, requires_grad=True)
    nt_xent_loss(z1, z2).backward()
    assert z1.grad is not None and z2.grad is not None
    assert z1.grad.abs().sum() > 0 and z2.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("z1", "z2", "match"),
    [
        (torch.randn(3, 4), torch.randn(2, 4), "same shape"),
        (torch.randn(3), torch.randn(3), "2-D"),
        (torch.randn(2, 3, 4), torch.randn(2, 3, 4), "2-D"),
        (torch.randn(0, 4), torch.randn(0, 4), "N >= 1"),
    ],
)
def test_shape_validation(z1: torch.Tensor, z2: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        nt_xent_loss(z1, z2)
    with pytest.raises(ValueError, match=match):
        cross_view_loss(z1, z2)


def test_argument_validation() -> None:
    z = torch.randn(2, 3)
    for bad in (0.0, -0.1, float("nan")):
        with pytest.raises(ConfigError, match="temperature"):  # a setting: the project's error
            nt_xent_loss(z, z, bad)
        with pytest.raises(ConfigError, match="temperature"):
            NTXentLoss(bad)
    with pytest.raises(ConfigError, match="variant"):
        NTXentLoss(0.1, variant="infonce")
    with pytest.raises(ValueError, match="both"):
        nt_xent_loss(z, z, z1_all=z)
    with pytest.raises(ValueError, match="offset"):
        nt_xent_loss(z, z, z1_all=z, z2_all=z, offset=1)


def test_positive_top1() -> None:
    z1 = torch.eye(3)
    assert positive_top1(z1, z1.clone()) == 1.0
    assert positive_top1(z1, z1.roll(1, dims=0)) == 0.0
