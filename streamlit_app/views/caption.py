"""Caption tab: one image (upload, camera or example) -> its caption, and its nearest neighbours."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

import core
from streamlit_app import resources
from streamlit_app.config import AppSettings
from streamlit_app.views.common import digest, generation_settings, load_upload, show_results

STATE = "caption_result"  # session_state key: {"key", "caption", "error", "neighbours"}


def _current_image(settings: AppSettings) -> tuple[str, bytes] | None:
    """The image to caption: an upload, else a camera shot, else the chosen example."""
    upload = st.file_uploader("Upload an image", type=None, key="caption-upload",
                              help="JPEG, PNG, WebP, GIF, BMP or TIFF")
    with st.expander("Take a photo with the camera", expanded=False):
        shot = st.camera_input("Camera", key="caption-camera", label_visibility="collapsed")
    examples = resources.example_files(settings.examples)
    if examples:
        st.caption("…or click an example")
        cols = st.columns(4)
        for i, path in enumerate(examples):
            with cols[i % len(cols)]:
                st.image(str(path), width="stretch")
                if st.button(path.name, key=f"example-{i}", width="stretch"):
                    st.session_state["caption-example"] = str(path)
    if upload is not None:
        return upload.name, upload.getvalue()
    if shot is not None:
        return "camera.jpg", shot.getvalue()
    chosen = st.session_state.get("caption-example")
    if chosen and Path(chosen).is_file():
        return Path(chosen).name, Path(chosen).read_bytes()
    return None


def _caption(name: str, data: bytes, generation: dict[str, Any], settings: AppSettings) -> dict[str, Any]:
    result: dict[str, Any] = {"caption": None, "error": None, "fix": None, "neighbours": [],
                              "preview": None, "name": name}
    try:
        image = load_upload(data, name, settings)
    except core.InvalidImageError as exc:
        result["error"] = f"**{exc.source}** cannot be captioned: {exc.reason}"
        return result
    preview = image.copy()
    preview.thumbnail((640, 640))
    result["preview"] = preview
    try:
        with st.spinner("Captioning…"):
            result["caption"] = resources.captioner(settings.model, settings.device).caption(
                image, max_pixels=settings.max_pixels, **generation)
    except core.ModelUnavailableError as exc:
        result["error"] = "The captioning model could not be loaded."
        result["fix"] = str(exc)
        return result
    if settings.indexes:
        try:
            index = resources.index(str(settings.indexes[0]))
            result["neighbours"] = index.find_similar(image, k=settings.neighbours)
        except Exception as exc:  # neighbours are extra; say why they are missing
            result["neighbours_error"] = f"{type(exc).__name__}: {exc}"
    return result


def render(settings: AppSettings) -> None:
    left, right = st.columns([1, 1], gap="large")
    with left:
        current = _current_image(settings)
        generation = generation_settings("caption")
    with right:
        if current is None:
            st.info("Upload an image (or take a photo, or click an example) to caption it.")
            return
        name, data = current
        key = (digest(data), tuple(sorted(generation.items())))
        stored = st.session_state.get(STATE)
        if stored is None or stored["key"] != key:
            stored = {"key": key, **_caption(name, data, generation, settings)}
            st.session_state[STATE] = stored
        if stored["preview"] is not None:
            st.image(stored["preview"], caption=name, width=320)
        if stored["error"]:
            st.error(stored["error"])
            if stored.get("fix"):
                st.code(stored["fix"], language=None, wrap_lines=True)
            return
        st.markdown("##### Caption")
        st.markdown(f'<p id="caption-text" style="font-size:1.35em;font-weight:600">'
                    f'{_escape(stored["caption"])}</p>', unsafe_allow_html=True)
        st.session_state["caption_text"] = stored["caption"]
        if stored.get("neighbours"):
            st.markdown("##### Nearest gallery images")
            show_results(stored["neighbours"], columns=4)
        elif stored.get("neighbours_error"):
            st.warning(f"No neighbours: {stored['neighbours_error']}")


def _escape(text: str) -> str:
    import html

    return html.escape(text)
