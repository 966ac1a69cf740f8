"""Training run tab: a saved run's loss curve, per-epoch health metrics and sample retrievals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from core.ssl.runs import read_run
from streamlit_app import resources
from streamlit_app.config import AppSettings
from streamlit_app.views.common import show_results

COLUMNS = ("epoch", "loss", "pos_top1", "emb_std", "precision_at_k", "seconds")


def _matching_index(settings: AppSettings, weights: Path) -> Any:
    """A configured index built from exactly these weights (same sha256), or None."""
    digest = resources.weights_sha256(str(weights), weights.stat().st_mtime)
    for path in settings.indexes:
        try:
            index = resources.index(str(path))
        except Exception:
            continue
        if index.checkpoint.sha256 == digest:
            return index
    return None


def render(settings: AppSettings) -> None:
    if not settings.runs:
        st.info("No training run configured. Train with `img2text ssl train`, then start the app "
                "with `-- --run DIR` (or set `IMG2TEXT_RUN`).")
        return
    choice = Path(st.selectbox("Run folder", [str(p) for p in settings.runs], key="run-choice"))
    info = read_run(choice)
    if not choice.is_dir():
        st.error(info.problems[0])
        return
    for problem in info.problems:
        st.warning(problem)
    history, config = info.history, info.config
    if history:
        last, first = history[-1], history[0]
        cols = st.columns(4)
        cols[0].metric("epochs", last.get("epoch"))
        cols[1].metric("loss", f"{last.get('loss', float('nan')):.4f}",
                       f"{last.get('loss', 0) - first.get('loss', 0):+.4f}", delta_color="inverse")
        cols[2].metric("pos_top1", f"{last.get('pos_top1', 0):.3f}")
        prec = last.get("precision_at_k")
        cols[3].metric(f"held-out P@{last.get('eval_k', 'k')}", "-" if prec is None else f"{prec:.3f}")
    if isinstance(config.get("ssl_config"), dict):
        cfg = config["ssl_config"]
        st.caption(f"backbone {cfg.get('backbone')}, {cfg.get('img_size')} px, batch {cfg.get('batch_size')}, "
                   f"temperature {cfg.get('temperature')}, epochs {config.get('epoch')}/{cfg.get('num_epochs')}")
    if info.loss_png is not None:
        st.image(str(info.loss_png), caption="Loss and health metrics", width="content")
    if history:
        st.markdown("##### Per-epoch metrics (history.json)")
        st.dataframe([{c: h.get(c) for c in COLUMNS} for h in history if isinstance(h, dict)],
                     hide_index=True, width="stretch", key="run-history")
    weights = info.weights
    if weights is None:
        return
    st.markdown("##### Sample retrievals")
    index = _matching_index(settings, weights)
    if index is None:
        st.info("No configured index was built from this run's checkpoint; build one with "
                "`img2text ssl embed` and pass it with `--index` to see sample retrievals.")
        return
    for image_id in index.image_ids[:3]:
        row = index.row_of_id(image_id)
        query_col, results_col = st.columns([1, 4])
        with query_col:
            if Path(index.paths[row]).is_file():
                st.image(str(index.paths[row]), width="stretch")
            st.caption(f"query **{image_id}**")
        with results_col:
            show_results(index.find_similar(image_id, k=4), columns=4)
