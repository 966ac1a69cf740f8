from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image

from core.search import EmbeddingIndex, SearchResult
from core.search.evaluate import (
    MethodScores,
    RetrievalTable,
    evaluate_encoders,
    raw_pixel_embeddings,
)
from core.search.plot import plot_retrieval, plot_retrieval_grid, retrieval_grid_figure
from tests.core.search.helpers import FakeEncoder


def test_single_and_multi_row_figures(
    encoder: FakeEncoder, gallery: list[Path], tmp_path: Path
) -> None:
    index = EmbeddingIndex.build(encoder, gallery)
    results = index.find_similar_batch(["img0", "img1", "img2"], k=3)
    one = plot_retrieval(gallery[0], results[0], tmp_path / "one.png", title="sample")
    with Image.open(one) as img:
        single_size = img.size
    rows = [(index.paths[i], results[i]) for i in range(3)]
    grid = plot_retrieval_grid(rows, tmp_path / "sub" / "grid.png", query_labels=["a", "b", "c"])
    with Image.open(grid) as img:
        assert img.format == "PNG"
        assert img.size[1] > 2 * single_size[1]  # three rows
    # a gallery image that moved away is drawn as a blank tile, not a crash
    gone = SearchResult(1, "x", tmp_path / "gone.png", 0.5, ["a caption"], [])
    assert plot_retrieval(None, [gone], tmp_path / "gone_plot.png").is_file()
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_retrieval_grid([], tmp_path / "empty.png")


def test_raw_pixel_baseline_is_centred_and_unit_norm(gallery: list[Path]) -> None:
    emb = raw_pixel_embeddings(gallery, size=4)
    assert emb.shape == (len(gallery), 48)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(len(gallery)))
    # duplicates stay identical: score 1 with each other
    assert float(emb[0] @ emb[-1]) == pytest.approx(1.0, abs=1e-5)


class _Rec:
    def __init__(self, path: Path, cats: list[int]) -> None:
        self.path, self.categories = path, cats


def test_evaluate_encoders_rows_and_shared_chance(
    encoder: FakeEncoder, gallery: list[Path], tmp_path: Path
) -> None:
    # img0 and its duplicate share category 1; everything else is alone in its category.
    cats = [[1], [2], [3], [4], [5], [6], [1]]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"junk")
    records = [_Rec(p, c) for p, c in zip(gallery, cats, strict=True)] + [_Rec(bad, [1])]
    rows, n, n_without, skipped = evaluate_encoders([("tiny", encoder)], records, k=2, pixel_size=4)
    assert [r.method for r in rows] == ["tiny", "raw pixels 4x4"]
    assert n == 7 and len(skipped) == 1 and "bad.png" in skipped[0]
    assert n_without == 5  # only img0 and its duplicate have a relevant image
    for r in rows:  # both methods find the exact duplicate first
        assert r.p_at_1 == pytest.approx(2 / 7)
        assert r.map_at_k == pytest.approx(1.0)
        assert r.chance == pytest.approx((2 * 1 / 6) / 7)


def test_table_text_mentions_everything() -> None:
    table = RetrievalTable(
        k=5,
        split="val2017",
        data_dir="d",
        checkpoint="c",
        n_images=50,
        n_without_relevant=2,
        rows=[MethodScores("trained (conv)", 0.5, 0.4, 0.3, 0.25)],
        notes=["hello"],
    )
    text = table.format_text()
    assert "P@5" in text and "mAP@5" in text and "0.500" in text and "2 queries" in text
    assert "note: hello" in text
    assert np.isclose(table.to_dict()["rows"][0]["chance"], 0.25)


def _texts_outside(fig: Figure) -> list[str]:
    """The visible, non-empty text artists whose drawn extent leaves the figure."""
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    box = fig.bbox
    outside = []
    for text in fig.findobj(Text):
        if not text.get_visible() or not text.get_text():
            continue
        ext = text.get_window_extent(renderer)
        if ext.x0 < box.x0 or ext.y0 < box.y0 or ext.x1 > box.x1 or ext.y1 > box.y1:
            outside.append(text.get_text())
    return outside


def test_long_captions_labels_and_title_stay_inside_the_figure(
    gallery: list[Path], tmp_path: Path
) -> None:
    long = "a man riding a very long skateboard down an extraordinarily steep hill " * 6
    wide = "W" * 300  # no spaces and the widest glyph: a character count alone cannot bound it
    results = [SearchResult(i + 1, i, gallery[i], 0.5, [c], []) for i, c in enumerate([long, wide, ""])]
    rows = [(gallery[0], results), (gallery[1], results[:1]), (None, results[1:2])]
    labels = ["id 123 " + "x" * 120, "short", wide]
    fig = retrieval_grid_figure(rows, query_labels=labels, title="sample retrievals " * 20)
    texts = [t.get_text() for t in fig.findobj(Text) if t.get_text()]
    assert any(t.startswith("#1  0.500\na man riding") and t.endswith("...") for t in texts)
    assert all(t.count("\n") <= 3 for t in texts)  # header + at most three caption lines
    assert _texts_outside(fig) == []
    # the saved PNG is that figure: same size in pixels
    out = plot_retrieval_grid(rows, tmp_path / "long.png", query_labels=labels, title="t " * 200)
    with Image.open(out) as img:
        assert img.size == (round(fig.bbox.width), round(fig.bbox.height))
