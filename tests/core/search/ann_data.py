"""A clustered synthetic gallery (100,000 x 128) and its FAISS indexes, built once per session."""

from __future__ import annotations

import numpy as np

N, D, CLUSTERS = 100_000, 128, 1_000
IVF_KIND = "IVF256,Flat"  # a small nlist keeps training fast; nprobe still has to be tuned
HNSW_KIND = "HNSW32"


def clustered(n: int = N, d: int = D, seed: int = 0) -> np.ndarray:
    """Unit rows around ``CLUSTERS`` fixed random centres: neighbours are near, clusters overlap.

    ``seed`` draws the points; the centres are always the same, so another seed gives new points
    from the same distribution.
    """
    centres = np.random.default_rng(12345).standard_normal((CLUSTERS, d)).astype(np.float32)
    rng = np.random.default_rng(seed)
    x = centres[rng.integers(0, CLUSTERS, n)] + 0.9 * rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def fresh_queries(gallery: np.ndarray, q: int = 300, seed: int = 1) -> np.ndarray:
    """New points from the gallery's distribution (not gallery rows), for honest recall checks."""
    return clustered(q, gallery.shape[1], seed=1000 + seed)


def exact_top(gallery: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k rows in float64, independent of the project's code. Shape: (Q, k)."""
    scores = queries.astype(np.float64) @ gallery.astype(np.float64).T
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]
