"""Similar images tab: choose an index, query by upload or by a gallery image, see the top k."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

import core
from streamlit_app import resources
from streamlit_app.config import AppSettings
from streamlit_app.views.common import digest, load_upload, show_results

STATE = "similar_result"  # session_state key: {"key", "hits", "error"}


def _search(index: Any, query: Any, k: int) -> dict[str, Any]:
    try:
        return {"hits": index.find_similar(query, k=k), "error": None}
    except core.InvalidImageError as exc:
        return {"hits": [], "error": f"**{exc.source}** cannot be used as a query: {exc.reason}"}
    except Exception as exc:  # stale index, missing checkpoint, unknown id: say so in the page
        return {"hits": [], "error": f"{type(exc).__name__}: {exc}"}


def render(settings: AppSettings) -> None:
    if not settings.indexes:
        st.info("No index loaded. Build one with `img2text ssl embed`, then start the app with "
                "`-- --index DIR` (or set `IMG2TEXT_INDEX`).")
        return
    choice = st.selectbox("Index", [str(p) for p in settings.indexes], key="similar-index")
    try:
        index = resources.index(choice)
    except Exception as exc:
        st.error(f"Cannot load the index {choice}: {exc}")
        return
    left, right = st.columns([1, 2], gap="large")
    with left:
        mode = st.radio("Query by", ("Upload", "Gallery image"), horizontal=True, key="similar-mode")
        k = st.slider("Results (k)", 1, 20, 5, key="similar-k")
        query: Any = None
        key: tuple | None = None
        if mode == "Upload":
            upload = st.file_uploader("Query image", key="similar-upload")
            if upload is not None:
                data = upload.getvalue()
                key = (choice, "upload", digest(data), k)
                query = (upload.name, data)
        else:
            ids = [str(i) for i in index.image_ids]
            labels = {str(i): (c[0] if c else "") for i, c in zip(index.image_ids, index.captions, strict=True)}
            picked = st.selectbox("Gallery image", ids, key="similar-id",
                                  format_func=lambda i: f"{i} · {labels[i]}"[:80])
            row = index.row_of_id(picked)
            if Path(index.paths[row]).is_file():
                st.image(str(index.paths[row]), width=200)
            key = (choice, "id", picked, k)
            query = picked
        go = st.button("Find similar", type="primary", key="similar-run", disabled=query is None)
    with right:
        stored = st.session_state.get(STATE)
        if go and query is not None and (stored is None or stored["key"] != key):
            preview = None
            if isinstance(query, tuple):
                try:
                    query = load_upload(query[1], query[0], settings)
                    preview = query.copy()
                    preview.thumbnail((160, 160))
                except core.InvalidImageError as exc:
                    stored = {"key": key, "hits": [],
                              "error": f"**{exc.source}** cannot be used as a query: {exc.reason}"}
                    query = None
            if query is not None:
                with st.spinner("Searching…"):
                    stored = {"key": key, "preview": preview, **_search(index, query, k)}
            st.session_state[STATE] = stored
        if stored is None:
            st.info("Choose a query and press **Find similar**.")
            return
        if stored["error"]:
            st.error(stored["error"])
            return
        if stored.get("preview") is not None:
            st.image(stored["preview"], caption="query", width=120)
        st.markdown(f"##### Top {len(stored['hits'])}")
        show_results(stored["hits"], columns=5)
        st.dataframe(
            [{"rank": h.rank, "image id": str(h.image_id), "score": round(h.score, 4),
              "captions": " / ".join(h.captions[:2])} for h in stored["hits"]],
            hide_index=True, width="stretch", key="similar-table",
        )
