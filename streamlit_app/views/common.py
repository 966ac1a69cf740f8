"""Widgets used by more than one tab: generation settings, upload checks, result grids."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import streamlit as st
from PIL import Image

import core
from core.captioning.generation import DECODING_MODES, decoding_kwargs
from streamlit_app.config import AppSettings

DECODING = tuple(DECODING_MODES)  # the labels every front end shows


def generation_settings(key: str) -> dict[str, Any]:
    """The collapsed generation panel -> ``**generation`` keywords of ``Captioner.caption_batch``."""
    with st.expander("Generation settings", expanded=False):
        decoding = st.radio("Decoding", DECODING, horizontal=True, key=f"{key}-decoding",
                            help="Beam search follows the model card; sampling gives varied captions")
        c1, c2 = st.columns(2)
        beams = c1.slider("Beams", 1, 8, 4, key=f"{key}-beams", disabled=decoding != "Beam search")
        max_tokens = c2.slider("Max new tokens", 1, 64, 15, key=f"{key}-max-tokens")
        c3, c4, c5 = st.columns(3)
        sampling = decoding == "Sampling"
        temperature = c3.slider("Temperature", 0.1, 2.0, 1.0, 0.05, key=f"{key}-temp", disabled=not sampling)
        top_p = c4.slider("Top-p", 0.05, 1.0, 1.0, 0.05, key=f"{key}-top-p", disabled=not sampling)
        seed = c5.number_input("Seed (-1 = random)", -1, 2**31 - 1, -1, key=f"{key}-seed",
                               disabled=not sampling)
    return decoding_kwargs(decoding, num_beams=int(beams), max_new_tokens=int(max_tokens),
                           temperature=temperature, top_p=top_p, seed=int(seed))


def max_upload_bytes() -> int:
    return int(st.get_option("server.maxUploadSize")) * 1024 * 1024


def load_upload(data: bytes, name: str, settings: AppSettings) -> Image.Image:
    """Uploaded bytes as an RGB image under the app's limits (InvalidImageError with the reason)."""
    try:
        return core.load_image(data, max_pixels=settings.max_pixels, max_bytes=max_upload_bytes())
    except core.InvalidImageError as exc:
        raise core.InvalidImageError(name, exc.reason) from exc


def digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def show_results(hits: Sequence[Any], columns: int = 5) -> None:
    """A grid of retrieved images, each with rank, score and first caption."""
    cols = st.columns(columns)
    for i, hit in enumerate(hits):
        caption = hit.captions[0] if hit.captions else str(hit.image_id)
        with cols[i % columns]:
            if Path(hit.path).is_file():
                st.image(str(hit.path), width="stretch")
            st.caption(f"**#{hit.rank}** · {hit.image_id} · {hit.score:.3f} · {caption}")
