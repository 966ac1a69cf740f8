"""Long-lived objects, cached once per server process with ``st.cache_resource``."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.workflows import IndexShelf, ModelLoader


@st.cache_resource(show_spinner=False)
def model(name: str | None, device: str) -> ModelLoader:
    """The shared model loader, started at once (loads in the background; failures are remembered)."""
    loader = ModelLoader(name, device)
    loader.start()
    return loader


@st.cache_resource(show_spinner=False)
def indexes(paths: tuple[Path, ...]) -> IndexShelf:
    """The configured indexes, each loaded once (``.get(path)``, ``.warning(path)``)."""
    return IndexShelf(paths)
