"""Streamlit entry point: ``streamlit run streamlit_app/app.py [-- --index DIR --model M ...]``."""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run` puts this folder, not the repository root, on sys.path.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from core import ConfigError  # noqa: E402
from streamlit_app import resources  # noqa: E402
from streamlit_app.config import parse_settings  # noqa: E402
from streamlit_app.views import batch, caption, common, run, similar  # noqa: E402


def main() -> None:
    st.set_page_config(page_title="image-to-text", page_icon="🖼️", layout="wide")
    argv = sys.argv[1:] if Path(sys.argv[0]).name == "app.py" else []  # flags after `--`
    try:
        settings, ignored = parse_settings(argv)
    except ConfigError as exc:
        st.error(f"Bad setting: {exc}")
        return
    if ignored:
        st.warning(f"Ignored unknown arguments: {' '.join(ignored)}")
    st.title("image-to-text")
    st.caption("Caption images, find similar ones, and inspect training runs.")
    loader = resources.model(settings.model, settings.device).loader(settings.precision)  # the bar shows it
    bar = st.empty()
    settled = common.model_bar(bar, loader)
    tabs = st.tabs(["Caption", "Batch", "Similar images", "Training run"])
    for tab, view in zip(tabs, (caption, batch, similar, run), strict=True):
        with tab:
            view.render(settings)
    if not settled:
        common.follow_model_load(bar, loader)


main()
