"""The "sample retrieval" figure: each query beside its top-k results, scores and captions.

Drawn with matplotlib's object API on an Agg canvas, so it never touches the global pyplot
state or needs a display.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from core.errors import InvalidImageError
from core.images import ImageInput, load_image
from core.search.topk import SearchResult

_THUMB = 160  # px; the figure only needs thumbnails, and small ones keep the PNG small
_CAPTION_WIDTH = 24  # characters per caption line under a tile
_CAPTION_LINES = 3


def _thumbnail(src: ImageInput | None) -> np.ndarray | None:
    if src is None:
        return None
    try:
        img = load_image(src)
    except InvalidImageError:  # a gallery image moved since indexing: show a blank tile
        return None
    img.thumbnail((_THUMB, _THUMB), Image.Resampling.BILINEAR)
    # Centre on a square white tile so every row lines up whatever the aspect ratios.
    tile = Image.new("RGB", (_THUMB, _THUMB), (255, 255, 255))
    tile.paste(img, ((_THUMB - img.width) // 2, (_THUMB - img.height) // 2))
    return np.asarray(tile)


def _caption(text: str) -> str:
    lines = textwrap.wrap(text, _CAPTION_WIDTH)
    if len(lines) > _CAPTION_LINES:
        lines = lines[:_CAPTION_LINES]
        lines[-1] = lines[-1][: _CAPTION_WIDTH - 3] + "..."
    return "\n".join(lines)


def plot_retrieval_grid(
    rows: Sequence[tuple[ImageInput | None, Sequence[SearchResult]]],
    out: str | Path,
    *,
    query_labels: Sequence[str] | None = None,
    title: str | None = None,
    dpi: int = 80,
) -> Path:
    """Save a PNG with one row per query: the query image, then its results in rank order.

    Args:
        rows: ``(query image or None, its results)`` per row.
        out: the PNG path (parent folders are created).
        query_labels: text under each query tile (default ``"query"``).
        title: figure title.
        dpi: output resolution; the default keeps the file small.

    Returns:
        ``out`` as a ``Path``.
    """
    if not rows:
        raise ValueError("nothing to plot: no queries")
    cols = 1 + max(1, max(len(results) for _, results in rows))
    fig = Figure(figsize=(2.2 * cols, 2.9 * len(rows)), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for r, (query, results) in enumerate(rows):
        label = query_labels[r] if query_labels is not None else "query"
        _tile(axes[r][0], _thumbnail(query), f"{label}", query=True)
        for c in range(1, cols):
            if c - 1 < len(results):
                res = results[c - 1]
                first = res.captions[0] if res.captions else ""
                text = f"#{res.rank}  {res.score:.3f}\n{_caption(first)}"
                _tile(axes[r][c], _thumbnail(res.path), text)
            else:
                axes[r][c].axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def plot_retrieval(
    query: ImageInput | None,
    results: Sequence[SearchResult],
    out: str | Path,
    *,
    query_label: str = "query",
    title: str | None = None,
) -> Path:
    """Save a one-row figure of ``query`` and its ``results`` (see :func:`plot_retrieval_grid`)."""
    return plot_retrieval_grid([(query, results)], out, query_labels=[query_label], title=title)


def _tile(ax: Axes, image: np.ndarray | None, text: str, *, query: bool = False) -> None:
    if image is None:
        ax.imshow(np.full((_THUMB, _THUMB, 3), 220, dtype=np.uint8))
        ax.text(0.5, 0.5, "(missing)", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.imshow(image)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(text, fontsize=8)
    if query:
        for spine in ax.spines.values():
            spine.set_edgecolor("tab:red")
            spine.set_linewidth(3)
