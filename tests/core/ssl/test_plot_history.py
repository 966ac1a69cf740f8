"""The training plot: integer epoch ticks, and the PNG plot_history writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from core.ssl.metrics import history_figure, plot_history


def _history(epochs: int) -> list[dict[str, float | int]]:
    return [{"epoch": e, "loss": 5.0 / e, "pos_top1": e / (epochs + 1), "precision_at_k": 0.1 * e,
             "eval_k": 5} for e in range(1, epochs + 1)]


@pytest.mark.parametrize("epochs", [1, 2, 3, 4, 7])
def test_epoch_ticks_are_integers(epochs: int) -> None:
    # Without an integer locator, 3 epochs tick at 1.00, 1.25, ... 3.00.
    fig = history_figure(_history(epochs), chance=4.2)
    fig.canvas.draw()
    axes = fig.get_axes()
    assert len(axes) == 2
    for ax in axes:
        labels = [t.get_text().replace("\u2212", "-") for t in ax.get_xticklabels() if t.get_text()]
        assert labels, "no x tick labels drawn"
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert all(float(t).is_integer() for t in ticks), ticks
        assert all(label.lstrip("-").isdigit() for label in labels), labels
        assert any(1 <= int(label) <= epochs for label in labels)


def test_plot_history_writes_the_figure(tmp_path: Path) -> None:
    out = tmp_path / "loss.png"
    plot_history(_history(3), out, chance=float("nan"))
    with Image.open(out) as img:
        assert img.format == "PNG"
        assert img.size == (9 * 90, round(3.5 * 90))
