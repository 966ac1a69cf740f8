"""Batch tab: many uploads -> a table of thumbnail, file, caption, error; CSV, JSONL and sidecar-zip downloads."""

from __future__ import annotations

import streamlit as st

import core
from core.settings import AppSettings
from core.workflows import batch_downloads, batch_problem, batch_summary, caption_uploads
from streamlit_app.views import common

STATE = "batch_result"  # session_state key: {"key", "rows"}
ROW_HEIGHT = 72  # px; Streamlit wraps a cell's text only in rows taller than 64 px (4rem)
HEADER_HEIGHT = 36  # px, the table's header row
ROWS_SHOWN = 20  # rows in view without scrolling the table


def render(settings: AppSettings) -> None:
    files = st.file_uploader("Upload images", accept_multiple_files=True, key="batch-upload")
    st.caption("Model and prompt: as chosen on the Caption tab.")
    generation = {**common.generation_settings("batch", settings.precision), **st.session_state.get(common.PICKED, {})}
    if st.button("Caption all", type="primary", disabled=not files, key="batch-run") and files:
        key = (tuple(common.digest(f.getvalue()) for f in files), tuple(sorted(generation.items())))
        if why := batch_problem(len(files), settings.max_batch_files):
            return st.error(why)  # type: ignore[no-any-return]
        if (st.session_state.get(STATE) or {}).get("key") != key:
            bar = st.progress(0.0, text=f"Captioning 0/{len(files)}")
            try:
                model, kwargs = common.captioner(settings, generation)
                rows = caption_uploads(
                    model, [(f.name, f.getvalue()) for f in files], batch_size=settings.batch_size,
                    max_pixels=settings.max_pixels, max_bytes=common.max_upload_bytes(),
                    progress=lambda d, t: bar.progress(d / t, text=f"Captioning {d}/{t}"), **kwargs)
            except core.ModelUnavailableError as exc:
                common.show_model_error(exc)
                return
            finally:
                bar.empty()
            st.session_state[STATE] = {"key": key, "rows": rows}
    stored = st.session_state.get(STATE)
    if not stored:
        st.info("Upload images and press **Caption all**.")
        return
    records = [r.record for r in stored["rows"]]
    st.caption(batch_summary(records))
    rows = stored["rows"]
    st.dataframe(  # rows over 64 px wrap their text; the height shows every row (up to ROWS_SHOWN)
        [{"thumbnail": r.thumbnail or "", "file": r.record.path, "caption": r.record.caption,
          "error": r.record.error or ""} for r in rows],
        hide_index=True, width="stretch", row_height=ROW_HEIGHT, key="batch-table",
        height=HEADER_HEIGHT + ROW_HEIGHT * min(len(rows), ROWS_SHOWN) + 3,
        column_config={"thumbnail": st.column_config.ImageColumn("", width=80),
                       "file": st.column_config.TextColumn("file", width=160),
                       "caption": st.column_config.TextColumn("caption", width=360),
                       "error": st.column_config.TextColumn("error", width=360)})
    columns = st.columns([1, 1, 2, 1])
    for column, download, key in zip(columns, batch_downloads(records), ("batch-csv", "batch-jsonl", "batch-sidecars"),
                                     strict=False):
        column.download_button(download.label, download.data, download.file_name, download.mime, key=key)
