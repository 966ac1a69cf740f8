"""Batch tab: many uploads -> a table of thumbnail, file, caption, error; CSV and JSONL downloads."""

from __future__ import annotations

import streamlit as st

import core
from core.captioning import to_string
from core.settings import AppSettings
from core.workflows import batch_problem, batch_summary, caption_uploads
from streamlit_app.views import common

STATE = "batch_result"  # session_state key: {"key", "rows"}


def render(settings: AppSettings) -> None:
    files = st.file_uploader("Upload images", accept_multiple_files=True, key="batch-upload")
    generation = common.generation_settings("batch", settings.precision)
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
    st.dataframe(
        [{"thumbnail": r.thumbnail or "", "file": r.record.path, "caption": r.record.caption,
          "error": r.record.error or ""} for r in stored["rows"]],
        hide_index=True, width="stretch", row_height=64, key="batch-table",
        column_config={"thumbnail": st.column_config.ImageColumn("", width="small"),
                       "caption": st.column_config.TextColumn("caption", width="large")})
    c1, c2, _ = st.columns([1, 1, 3])
    c1.download_button("Download CSV", to_string(records, "csv"), "captions.csv", "text/csv", key="batch-csv")
    c2.download_button("Download JSONL", to_string(records, "jsonl"), "captions.jsonl", "application/jsonl",
                       key="batch-jsonl")
