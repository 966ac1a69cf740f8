"""Search backends behind ``EmbeddingIndex``: exact top-k and FAISS indexes by factory string.

Every backend ranks by cosine similarity: gallery and query rows are L2-normalised and FAISS
indexes are built with ``METRIC_INNER_PRODUCT``. ``kind`` is ``"exact"``, a FAISS factory string
(``"IVF4096,Flat"``, ``"IVF4096,PQ32"``, ``"HNSW32"``, ``"Flat"``...) or ``"auto"``
(:func:`choose_kind`). Lossy codes (PQ) re-rank ``rerank * k`` candidates with the stored
vectors, which may be memory-mapped; the depth ``rerank`` is tuned with the knob at build time
(:func:`core.search.recall.tune_rerank`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.search.errors import IndexConfigError
from core.search.topk import topk_cosine

EXACT = "exact"
AUTO = "auto"
# Below this many images exact search takes milliseconds (see docs/search.md): no ANN index.
EXACT_MAX_IMAGES = 200_000
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def _faiss() -> Any:
    import faiss  # imported lazily: exact search does not need it

    return faiss


def parse_memory(budget: str | int | float | None) -> int | None:
    """Bytes from ``"4GB"``, ``"512MiB"``, ``"1.5GB"`` or a number of bytes; ``None`` stays ``None``.

    Raises:
        IndexConfigError: not a size.
    """
    if budget is None or isinstance(budget, (int, float)) and not isinstance(budget, bool):
        return None if budget is None else int(budget)
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", str(budget))
    if not match or match.group(2).lower() not in _UNITS:
        raise IndexConfigError(
            f"memory budget {budget!r} is not a size; write e.g. 4GB, 512MB or 2GiB"
        )
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def nlist_for(n: int) -> int:
    """IVF list count: the power of two nearest ``4 * sqrt(n)`` (autofaiss' rule), 16 at least."""
    return int(max(16, 2 ** round(np.log2(4 * np.sqrt(max(n, 1))))))


def choose_kind(n: int, d: int, memory_budget: str | int | None = None) -> str:
    """What ``kind="auto"`` builds, from the gallery size and a memory budget (as autofaiss does).

    * ``n <= EXACT_MAX_IMAGES`` and the vectors fit: ``"exact"``;
    * the raw vectors (+ 10 %) fit the budget (or no budget): ``IVF<nlist>,Flat``;
    * otherwise ``IVF<nlist>,PQ<m>`` with the largest ``m`` (dividing ``d``, 8..64 bytes a vector)
      whose codes and ids (``m + 8`` bytes a vector) fit the budget.

    Raises:
        IndexConfigError: not even 8-byte codes fit the budget.
    """
    budget = parse_memory(memory_budget)
    raw = n * d * 4
    if budget is None or raw * 1.1 <= budget:
        return EXACT if n <= EXACT_MAX_IMAGES else f"IVF{nlist_for(n)},Flat"
    for m in (64, 48, 32, 24, 16, 12, 8):
        if d % m == 0 and m <= d and n * (m + 8) * 1.1 <= budget:
            return f"IVF{nlist_for(n)},PQ{m}"
    raise IndexConfigError(
        f"{n:,} vectors of {d} dimensions do not fit a {budget:,}-byte memory budget even as "
        "8-byte PQ codes; raise --memory-budget"
    )


def train_size(kind: str, n: int) -> int:
    """How many vectors the quantizers train on: 64 per IVF list and 9,984 for 8-bit PQ."""
    match = re.search(r"IVF(\d+)", kind)
    need = 64 * int(match.group(1)) if match else 0
    if "PQ" in kind:
        need = max(need, 39 * 256)
    return min(n, max(need, 10_000))


def default_rerank(kind: str) -> int:
    """Starting re-rank factor: lossy PQ codes re-score ``4 * k`` candidates exactly (deeper when
    tuning needs it); others none."""
    return 4 if "PQ" in kind else 1


def new_faiss_index(kind: str, d: int) -> Any:
    """An untrained FAISS index for ``kind`` over inner product.

    Raises:
        IndexConfigError: FAISS does not understand ``kind``.
    """
    faiss = _faiss()
    try:
        return faiss.index_factory(d, kind, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:  # FAISS reports an unknown factory string this way
        first = str(exc).strip().splitlines()[-1][:200]
        raise IndexConfigError(
            f"index kind {kind!r} is not a FAISS factory string ({first}); use e.g. "
            "'exact', 'auto', 'IVF4096,Flat', 'IVF4096,PQ32' or 'HNSW32'"
        ) from None


def param_name(index: Any) -> str | None:
    """The search-time knob of a FAISS index: ``"nprobe"`` (IVF), ``"efSearch"`` (HNSW) or None."""
    faiss = _faiss()
    if faiss.try_extract_index_ivf(index) is not None:
        return "nprobe"
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    return "efSearch" if hasattr(faiss.downcast_index(inner), "hnsw") else None


def candidates(index: Any, name: str | None, k: int) -> list[int]:
    """Increasing values of the knob to try, from cheap to thorough."""
    if name == "nprobe":
        nlist = int(_faiss().extract_index_ivf(index).nlist)
        return sorted({min(2**i, nlist) for i in range(int(np.log2(nlist)) + 2)})
    if name == "efSearch":
        return [v for v in (16, 32, 64, 128, 256, 512, 1024, 2048, 4096) if v >= k]
    return []


@dataclass
class ExactBackend:
    """Exact cosine top-k over the stored vectors (NumPy BLAS on CPU, torch on other devices)."""

    vectors: torch.Tensor
    kind: str = EXACT

    def search(
        self, queries: np.ndarray, k: int, exclude: list[int | None] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, rows) per query; missing places are ``-inf`` / ``-1``.

        Shape: queries (Q, D); outputs (Q, k).
        """
        hits = topk_cosine(torch.from_numpy(queries), self.vectors, k, exclude)
        return _pad(hits, k)


@dataclass
class FaissBackend:
    """A trained FAISS index whose labels are gallery rows, plus its tuned search setting."""

    index: Any
    kind: str
    vectors: torch.Tensor
    param: str | None = None
    value: int | None = None
    rerank: int = 1

    def set_value(self, value: int | None) -> None:
        """Set the search-time knob (nprobe / efSearch)."""
        if self.param is not None and value is not None:
            _faiss().ParameterSpace().set_index_parameter(self.index, self.param, int(value))
        self.value = value

    def search(
        self, queries: np.ndarray, k: int, exclude: list[int | None] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-``k`` (scores, rows) per query; see :meth:`ExactBackend.search`."""
        extra = 1 if exclude is not None and any(e is not None for e in exclude) else 0
        want = min((k + extra) * self.rerank, len(self.vectors))
        scores, rows = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), want)
        if self.rerank > 1:
            scores = _rescore(self.vectors, queries, rows)
        hits = []
        for q in range(rows.shape[0]):
            skip = exclude[q] if exclude is not None else None
            order = np.argsort(-scores[q], kind="stable")
            hits.append([(int(rows[q, j]), float(scores[q, j])) for j in order
                         if rows[q, j] >= 0 and rows[q, j] != skip][:k])
        return _pad(hits, k)

    def to_bytes(self) -> bytes:
        """The FAISS index serialised (``faiss.serialize_index``)."""
        return bytes(_faiss().serialize_index(self.index))


def read_faiss(path: Path, *, mmap: bool) -> Any:
    """Read a FAISS index file; ``mmap`` maps its codes instead of reading them (IO_FLAG_MMAP)."""
    faiss = _faiss()
    return faiss.read_index(str(path), faiss.IO_FLAG_MMAP if mmap else 0)


def _rescore(vectors: torch.Tensor, queries: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Exact cosine of each candidate row (``-inf`` for FAISS' ``-1`` padding). Shape: (Q, C)."""
    gallery = vectors.numpy() if vectors.device.type == "cpu" else vectors.cpu().numpy()
    out = np.full(rows.shape, -np.inf, dtype=np.float32)
    for q in range(rows.shape[0]):
        valid = rows[q] >= 0
        picked = np.sort(rows[q, valid])  # sorted reads are kinder to a memory map
        scores = gallery[picked] @ queries[q]
        lookup = dict(zip(picked.tolist(), scores.tolist(), strict=True))
        out[q, valid] = [lookup[int(r)] for r in rows[q, valid]]
    return out


def _pad(hits: list[list[tuple[int, float]]], k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = np.full((len(hits), k), -np.inf, dtype=np.float32)
    rows = np.full((len(hits), k), -1, dtype=np.int64)
    for q, row in enumerate(hits):
        for j, (r, s) in enumerate(row[:k]):
            rows[q, j], scores[q, j] = r, s
    return scores, rows
