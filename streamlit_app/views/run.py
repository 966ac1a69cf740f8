"""Training run tab: a saved run's loss curve, per-epoch health metrics and sample retrievals."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core import workflows as wf
from core.settings import AppSettings
from streamlit_app import resources
from streamlit_app.views.common import show_results


def render(settings: AppSettings) -> None:
    if not settings.runs:
        return st.info("No training run configured. Train with `img2text ssl train`, then start the app "  # type: ignore[no-any-return]
                       "with `-- --run DIR` (or set `IMG2TEXT_RUN`).")
    info = wf.read_run(Path(st.selectbox("Run folder", [str(p) for p in settings.runs], key="run-choice")))
    if not info.path.is_dir():
        return st.error(info.problems[0])  # type: ignore[no-any-return]
    for problem in info.problems:
        st.warning(problem)
    s = wf.run_summary(info)
    if s.loss is not None:
        cols = st.columns(4)
        cols[0].metric("epochs", s.epochs)
        cols[1].metric("loss", f"{s.loss:.4f}", None if s.loss_change is None else f"{s.loss_change:+.4f}",
                       delta_color="inverse")
        cols[2].metric("pos_top1", f"{s.pos_top1 or 0:.3f}")
        cols[3].metric(s.precision_label, s.precision)
    if s.settings:
        st.caption(s.settings)
    if info.loss_png is not None:
        st.image(str(info.loss_png), caption="Loss and health metrics", width="content")
    if info.history:
        st.markdown("##### Per-epoch metrics (history.json)")
        st.dataframe([dict(zip(wf.HISTORY_COLUMNS, row, strict=True)) for row in wf.history_rows(info)],
                     hide_index=True, width="stretch", key="run-history")
    if info.weights is None:
        return None
    st.markdown("##### Sample retrievals")
    index = wf.index_for_run(info, settings.indexes, resources.indexes(settings.indexes).get)
    if index is None:
        return st.info("No configured index was built from this run's checkpoint; build one with "  # type: ignore[no-any-return]
                       "`img2text ssl embed` and pass it with `-- --index` to see sample retrievals.")
    if warning := wf.collapse_warning(index):
        st.warning(warning)
    for sample in wf.sample_retrievals(index):
        query_col, results_col = st.columns([1, 4])
        if sample.path.is_file():
            query_col.image(str(sample.path), width="stretch")
        query_col.caption(f"query **{sample.image_id}**")
        with results_col:
            show_results(sample.hits, columns=4)
    return None
