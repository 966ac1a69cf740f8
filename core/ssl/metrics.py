"""Cheap training-health signals and the loss plot.

* ``emb_std``: mean per-dimension std of L2-normalised embeddings; about ``1/sqrt(D)`` when the
  embeddings spread over the sphere, near 0 when they collapse to one point.
* held-out precision@k: fraction of each image's k nearest neighbours (cosine, itself excluded)
  that share at least one COCO category with it; only images with a category are queries.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.datasets import ImageRecord
from core.errors import InvalidImageError
from core.fileio import atomic_write_bytes
from core.images import load_image
from core.ssl.transforms import eval_transform

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@torch.no_grad()
def embedding_std(h: torch.Tensor) -> float:
    """Collapse signal of a batch of embeddings.

    Shape:
        h: (B, D) -> python float.
    """
    if h.shape[0] < 2:
        return float("nan")
    return float(F.normalize(h.float(), dim=1).std(dim=0).mean())


@torch.no_grad()
def neighbour_precision(emb: torch.Tensor, categories: Sequence[Sequence[int]], k: int) -> float | None:
    """Held-out precision@k: mean P@k over the images that have categories; None when undefined.

    Each labelled image is a query; its k nearest other images (cosine) are relevant when they
    share a category with it. The counting is :func:`core.search.metrics.precision_at_k`, the
    project's one P@k; ``k`` is capped at ``N - 1``.

    Shape:
        emb: (N, D) embeddings, row-aligned with ``categories``.
    """
    from core.search.metrics import precision_at_k, relevance_matrix

    n = emb.shape[0]
    k = min(k, n - 1)
    queries = [i for i in range(n) if categories[i]]
    if k < 1 or not queries:
        return None
    z = F.normalize(emb.float(), dim=1)
    sim = z @ z.T
    sim.fill_diagonal_(float("-inf"))  # an image is not its own neighbour
    top = sim.topk(k, dim=1).indices[queries].cpu().numpy()  # (Q, k) neighbour indices, best first
    relevant = relevance_matrix(categories)  # (N, N): shares a category, False on the diagonal
    ranked = np.take_along_axis(relevant[queries], top, axis=1)
    return precision_at_k(ranked.astype(np.float64), k)


class HeldOutEval:
    """Preprocessed held-out images kept in memory so each epoch's check is one forward pass."""

    def __init__(self, records: Sequence[ImageRecord], img_size: int, k: int) -> None:
        tf = eval_transform(img_size)
        tensors, cats = [], []
        for rec in records:
            try:
                tensors.append(tf(load_image(rec.path)))
            except InvalidImageError:
                continue  # a broken held-out image only shrinks the check
            cats.append(list(rec.categories))
        self.images = torch.stack(tensors) if tensors else torch.empty(0)
        self.categories = cats
        self.k = k

    def __len__(self) -> int:
        return len(self.categories)

    @torch.no_grad()
    def __call__(self, encoder: nn.Module, device: torch.device, batch_size: int = 64) -> float | None:
        if len(self) < 2:
            return None
        was_training = encoder.training
        encoder.eval()
        parts = [encoder(self.images[i : i + batch_size].to(device)).float().cpu()
                 for i in range(0, len(self), batch_size)]
        encoder.train(was_training)
        return neighbour_precision(torch.cat(parts), self.categories, self.k)


def history_figure(history: Sequence[dict[str, Any]], chance: float | None = None) -> Figure:
    """The figure :func:`plot_history` saves: loss (left), pos_top1 / precision@k (right).

    Epochs are whole numbers, so both x axes tick at integers only (never 1.25, 1.75).

    Args:
        history: one dict per epoch with ``epoch`` and ``loss``, optionally ``pos_top1``,
            ``precision_at_k`` and ``eval_k``.
        chance: the loss of a random guess, drawn as a dashed line when finite.

    Returns:
        A matplotlib ``Figure`` on an Agg canvas (headless: no pyplot state, no display).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(9, 3.5))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(epochs, [h["loss"] for h in history], marker="o", label="train loss")
    if chance is not None and math.isfinite(chance):
        ax1.axhline(chance, color="grey", linestyle="--", label=f"chance {chance:.2f}")
    ax1.set_ylabel("loss")
    ax2.plot(epochs, [h.get("pos_top1") for h in history], marker="o", label="pos_top1")
    prec = [h.get("precision_at_k") for h in history]
    if any(p is not None for p in prec):
        k = history[-1].get("eval_k", "k")
        ax2.plot(epochs, [p if p is not None else float("nan") for p in prec], marker="s",
                 label=f"held-out precision@{k}")
    ax2.set_ylim(0, 1)
    for ax in (ax1, ax2):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.legend()
    fig.tight_layout()
    return fig


def plot_history(history: Sequence[dict[str, Any]], path: Path, chance: float | None = None) -> None:
    """Write the loss curve (and pos_top1 / precision@k when present) as a PNG, atomically.

    Args:
        history: per-epoch metrics (see :func:`history_figure`).
        path: the PNG to write (replaced atomically).
        chance: the chance-level loss, drawn as a dashed line.
    """
    buf = io.BytesIO()
    history_figure(history, chance).savefig(buf, format="png", dpi=90)
    atomic_write_bytes(path, buf.getvalue())
