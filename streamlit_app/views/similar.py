"""Similar images tab: choose an index, query by upload or by a gallery image, see the top k."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

import core
from core.settings import AppSettings
from core.workflows import find_neighbours, gallery_matches
from streamlit_app import resources
from streamlit_app.views.common import digest, load, show_results

STATE = "similar_result"  # session_state key: {"key", "hits", "error", "same", "preview"}


def _query(index: Any, settings: AppSettings) -> tuple[str, Any] | None:
    """The query widgets -> ("upload", (name, bytes)) or ("id", image id), or None."""
    if st.radio("Query by", ("Upload", "Gallery image"), horizontal=True, key="similar-mode") == "Upload":
        upload = st.file_uploader("Query image", key="similar-upload")
        return None if upload is None else ("upload", (upload.name, upload.getvalue()))
    text = st.text_input("Find a gallery image by id, file name or caption words", key="similar-find")
    choices = dict(gallery_matches(index, text, settings.pick_limit))
    picked = st.selectbox(f"Gallery image ({len(choices)} shown)", list(choices), key="similar-id")
    if picked is None:
        return None
    path = Path(index.paths[index.row_of_id(choices[picked])])
    if path.is_file():
        st.image(str(path), width=200)
    return "id", choices[picked]


def _search(index: Any, query: tuple[str, Any], k: int, settings: AppSettings) -> dict[str, Any]:
    kind, value = query
    try:
        if kind == "id":
            return {"hits": index.find_similar(value, k=k), "error": None, "same": None}
        image = load(value[1], value[0], settings)
        found = find_neighbours(index, image, value[1], k)
        image.thumbnail((160, 160))
        return {"hits": found.hits, "error": None, "same": found.same, "preview": image}
    except core.InvalidImageError as exc:
        return {"hits": [], "error": f"**{exc.source}** cannot be used as a query: {exc.reason}"}
    except (core.Img2TextError, ValueError) as exc:  # stale index, missing checkpoint, unknown id
        return {"hits": [], "error": str(exc)}


def render(settings: AppSettings) -> None:
    if not settings.indexes:
        return st.info("No index loaded. Build one with `img2text ssl embed`, then start the app with "  # type: ignore[no-any-return]
                       "`-- --index DIR` (or set `IMG2TEXT_INDEX`).")
    choice = st.selectbox("Index", [str(p) for p in settings.indexes], key="similar-index")
    try:
        shelf = resources.indexes(settings.indexes)
        index = shelf.get(choice)
    except (core.Img2TextError, OSError, ValueError) as exc:
        return st.error(f"Cannot load the index {choice}: {exc}")  # type: ignore[no-any-return]
    left, right = st.columns([1, 2], gap="large")
    with left:
        k = st.slider("Results (k)", 1, 20, 5, key="similar-k")
        query = _query(index, settings)
        key = None if query is None else (choice, query[0], digest(query[1][1]) if query[0] == "upload" else query[1], k)
        go = st.button("Find similar", type="primary", key="similar-run", disabled=query is None)
    with right:
        if go and query is not None:
            with st.spinner("Searching…"):
                st.session_state[STATE] = {"key": key, **_search(index, query, k, settings)}
        stored = st.session_state.get(STATE)
        if stored is None or stored["key"][:2] != (None if key is None else key[:2]):
            return st.info("Choose a query and press **Find similar**.")  # type: ignore[no-any-return]
        if stored["error"]:
            return st.error(stored["error"])  # type: ignore[no-any-return]
        if shelf.warning(choice):
            st.warning(shelf.warning(choice))
        if stored.get("preview") is not None:
            st.image(stored["preview"], caption="query", width=120)
        if stored.get("same") is not None:
            st.caption(f"The query is gallery image **{stored['same'].image_id}** (not counted).")
        st.markdown(f"##### Top {len(stored['hits'])}")
        show_results(stored["hits"], columns=5)
        st.dataframe([{"rank": h.rank, "image id": str(h.image_id), "score": round(h.score, 4),
                       "captions": " / ".join(h.captions[:2])} for h in stored["hits"]],
                     hide_index=True, width="stretch", key="similar-table")
