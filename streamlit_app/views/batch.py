"""Batch tab: many uploads -> a table of file, thumbnail, caption, error; CSV and JSONL downloads."""

from __future__ import annotations

import base64
import io
from typing import Any

import streamlit as st
from PIL import Image

import core
from core.captioning.outputs import CaptionRecord, to_string
from streamlit_app import resources
from streamlit_app.config import AppSettings
from streamlit_app.views.common import digest, generation_settings, load_upload

STATE = "batch_result"  # session_state key: {"key", "records", "thumbs"}
THUMB = 96


def _thumbnail(image: Image.Image) -> str:
    small = image.copy()
    small.thumbnail((THUMB, THUMB))
    buf = io.BytesIO()
    small.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _run(files: list[Any], generation: dict[str, Any], settings: AppSettings) -> dict[str, Any]:
    captioner = resources.captioner(settings.model, settings.device)
    records: list[CaptionRecord | None] = [None] * len(files)
    thumbs: list[str | None] = [None] * len(files)
    bar = st.progress(0.0, text=f"Captioning 0/{len(files)}")
    step = settings.batch_size
    for start in range(0, len(files), step):
        slots, images = [], []
        for i in range(start, min(start + step, len(files))):
            try:
                image = load_upload(files[i].getvalue(), files[i].name, settings)
            except core.InvalidImageError as exc:
                records[i] = CaptionRecord(files[i].name, "", exc.reason)
                continue
            slots.append(i)
            images.append(image)
            thumbs[i] = _thumbnail(image)
        if images:
            captions = captioner.caption_batch(images, batch_size=len(images), errors="return",
                                               max_pixels=settings.max_pixels, **generation)
            for i, cap in zip(slots, captions, strict=True):
                if isinstance(cap, str):
                    records[i] = CaptionRecord(files[i].name, cap)
                else:
                    records[i] = CaptionRecord(files[i].name, "", str(cap))
        done = min(start + step, len(files))
        bar.progress(done / len(files), text=f"Captioning {done}/{len(files)}")
    bar.empty()
    return {"records": records, "thumbs": thumbs}


def render(settings: AppSettings) -> None:
    files = st.file_uploader("Upload images", accept_multiple_files=True, key="batch-upload")
    generation = generation_settings("batch")
    start = st.button("Caption all", type="primary", disabled=not files, key="batch-run")
    if files and start:
        key = (tuple(digest(f.getvalue()) for f in files), tuple(sorted(generation.items())))
        stored = st.session_state.get(STATE)
        if stored is None or stored["key"] != key:
            try:
                stored = {"key": key, **_run(list(files), generation, settings)}
            except core.ModelUnavailableError as exc:
                st.error("The captioning model could not be loaded.")
                st.code(str(exc), language=None, wrap_lines=True)
                return
            st.session_state[STATE] = stored
    stored = st.session_state.get(STATE)
    if not stored:
        st.info("Upload images and press **Caption all**.")
        return
    records: list[CaptionRecord] = stored["records"]
    failed = sum(1 for r in records if not r.ok)
    st.caption(f"{len(records) - failed} captioned, {failed} failed")
    rows = [{"thumbnail": t, "file": r.path, "caption": r.caption, "error": r.error or ""}
            for r, t in zip(records, stored["thumbs"], strict=True)]
    st.dataframe(
        rows, hide_index=True, width="stretch", row_height=64, key="batch-table",
        column_config={
            "thumbnail": st.column_config.ImageColumn("", width="small"),
            "file": st.column_config.TextColumn("file"),
            "caption": st.column_config.TextColumn("caption", width="large"),
            "error": st.column_config.TextColumn("error"),
        },
    )
    c1, c2, _ = st.columns([1, 1, 3])
    c1.download_button("Download CSV", to_string(records, "csv"), "captions.csv", "text/csv",
                       key="batch-csv")
    c2.download_button("Download JSONL", to_string(records, "jsonl"), "captions.jsonl",
                       "application/jsonl", key="batch-jsonl")
