"""Top-k search at scale: exact NumPy, the project's exact path and each FAISS type (issue #16).

Gallery (the default): a clustered synthetic gallery, a Gaussian mixture. ``CENTRES`` = 4,096
fixed centres drawn from N(0, I_D); each vector is a uniformly chosen centre plus ``SPREAD`` (1.5)
times N(0, I_D) noise, then L2-normalised. Queries are 64 new points of the same mixture (not
gallery rows). A one-scale mixture is either clustered or nearly uniform; 1.5 is the largest
spread tried at which the components still dominate. Measured at 1M x 256, 200 fresh queries,
with a plain FAISS ``IVF4096,Flat`` trained on 163,840 vectors for 10 k-means iterations: spread
1.5 gave recall@10 0.91 at nprobe 1 and 0.95 at nprobe 32; 2.0 gave 0.79 at nprobe 256; 2.5 gave
0.40 (nearly uniform). The project's build (262,144 training vectors, FAISS' 25 iterations)
learns the components better: on this bench's spread 1.5 it reaches 0.95 at nprobe 1 (at spread
1.0 too, where ``HNSW32`` needed efSearch ~2,700). So the gallery is an easy case for IVF and a
hard one for HNSW (tight, far-apart components). Image embeddings have structure of this kind
(classes, near-duplicates) at several scales; uniformly random unit vectors have none and are
the worst case for every ANN index: they are an extra row set on 100,000 vectors (full run only;
at that size building and tuning them takes about a minute).

Per path: build time; peak memory (each index is built in a fresh child process that first loads
the gallery array, then resets its RSS high-water mark through ``/proc/self/clear_refs``: the
figure is what building adds on top of the gallery array, the normalised copy that the index keeps
included); size on disk of the saved index folder; latency of single queries (mean of 16) and of
a batch of 64 (per query), best of three (the exact batched rows: of two); recall@10 against float64 exact search (and the recall
the index measured at build). Sizes: 1,000,000 x 256 (``--quick``: 100,000 x 256).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.common import AreaResult, Row, best_seconds

DIM, K, BATCH = 256, 10, 64
CENTRES, SPREAD = 4096, 1.5  # the clustered gallery's mixture (see the module docstring)
SINGLES = 16  # single queries timed one after another
UNIFORM_N = 100_000  # the uniform extra row set (full run only)
TARGET_RECALL, TARGET_SPEEDUP = 0.95, 50.0  # issue #16: recall@10 >= 0.95 at >= 50x NumPy
REPO = Path(__file__).resolve().parents[1]


def clustered(n: int, d: int = DIM, seed: int = 0) -> np.ndarray:
    """``n`` unit vectors of the Gaussian mixture (the centres are fixed; ``seed`` draws the points).

    Shape: (n, d) float32.
    """
    centres = np.random.default_rng(12345).standard_normal((CENTRES, d), dtype=np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), np.float32)
    for start in range(0, n, 100_000):  # in blocks: no second full-size temporary
        m = min(100_000, n - start)
        x = centres[rng.integers(0, CENTRES, m)] + SPREAD * rng.standard_normal((m, d), dtype=np.float32)
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def uniform(n: int, d: int = DIM, seed: int = 0) -> np.ndarray:
    """``n`` uniformly random unit vectors. Shape: (n, d) float32."""
    x = np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def numpy_topk(queries: np.ndarray, gallery: np.ndarray, k: int) -> np.ndarray:
    """What a user writes without a library: one matmul, argpartition, then sort the k.

    Shape:
        queries: ``(Q, D)``; gallery: ``(N, D)``; output: ``(Q, k)`` row indices, best first.
    """
    scores = queries @ gallery.T
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def exact_topk(queries: np.ndarray, gallery: np.ndarray, k: int, block: int = 131_072) -> np.ndarray:
    """Exact top-``k`` rows in float64, gallery read in blocks (independent of every path timed)."""
    q = queries.astype(np.float64)
    best_s = np.full((len(q), 0), -np.inf)
    best_r = np.zeros((len(q), 0), np.int64)
    for start in range(0, len(gallery), block):
        scores = q @ gallery[start:start + block].astype(np.float64).T
        rows = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        best_s, best_r = np.hstack([best_s, scores]), np.hstack([best_r, rows])
        keep = np.argsort(-best_s, axis=1, kind="stable")[:, :k]
        best_s, best_r = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_r, keep, 1)
    return best_r


def _recall(found: Any, exact: np.ndarray) -> float:
    hits = sum(len(set(np.asarray(f).tolist()) & set(e.tolist())) for f, e in zip(found, exact, strict=True))
    return hits / exact.size


def run(device: torch.device, quick: bool) -> AreaResult:
    from core.search.ann import nlist_for

    n = 100_000 if quick else 1_000_000
    nlist = nlist_for(n)
    kinds = [f"IVF{nlist},Flat", "HNSW32"] if quick else [f"IVF{nlist},Flat", f"IVF{nlist},PQ32", "HNSW32"]
    res = AreaResult("search", {
        "gallery": f"{n:,} x {DIM} float32, clustered (Gaussian mixture, {CENTRES} centres, spread {SPREAD})",
        "queries": f"{BATCH} new points of the mixture", "k": K, "target_recall": TARGET_RECALL,
        "device": "cpu (search runs where the index lives)",
        "extra rows": "none (--quick)" if quick else f"uniform random unit vectors, {UNIFORM_N:,} x {DIM}"})
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        _gallery_rows(res, "", clustered(n), clustered(BATCH, seed=1), kinds, Path(tmp), device)
        if not quick:
            u = nlist_for(UNIFORM_N)
            _gallery_rows(res, "uniform 100k: ", uniform(UNIFORM_N), uniform(BATCH, seed=1),
                          [f"IVF{u},Flat", "HNSW32"], Path(tmp), device)
    from bench.encoders import embedding_rows

    embedding_rows(res, device, quick)  # CLIP / SigLIP / DINOv2 embedding of JPEG files
    return res


def _gallery_rows(res: AreaResult, prefix: str, gallery: np.ndarray, queries: np.ndarray,
                  kinds: list[str], tmp: Path, device: torch.device) -> None:
    """Exact rows in this process, then one child process per index kind."""
    from core.search.topk import topk_cosine

    exact = exact_topk(queries, gallery, K)
    g_t, q_t = torch.from_numpy(gallery), torch.from_numpy(queries)
    single, batch = f"{prefix}numpy single query", f"{prefix}numpy {BATCH} queries"
    sec = best_seconds(lambda: [numpy_topk(queries[i:i + 1], gallery, K) for i in range(SINGLES)], device, repeat=3)
    res.add(Row(single, "reference", sec / SINGLES * 1000, unit="ms", notes="matmul + argpartition"))
    sec = best_seconds(lambda: [topk_cosine(q_t[i:i + 1], g_t, K) for i in range(SINGLES)], device, repeat=3)
    res.add(Row(f"{prefix}topk_cosine single query", "project", sec / SINGLES * 1000, unit="ms",
                notes="exact: NumPy BLAS scores + torch.topk"), vs=single)
    sec = best_seconds(lambda: numpy_topk(queries, gallery, K), device, repeat=2)
    res.add(Row(batch, "reference", sec / BATCH * 1000, unit="ms", notes="per query"))
    out: dict[str, Any] = {}
    sec = best_seconds(lambda: out.update(r=topk_cosine(q_t, g_t, K)), device, repeat=2)
    res.add(Row(f"{prefix}topk_cosine {BATCH} queries", "project", sec / BATCH * 1000, unit="ms",
                notes="per query; exact"), vs=batch)
    res.extra[f"{prefix}exact recall@10 vs float64 (topk_cosine, numpy)"] = (
        f"{_recall([[i for i, _ in row] for row in out['r']], exact):.4f}, "
        f"{_recall(numpy_topk(queries, gallery, K), exact):.4f}")
    res.extra[f"{prefix}memory-bound floor"] = f"{gallery.nbytes / 1e6:.0f} MB read per pass of the gallery"
    for name, array in (("gallery", gallery), ("queries", queries), ("exact", exact)):
        np.save(tmp / f"{name}.npy", array)
    met = []
    for kind in ["exact", *kinds]:
        got = _child(kind, tmp)
        res.extra[f"{prefix}{kind}"] = got["summary"]
        if kind == "exact":
            continue
        knob = f"{got['param']}={got['value']}" + (f", re-rank {got['rerank']}k" if got["rerank"] > 1 else "")
        s = res.add(Row(f"{prefix}{kind} single query", "project", got["single_ms"], unit="ms", notes=knob),
                    vs=single)
        b = res.add(Row(f"{prefix}{kind} {BATCH} queries", "project", got["batch_ms"], unit="ms",
                        notes="per query"), vs=batch)
        if got["recall"] >= TARGET_RECALL and s.ratio is not None and b.ratio is not None:
            verdict = ("meets it" if min(s.ratio, b.ratio) >= TARGET_SPEEDUP else
                       "meets it for single queries" if s.ratio >= TARGET_SPEEDUP else "too slow")
            met.append(f"{kind}: recall {got['recall']:.3f}, x{s.ratio:.3g} single, x{b.ratio:.3g} "
                       f"batched: {verdict}")
    res.extra[f"{prefix}target (recall@10 >= {TARGET_RECALL}, >= {TARGET_SPEEDUP:.0f}x numpy per query)"] = (
        "; ".join(met) if met else "no ANN type reached the recall target")


def _child(kind: str, folder: Path) -> dict[str, Any]:
    """Build and measure ``kind`` in a fresh interpreter (its own memory high-water mark)."""
    code = "from bench.search import child_main; child_main()"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code, kind, str(folder)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=6 * 3600)
    if proc.returncode != 0:
        raise RuntimeError(f"bench child for {kind} failed:\n{proc.stderr[-3000:]}")
    warned = [line for line in proc.stderr.splitlines() if "Warning" in line or "warn" in line]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    got["summary"] = (
        f"build {got['build_s']:.1f} s, peak memory added by the build {got['peak_mb']:.0f} MB "
        f"({got['peak_how']}), on disk {got['disk_mb']:.0f} MB, recall@10 built-in "
        f"{got['builtin']:.3f} / vs float64 exact {got['recall']:.3f}, 1 query {got['single_ms']:.3f} ms, "
        f"per query in {BATCH} {got['batch_ms']:.3f} ms" + (f"; {warned[-1].strip()}" if warned else ""))
    return got


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def child_main() -> None:
    """Child process: build ``sys.argv[1]`` over ``sys.argv[2]/gallery.npy``; print one JSON line."""
    from core.search import EmbeddingIndex

    kind, folder = sys.argv[1], Path(sys.argv[2])
    gallery = np.load(folder / "gallery.npy")
    queries, exact = np.load(folder / "queries.npy"), np.load(folder / "exact.npy")
    ids = list(range(len(gallery)))
    cpu = torch.device("cpu")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the RSS high-water mark
        how = "RSS high-water mark of a child process, reset after loading the gallery"
    except OSError:
        how = "whole child process, gallery included (clear_refs unavailable)"
    before = _status_kb("VmRSS")
    start = time.perf_counter()
    index = EmbeddingIndex.from_arrays(gallery, ids, kind=kind)
    build_s = time.perf_counter() - start
    peak_mb = (_status_kb("VmHWM") - (before if "reset" in how else 0)) / 1024
    out = folder / f"index-{os.getpid()}"
    try:
        index.save(out)
        disk_mb = sum(p.stat().st_size for p in out.iterdir()) / 1e6
    finally:
        shutil.rmtree(out, ignore_errors=True)
    single = best_seconds(lambda: [index.search(queries[i:i + 1], K) for i in range(SINGLES)], cpu, repeat=3)
    batch = best_seconds(lambda: index.search(queries, K), cpu, repeat=3)
    found = index.search(queries, K)[1]
    info = index.ann_info
    print(json.dumps({
        "kind": kind, "build_s": build_s, "peak_mb": peak_mb, "peak_how": how, "disk_mb": disk_mb,
        "single_ms": single / SINGLES * 1000, "batch_ms": batch / BATCH * 1000,
        "recall": _recall(found, exact), "builtin": index.recall_at_10, "param": info.get("param"),
        "value": info.get("value"), "rerank": int(info.get("rerank", 1)),
    }))
