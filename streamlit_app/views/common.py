"""Widgets used by more than one tab: the model bar, generation settings, uploads, result grids."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

import streamlit as st
from PIL import Image

import core.workflows as wf
from core import Captioner, ModelUnavailableError
from core.captioning import DECODING_MODES, decoding_kwargs, for_command
from core.settings import AppSettings
from streamlit_app import resources

PICKED = "picked-model"  # session_state key: the Caption tab's {"model", "prompt"} (the Batch tab uses it)


def session_loader(settings: AppSettings) -> wf.ModelLoader | str:
    """The loader of the session's (model, precision) choice on the Caption tab (read before its
    widgets draw), or why that model cannot be used (its config cannot be read)."""
    model = st.session_state.get("caption-model") or settings.model
    precision = st.session_state.get("caption-precision") or settings.precision
    try:
        return resources.model(settings.model, settings.device).loader(precision, model=model)
    except ModelUnavailableError as exc:
        return str(exc)


def model_bar(slot: Any, loader: wf.ModelLoader | str) -> bool:
    """Show the model's state in ``slot``: ready, or failed with the fix and a Retry button; a
    text (an unreadable picked model): that reason.

    Returns False (after showing "loading", or "ready" while int8's encoder compiles) until nothing
    more happens: the page then calls :func:`follow_model_load` after its tabs, so the tabs are
    usable while the bar keeps up (stage and seconds).
    """
    if isinstance(loader, str):
        with slot.container():
            st.error("The picked model cannot be used.")
            st.code(streamlit_fix(loader), language=None, wrap_lines=True)
        return True
    state = loader.state
    if state.status in ("idle", "loading"):
        slot.info(state.text)
        return False
    with slot.container():
        if state.status == "ready":
            st.caption(state.text)
            return state.settled
        st.error(state.text)
        st.code(streamlit_fix(state.message), language=None, wrap_lines=True)
        if st.button("Retry loading the model", key="model-retry"):
            loader.retry()
            st.rerun()
    return True


def follow_model_load(slot: Any, loader: wf.ModelLoader | str, poll_s: float = 0.5) -> None:
    """Keep the bar in ``slot`` current until the load ends (the end of the page's script run).

    A plain loop, not a ``run_every`` fragment: timed fragment reruns racing a full rerun (an upload
    while the model loads) left pages without their tabs. Each ``slot.info`` is a point where a
    widget interaction stops this run and starts the next one, so the loop never holds a user up.
    """
    while not isinstance(loader, str) and not loader.state.settled and loader.state.status != "idle":
        state = loader.state
        if state.status == "ready":
            slot.caption(state.text)  # captions already run; the compiled encoder is still being built
        else:
            slot.info(state.text)
        time.sleep(poll_s)
    model_bar(slot, loader)


def streamlit_fix(message: str) -> str:
    """Core's fix-it text with its commands written for this app: ``streamlit run
    streamlit_app/app.py -- --model ...`` (app flags after ``--``)."""
    return for_command(message, "streamlit run streamlit_app/app.py --")


def captioner(settings: AppSettings, generation: dict[str, Any]) -> tuple[Captioner, dict[str, Any]]:
    """The loaded model of the panel's precision and the picked model (waits while it loads;
    ModelUnavailableError at once after a failure or for an unreadable pick), and the generation
    keywords (the picked prompt in) without the precision and model."""
    kwargs = {**generation, **st.session_state.get(PICKED, {})}
    precision, model = kwargs.pop("precision", "float32"), kwargs.pop("model", None)
    return resources.model(settings.model, settings.device).loader(precision, model=model).get(), kwargs


def model_picker(settings: AppSettings) -> None:
    """The session's model (a suggested checkpoint, or any hub id / folder typed in) and its
    prompt box: a text box, or Florence-2's task choice; none for a family without prompts.
    Stores ``{"model", "prompt"}`` under :data:`PICKED` for both tabs."""
    model = st.selectbox("Model", wf.picker_models(settings.model), key="caption-model", accept_new_options=True,
                         help="a suggested checkpoint, or type a hub id (id@revision) or a local folder")
    field, _ = wf.picked_prompt_field(model or settings.model)  # unreadable: the model bar says why
    prompt = None
    if field is not None and field.visible and field.choices:
        choices = list(field.choices)
        prompt = st.selectbox("Task", choices, index=choices.index(field.default) if field.default in choices else 0,
                              key=f"caption-task-{model}", help=field.hint)
    elif field is not None and field.visible:  # keyed by model: a new pick shows its family's default
        prompt = st.text_input("Prompt", field.default or "", key=f"caption-prompt-{model}", help=field.hint)
    chosen = wf.chosen_prompt(prompt)
    st.session_state[PICKED] = {"model": model, **({} if chosen is None else {"prompt": chosen})}


def show_model_error(exc: ModelUnavailableError) -> None:
    st.error("The captioning model could not be loaded.")
    st.code(streamlit_fix(str(exc)), language=None, wrap_lines=True)


def generation_settings(key: str, precision: str = "float32") -> dict[str, Any]:
    """The collapsed generation panel -> ``Captioner.caption_batch`` keywords, plus ``precision``
    (preselected: ``precision``, the app's setting)."""
    with st.expander("Generation settings", expanded=False):
        decoding = st.radio("Decoding", tuple(DECODING_MODES), horizontal=True, key=f"{key}-decoding",
                            help="Beam search follows the model card; sampling gives varied captions")
        c1, c2 = st.columns(2)
        beams = c1.slider("Beams", 1, 8, 4, key=f"{key}-beams", disabled=decoding != "Beam search")
        max_tokens = c2.slider("Max new tokens", 1, 64, 15, key=f"{key}-max-tokens")
        c3, c4, c5 = st.columns(3)
        off = decoding != "Sampling"
        temperature = c3.slider("Temperature", 0.1, 2.0, 1.0, 0.05, key=f"{key}-temp", disabled=off)
        top_p = c4.slider("Top-p", 0.05, 1.0, 1.0, 0.05, key=f"{key}-top-p", disabled=off)
        seed = c5.number_input("Seed (-1 = random)", -1, 2**31 - 1, -1, key=f"{key}-seed", disabled=off)
        precision = st.radio("Precision", wf.PRECISIONS, index=list(wf.PRECISIONS).index(precision), horizontal=True,
                             key=f"{key}-precision", help=wf.PRECISION_HELP)
    return {**decoding_kwargs(decoding, num_beams=int(beams), max_new_tokens=int(max_tokens),
                              temperature=temperature, top_p=top_p, seed=int(seed)), "precision": precision}


def max_upload_bytes() -> int:
    return int(st.get_option("server.maxUploadSize")) * 1024 * 1024


def load(data: bytes, name: str, settings: AppSettings) -> Image.Image:
    """Uploaded bytes as an RGB image under the app's limits (InvalidImageError naming ``name``)."""
    return wf.load_upload(data, name, max_pixels=settings.max_pixels, max_bytes=max_upload_bytes())


def digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def show_results(hits: Sequence[Any], columns: int = 5) -> None:
    """A grid of retrieved images, each with rank, id, score and first caption."""
    cols = st.columns(columns)
    for i, hit in enumerate(hits):
        with cols[i % columns]:
            if (picture := wf.hit_picture(hit)) is not None:
                st.image(picture, width="stretch")
            st.caption(wf.hit_label(hit, ("**", "**")))  # Markdown: matched words in bold
