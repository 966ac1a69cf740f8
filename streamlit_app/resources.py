"""Long-lived objects, cached once per server process with ``st.cache_resource``."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

from core.workflows import IndexShelf, ModelChoices


def _log(line: str) -> None:
    """The model's state in the server's log (so its start is seen before any browser)."""
    print(f"image-to-text: {line}", file=sys.stderr, flush=True)


@st.cache_resource(show_spinner=False)
def model(name: str | None, device: str) -> ModelChoices:
    """The shared model loaders by precision (each loads in the background when started or first
    used; failures are remembered). The server's start starts the configured precision's."""
    return ModelChoices(name, device, report=_log)


@st.cache_resource(show_spinner=False)
def indexes(paths: tuple[Path, ...]) -> IndexShelf:
    """The configured indexes, each loaded once (``.get(path)``, ``.warning(path)``)."""
    return IndexShelf(paths)
