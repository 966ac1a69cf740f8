"""Streamlit entry point: ``streamlit run streamlit_app/app.py [-- --index DIR --model M ...]``."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

# `streamlit run` puts this folder, not the repository root, on sys.path.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from core import ConfigError, quiet_libraries  # noqa: E402

quiet_libraries()  # before torch is imported: torch's/torchao's warnings only with IMG2TEXT_LOG_LEVEL

import streamlit as st  # noqa: E402
from streamlit.starlette import App  # noqa: E402

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
    loader = common.session_loader(settings)  # the bar shows the session's (model, precision) choice
    if not isinstance(loader, str):
        loader.start()  # a no-op once loading or loaded (the server start began the configured one)
    bar = st.empty()
    settled = common.model_bar(bar, loader)
    tabs = st.tabs(["Caption", "Batch", "Similar images", "Training run"])
    for tab, view in zip(tabs, (caption, batch, similar, run), strict=True):
        with tab:
            view.render(settings)
    if not settled:
        common.follow_model_load(bar, loader)


@asynccontextmanager
async def _load_at_start(_app: object) -> AsyncIterator[None]:
    """The server's start: the model begins loading now, not when the first browser arrives."""
    try:
        settings, _ = parse_settings(sys.argv[1:])
    except ConfigError:  # the page says what is wrong
        settings = None
    if settings is not None:
        # the cached loaders every page uses; the configured precision's (int8 too) loads now
        resources.model(settings.model, settings.device).loader(settings.precision).start()
    yield


if __name__ == "__main__":  # a page run (each browser session; AppTest)
    main()
else:  # `streamlit run` finds this App and serves it: one hook at server start (Streamlit >= 1.53)
    app = App(__file__, lifespan=_load_at_start)
