"""Streamlit entry point: ``streamlit run streamlit_app/app.py [-- --index DIR --model M ...]``."""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run` puts this folder, not the repository root, on sys.path.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from streamlit_app.config import AppSettings, parse_settings  # noqa: E402
from streamlit_app.views import batch, caption, run, similar  # noqa: E402


def settings() -> AppSettings:
    """Settings from the flags after ``--`` (only under ``streamlit run``) and the environment."""
    argv = sys.argv[1:] if Path(sys.argv[0]).name == "app.py" else []
    parsed, ignored = parse_settings(argv)
    if ignored:
        st.warning(f"Ignored unknown arguments: {' '.join(ignored)}")
    return parsed


def main() -> None:
    st.set_page_config(page_title="image-to-text", page_icon="🖼️", layout="wide")
    config = settings()
    st.title("image-to-text")
    st.caption("Caption images, find similar ones, and inspect training runs.")
    tabs = st.tabs(["Caption", "Batch", "Similar images", "Training run"])
    with tabs[0]:
        caption.render(config)
    with tabs[1]:
        batch.render(config)
    with tabs[2]:
        similar.render(config)
    with tabs[3]:
        run.render(config)


main()
