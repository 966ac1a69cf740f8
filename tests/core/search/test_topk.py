from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch

from core.search import topk as topk_module
from core.search.topk import topk_cosine, validate_k


def _unit(rows: np.ndarray) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.from_numpy(rows).float(), dim=1)


def _reference(
    queries: torch.Tensor, gallery: torch.Tensor, k: int, exclude: list[int | None] | None
) -> list[list[tuple[int, float]]]:
    """Float64 dot products, sorted by (-score, row) in plain Python, excluded row dropped."""
    q64, g64 = queries.double().tolist(), gallery.double().tolist()
    out = []
    for qi, q in enumerate(q64):
        scored = [(sum(a * b for a, b in zip(q, g, strict=True)), gi) for gi, g in enumerate(g64)]
        skip = None if exclude is None else exclude[qi]
        ranked = sorted((s, gi) for s, gi in scored if gi != skip)
        ranked.sort(key=lambda sg: (-sg[0], sg[1]))
        out.append([(gi, s) for s, gi in ranked[:k]])
    return out


def _assert_exact(hits: list[list[tuple[int, float]]], expected: list[list[tuple[int, float]]]) -> None:
    assert [[g for g, _ in row] for row in hits] == [[g for g, _ in row] for row in expected]
    for row, exp in zip(hits, expected, strict=True):
        np.testing.assert_allclose([s for _, s in row], [s for _, s in exp], atol=1e-5)


CUDA = ["cuda"] if torch.cuda.is_available() else []
PATHS = ["numpy", "torch", *CUDA]  # scoring paths; "cuda" is torch on a CUDA gallery


@pytest.fixture(params=PATHS)
def score_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run a test through each scoring path: NumPy (CPU default), torch on the CPU, torch on CUDA.

    The chosen scorer is also checked to have been called, so a dispatch mistake fails the test.
    """
    calls: list[str] = []
    fn = topk_module._scores_numpy if request.param == "numpy" else topk_module._scores_torch

    def spy(q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        calls.append(request.param)
        return fn(q, g)

    if request.param == "cuda":
        real = topk_module._score_fn
        monkeypatch.setattr(topk_module, "_score_fn", lambda g: spy if real(g) is fn else real(g))
    else:
        monkeypatch.setattr(topk_module, "_score_fn", lambda g: spy)
    yield request.param
    assert calls, "the scorer under test was never called"


def _on(path: str, *tensors: torch.Tensor) -> list[torch.Tensor]:
    return [t.cuda() if path == "cuda" else t for t in tensors]


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


@pytest.mark.parametrize("nq", [1, 2, 7])
@pytest.mark.parametrize("k", [1, 5, 29, 30, 31, 100])
@pytest.mark.parametrize("with_exclude", [False, True])
def test_exact_against_float64_reference(score_path: str, nq: int, k: int, with_exclude: bool) -> None:
    rng = np.random.default_rng(nq * 1000 + k)
    gallery = _unit(rng.normal(size=(30, 12)))
    queries = _unit(rng.normal(size=(nq, 12)))
    exclude: list[int | None] | None = None
    if with_exclude:
        exclude = [[4, None, 0, 29, None, 17, 4][i] for i in range(nq)]
    q, g = _on(score_path, queries, gallery)
    hits = topk_cosine(q, g, k, exclude)
    _assert_exact(hits, _reference(queries, gallery, k, exclude))
    n_out = min(k, 30 - (exclude is not None and exclude[0] is not None))
    assert len(hits[0]) == n_out


@pytest.mark.parametrize("nq", [1, 3])
def test_query_equal_to_a_gallery_row_finds_it_first(score_path: str, nq: int) -> None:
    rng = np.random.default_rng(3)
    gallery = _unit(rng.normal(size=(50, 8)))
    q, g = _on(score_path, gallery[10 : 10 + nq], gallery)
    hits = topk_cosine(q, g, 3)
    assert [row[0][0] for row in hits] == list(range(10, 10 + nq))
    assert all(row[0][1] == pytest.approx(1.0, abs=1e-6) for row in hits)
    hits = topk_cosine(q, g, 3, exclude=list(range(10, 10 + nq)))
    _assert_exact(hits, _reference(gallery[10 : 10 + nq], gallery, 3, list(range(10, 10 + nq))))


@pytest.mark.parametrize("device", ["numpy", *CUDA])  # a CPU gallery, and a CUDA one if present
@pytest.mark.parametrize("nq", [0, 1, 4])
def test_empty_gallery_or_no_queries(device: str, nq: int) -> None:
    q, g = _on(device, torch.ones(nq, 5), torch.ones(0, 5))
    assert topk_cosine(q, g, 3) == [[] for _ in range(nq)]
    assert topk_cosine(q, g, 3, exclude=[None] * nq) == [[] for _ in range(nq)]
    q, g = _on(device, torch.ones(0, 5), torch.ones(4, 5))
    assert topk_cosine(q, g, 3) == []


def test_cpu_gallery_is_scored_with_numpy_other_devices_with_torch() -> None:
    assert topk_module._score_fn(torch.zeros(2, 3)) is topk_module._scores_numpy
    assert topk_module._score_fn(torch.zeros(2, 3, device="meta")) is topk_module._scores_torch


@pytest.mark.parametrize("nq", [1, 5])
def test_numpy_and_torch_scores_agree(nq: int) -> None:
    rng = np.random.default_rng(11)
    gallery = _unit(rng.normal(size=(20, 6)))
    queries = _unit(rng.normal(size=(nq, 6))).double()  # converted to float32 like the torch path
    a = topk_module._scores_numpy(queries, gallery)
    b = topk_module._scores_torch(queries, gallery)
    assert a.shape == b.shape == (nq, 20)
    assert a.dtype == b.dtype == torch.float32
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_numpy_path_accepts_tensors_that_require_grad() -> None:
    gallery = _unit(np.eye(4)).requires_grad_()
    hits = topk_cosine(gallery[:1], gallery, 2)
    assert [g for g, _ in hits[0]][0] == 0


@pytest.mark.parametrize(
    ("max_scores", "blocks"), [(1, [1] * 7), (30, [1] * 7), (61, [2, 2, 2, 1]), (10_000, [7])]
)
def test_query_blocks_give_the_same_answer(
    score_path: str, monkeypatch: pytest.MonkeyPatch, max_scores: int, blocks: list[int]
) -> None:
    """7 queries over a 30-row gallery in blocks of at most ``max_scores // 30`` (exclude per block)."""
    monkeypatch.setattr(topk_module, "_MAX_SCORES", max_scores)
    sizes: list[int] = []
    inner = topk_module._score_fn

    def counting(gallery: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        fn = inner(gallery)

        def scores(q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
            sizes.append(q.shape[0])
            return fn(q, g)

        return scores

    monkeypatch.setattr(topk_module, "_score_fn", counting)
    rng = np.random.default_rng(5)
    gallery = _unit(rng.normal(size=(30, 10)))
    queries = _unit(rng.normal(size=(7, 10)))
    exclude: list[int | None] = [0, None, 2, 29, 4, None, 6]
    q, g = _on(score_path, queries, gallery)
    hits = topk_cosine(q, g, 6, exclude)
    _assert_exact(hits, _reference(queries, gallery, 6, exclude))
    assert sizes == blocks


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
