"""Caption tab: one image (upload, camera or example) -> its caption, and its nearest neighbours."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import streamlit as st

import core
from core.settings import AppSettings
from core.workflows import example_files, search_gallery
from streamlit_app import resources
from streamlit_app.views import common

STATE = "caption_result"  # session_state key: {"key", "caption", "error", "neighbours", ...}


def _current_image(settings: AppSettings) -> tuple[str, bytes] | None:
    """The image to caption: an upload, else a camera shot, else the chosen example."""
    upload = st.file_uploader("Upload an image", key="caption-upload", help="JPEG, PNG, WebP, GIF, BMP or TIFF")
    with st.expander("Take a photo with the camera", expanded=False):
        shot = st.camera_input("Camera", key="caption-camera", label_visibility="collapsed")
    examples = example_files(settings.examples, settings.example_limit)
    if examples:
        st.caption("…or click an example")
        # Streamlit cuts a button's label to one line ("holiday-2026-…"): wrap file names instead
        st.html('<style>[class*="st-key-example-"] [data-testid=stMarkdownContainer], [class*="st-key-example-"] p'
                '{white-space:normal !important;overflow-wrap:anywhere;text-overflow:clip}</style>')
        cols = st.columns(4)
        for i, path in enumerate(examples):
            with cols[i % len(cols)]:
                st.image(str(path), width="stretch")
                if st.button(path.name, key=f"example-{i}", width="stretch"):
                    st.session_state["caption-example"] = str(path)
    if upload is not None or shot is not None:
        return (upload.name, upload.getvalue()) if upload is not None else ("camera.jpg", shot.getvalue())
    chosen = st.session_state.get("caption-example")
    return (Path(chosen).name, Path(chosen).read_bytes()) if chosen and Path(chosen).is_file() else None


def _caption(name: str, data: bytes, generation: dict[str, Any], settings: AppSettings) -> dict[str, Any]:
    result: dict[str, Any] = {"caption": None, "error": None, "neighbours": None, "preview": None}
    try:
        image = common.load(data, name, settings)
        result["preview"] = image.copy()
        result["preview"].thumbnail((640, 640))
        with st.spinner("Captioning…"):
            model, kwargs = common.captioner(settings, generation)
            result["caption"] = model.caption(image, max_pixels=settings.max_pixels, **kwargs)
    except core.InvalidImageError as exc:
        result["error"] = f"**{exc.source}** cannot be captioned: {exc.reason}"
    except core.ModelUnavailableError as exc:
        result["model_error"] = exc
    if result["caption"] and settings.indexes:  # the nearest images in the first index, as a SimilarAnswer
        result["neighbours"] = search_gallery(resources.indexes(settings.indexes), None, settings.neighbours,
                                              upload=data, name=name, max_pixels=settings.max_pixels,
                                              max_bytes=common.max_upload_bytes())
    return result


def render(settings: AppSettings) -> None:
    left, right = st.columns([1, 1], gap="large")
    with left:
        current = _current_image(settings)
        common.model_picker(settings)
        generation = {**common.generation_settings("caption", settings.precision), **st.session_state[common.PICKED]}
        again = st.button("Caption", type="primary", key="caption-run", width="stretch", disabled=current is None)
    with right:
        if current is None:
            st.info("Upload an image (or take a photo, or click an example) to caption it.")
            return
        name, data = current
        key = common.digest(data)  # as in the Gradio app: a new image captions at once, new settings on Caption
        stored = st.session_state.get(STATE)
        if stored is None or stored["key"] != key or again or stored.get("model_error"):  # a Retry may have fixed it
            stored = st.session_state[STATE] = {"key": key, **_caption(name, data, generation, settings)}
        if stored["preview"] is not None:
            st.image(stored["preview"], caption=name, width=320)
        if stored.get("model_error"):
            return common.show_model_error(stored["model_error"])
        if stored["error"]:
            return st.error(stored["error"])  # type: ignore[no-any-return]
        st.markdown("##### Caption")
        st.markdown(f'<p id="caption-text" style="font-size:1.35em;font-weight:600">{html.escape(stored["caption"])}'
                    "</p>", unsafe_allow_html=True)
        found = stored.get("neighbours")
        if found is not None:
            st.markdown("##### Nearest gallery images")
            if found.warning:
                st.warning(found.warning)
            st.caption(found.note or f"No neighbours: {found.error}")
            common.show_results(found.hits, columns=4)
