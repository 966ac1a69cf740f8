from __future__ import annotations

import numpy as np
import pytest
import torch

from core.search.topk import topk_cosine, validate_k


def _unit(rows: np.ndarray) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.from_numpy(rows).float(), dim=1)


@pytest.mark.parametrize("k", [1, 4, 39, 40, 100])
def test_topk_matches_numpy_argsort_reference(k: int) -> None:
    rng = np.random.default_rng(7)
    gallery = _unit(rng.normal(size=(40, 16)))
    queries = _unit(rng.normal(size=(6, 16)))
    exclude = [None, 3, None, 0, 39, None]
    hits = topk_cosine(queries, gallery, k, exclude)
    scores = queries.double().numpy() @ gallery.double().numpy().T
    for q, row in enumerate(hits):
        order = [int(i) for i in np.argsort(-scores[q], kind="stable") if i != exclude[q]]
        expected = order[:k]
        assert [g for g, _ in row] == expected
        np.testing.assert_allclose([s for _, s in row], scores[q, expected], atol=1e-5)


def test_excluded_row_never_returned_and_k_clipped() -> None:
    gallery = _unit(np.eye(3))
    hits = topk_cosine(gallery, gallery, 10, exclude=[0, 1, 2])
    assert [len(h) for h in hits] == [2, 2, 2]
    assert all(q not in [g for g, _ in h] for q, h in enumerate(hits))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_validate_k_rejects_bad_values(bad: object) -> None:
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        validate_k(bad)  # type: ignore[arg-type]


def test_dimension_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="does not match"):
        topk_cosine(torch.ones(1, 3), torch.ones(2, 4), 1)
