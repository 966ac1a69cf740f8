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
from matplotlib.text import Text
from PIL import Image

from core.errors import InvalidImageError
from core.fileio import atomic_write
from core.images import ImageInput, load_image
from core.search.result_images import result_image
from core.search.topk import SearchResult

_THUMB = 160  # px; the figure only needs thumbnails, and small ones keep the PNG small
_CAPTION_WIDTH = 24  # characters per caption line under a tile
_CAPTION_LINES = 3  # caption lines under a result tile (a query label gets one more)
_CELL_IN = 2.2  # inches: width of one column
_TILE_IN = 2.0  # inches: the square thumbnail inside a cell
_TEXT_IN = 0.75  # inches under a tile: 4 lines of 8 pt text (1.2 line spacing) and slack
_PAD_IN = 0.15  # inches between rows and at the figure's edges
_TITLE_IN = 0.6  # inches above the first row when there is a title (two lines of 11 pt)


def _thumbnail(src: ImageInput | SearchResult | None) -> np.ndarray | None:
    if src is None:
        return None
    if isinstance(src, SearchResult):  # its file, or its member of a tar shard
        img = result_image(src)
    else:
        try:
            img = load_image(src)
        except InvalidImageError:
            img = None
    if img is None:  # a gallery image moved since indexing: show a blank tile
        return None
    img.thumbnail((_THUMB, _THUMB), Image.Resampling.BILINEAR)
    # Centre on a square white tile so every row lines up whatever the aspect ratios.
    tile = Image.new("RGB", (_THUMB, _THUMB), (255, 255, 255))
    tile.paste(img, ((_THUMB - img.width) // 2, (_THUMB - img.height) // 2))
    return np.asarray(tile)


def _caption(text: str, width: int = _CAPTION_WIDTH, lines: int = _CAPTION_LINES) -> str:
    """``text`` wrapped to ``width`` characters, at most ``lines`` lines (the last ends in "...")."""
    wrapped = textwrap.wrap(text, width) or [""]
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = wrapped[-1][: max(1, width - 3)].rstrip() + "..."
    return "\n".join(wrapped)


def _fit_text(artist: Text, header: str, body: str, max_px: float, lines: int) -> None:
    """Set ``header`` + ``body`` (wrapped) on ``artist``, narrowing the wrap until it fits ``max_px``.

    Character counts alone cannot bound the width (a line of "W" is twice one of "i"), so the
    drawn extent is measured and the wrap width lowered until the widest line fits the cell.
    """
    renderer = artist.get_figure().canvas.get_renderer()  # type: ignore[union-attr]
    for width in range(_CAPTION_WIDTH, 3, -2):
        text = _caption(body, width, lines) if body else ""
        artist.set_text(f"{header}\n{text}" if header and text else header or text)
        if artist.get_window_extent(renderer).width <= max_px:
            return


def retrieval_grid_figure(
    rows: Sequence[tuple[ImageInput | None, Sequence[SearchResult]]],
    *,
    query_labels: Sequence[str] | None = None,
    title: str | None = None,
    dpi: int = 80,
) -> Figure:
    """The figure :func:`plot_retrieval_grid` saves (laid out by hand, every text inside it).

    Each cell is a square thumbnail above a text box of ``1 + _CAPTION_LINES`` lines (rank and
    score, then the first caption wrapped to the cell width and cut with "..."), so no caption,
    label or title can run past the figure's edges whatever its length.

    Args:
        rows: ``(query image or None, its results)`` per row.
        query_labels: text under each query tile (default ``"query"``).
        title: figure title (wrapped to the figure width, at most two lines).
        dpi: resolution the text is fitted at (use the same when saving).

    Returns:
        A matplotlib ``Figure`` on an Agg canvas.

    Raises:
        ValueError: ``rows`` is empty.
    """
    if not rows:
        raise ValueError("nothing to plot: no queries")
    cols = 1 + max(1, max(len(results) for _, results in rows))
    top = _TITLE_IN if title else _PAD_IN
    row_h = _TILE_IN + _TEXT_IN + _PAD_IN
    width, height = cols * _CELL_IN, top + len(rows) * row_h
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    text_px = (_CELL_IN - _PAD_IN) * dpi
    for r, (query, results) in enumerate(rows):
        y_tile = height - top - r * row_h - _TILE_IN  # bottom of this row's thumbnails, inches
        for c in range(cols):
            if c > 0 and c - 1 >= len(results):
                continue
            x = c * _CELL_IN + (_CELL_IN - _TILE_IN) / 2
            ax = fig.add_axes((x / width, y_tile / height, _TILE_IN / width, _TILE_IN / height))
            label = fig.text((c + 0.5) * _CELL_IN / width, (y_tile - 0.04) / height, "",
                             ha="center", va="top", fontsize=8)
            if c == 0:
                _tile(ax, _thumbnail(query), query=True)
                text = query_labels[r] if query_labels is not None else "query"
                _fit_text(label, "", text, text_px, _CAPTION_LINES + 1)
            else:
                res = results[c - 1]
                _tile(ax, _thumbnail(res))
                first = res.captions[0] if res.captions else ""
                _fit_text(label, f"#{res.rank}  {res.score:.3f}", first, text_px, _CAPTION_LINES)
    if title:
        head = fig.text(0.5, 1 - 0.08 / height, "", ha="center", va="top", fontsize=11)
        _fit_text(head, "", title, width * dpi - _PAD_IN * dpi, 2)
    return fig


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

    Raises:
        ValueError: ``rows`` is empty.
    """
    fig = retrieval_grid_figure(rows, query_labels=query_labels, title=title, dpi=dpi)
    path = Path(out)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))  # never a torn PNG
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


def _tile(ax: Axes, image: np.ndarray | None, *, query: bool = False) -> None:
    if image is None:
        ax.imshow(np.full((_THUMB, _THUMB, 3), 220, dtype=np.uint8))
        ax.text(0.5, 0.5, "(missing)", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.imshow(image)
    ax.set_xticks([])
    ax.set_yticks([])
    if query:
        for spine in ax.spines.values():
            spine.set_edgecolor("tab:red")
            spine.set_linewidth(3)
