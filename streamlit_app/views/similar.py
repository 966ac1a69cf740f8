"""Similar images tab: choose an index; query by an upload, a picked gallery image or words; see the top k."""

from __future__ import annotations

from typing import Any

import streamlit as st

import core
from core import workflows as wf
from core.settings import AppSettings
from streamlit_app import resources
from streamlit_app.views.common import max_upload_bytes, show_results

STATE = "similar_result"  # session_state key: (index, SimilarAnswer) of the last search
PICKED = "similar-picked"  # session_state key: the gallery id picked as the query (an upload replaces it)


def _on_upload() -> None:
    if st.session_state.get("similar-upload") is not None:  # a new upload replaces a picked image
        st.session_state[PICKED] = st.session_state["similar-id"] = None


def _query(index: Any, choice: str, settings: AppSettings) -> dict[str, Any]:
    """The query slot: a picked gallery image (shown), else the upload -> ``search_gallery`` keywords."""
    upload = st.file_uploader("Query image", key="similar-upload", on_change=_on_upload)
    text = st.text_input("…or pick a gallery image as the query: type an id, file name or caption words",
                         key="similar-find")
    labels = {i: label for label, i in wf.gallery_matches(index, text, settings.pick_limit)}
    st.selectbox(f"Gallery image ({len(labels)} shown)", list(labels), index=None, format_func=labels.get,
                 key="similar-id", on_change=lambda: st.session_state.update({PICKED: st.session_state["similar-id"]}))
    picked = st.session_state.get(PICKED)
    if (picture := wf.gallery_picture(resources.indexes(settings.indexes), choice, picked)) is not None:
        st.image(picture, caption=f"Query: gallery image {picked}", width=200)
        return {"image_id": picked}
    st.caption(f"Query: the uploaded image **{upload.name}**" if upload else "Query: none yet")
    return {} if upload is None else {"upload": upload.getvalue(), "name": upload.name}


def render(settings: AppSettings) -> None:
    if not settings.indexes:
        return st.info("No index loaded. Build one with `img2text ssl embed`, then start the app with "  # type: ignore[no-any-return]
                       "`-- --index DIR` (or set `IMG2TEXT_INDEX`).")
    choice = st.selectbox("Index", [str(p) for p in settings.indexes], key="similar-index",
                          on_change=lambda: st.session_state.update({PICKED: None}))
    shelf = resources.indexes(settings.indexes)
    try:
        index = shelf.get(choice)
    except (core.Img2TextError, OSError, ValueError) as exc:
        return st.error(f"Cannot load the index {choice}: {exc}")  # type: ignore[no-any-return]
    limits = {"max_pixels": settings.max_pixels, "max_bytes": max_upload_bytes()}
    left, right = st.columns([1, 2], gap="large")
    with left:
        query = _query(index, choice, settings)
        k = st.slider("Results (k)", 1, 20, 5, key="similar-k")
        if st.button("Find similar", type="primary", key="similar-run"):
            st.session_state[STATE] = (choice, wf.search_gallery(shelf, choice, k, **query, **limits))
        if why := wf.words_unavailable(shelf, choice):
            st.caption(f"**Find images by words**: {why}")
        else:
            with st.form("similar-words-form", border=False):
                text = st.text_input("Find images by words", key="similar-words", help=wf.words_info(shelf, choice))
                if st.form_submit_button("Find by words", key="similar-words-run"):
                    st.session_state[STATE] = (choice, wf.search_gallery(shelf, choice, k, text=text, **limits))
    with right:
        stored = st.session_state.get(STATE)
        if stored is None or stored[0] != choice:
            return st.info("Choose a query and press **Find similar**, or find images by words.")  # type: ignore[no-any-return]
        answer = stored[1]
        if answer.error:
            return st.error(answer.error)  # type: ignore[no-any-return]
        if answer.warning:
            st.warning(answer.warning)
        st.caption(answer.note)
        show_results(answer.hits, columns=5)
        st.dataframe(wf.result_rows(answer.hits), hide_index=True, width="stretch", key="similar-table")
