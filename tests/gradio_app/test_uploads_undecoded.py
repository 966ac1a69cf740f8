"""No interaction hands an upload to Gradio's own decoding (issue 23, item 1).

Gradio rebuilds a component for the session from its constructor arguments whenever an event
returns an update for it (``gr.skip()``, ``gr.update(...)``): closing the "Gallery image" list
without choosing did that to the query slot, and the rebuilt ``gr.Image`` then decoded the next
upload itself (``DecompressionBombError`` toast, server traceback) before the app's checks.

Here every event of the real app runs through Gradio's own ``process_api`` (preprocess, the
handler, postprocess) in one session: first each event that outputs to an upload component
answers with an update (what any interaction may do), then every event that takes an upload gets
each hostile file; each must reach ``core.load_image`` (the app's reason in the answer), never
raise Gradio's "Could not preprocess" error.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import gradio as gr
import pytest
from gradio.state_holder import SessionState

from gradio_app import handlers
from gradio_app.app import UPLOADS, build_app
from gradio_app.config import AppConfig
from gradio_app.services import Services
from tests.browser.support import MAX_PIXELS, AppData
from tests.reliability.corpus import BY_NAME

HOSTILE = ["bomb-100000x100000.png", "text.jpg", "drawing.svg", "truncated.png", "ztxt-bomb.png",
           "strips-20000.tiff"]


@pytest.fixture(scope="module")
def app(tiny_model_dir: Path, apps_data: AppData) -> tuple[gr.Blocks, Services]:
    config = AppConfig(model=str(tiny_model_dir), device="cpu", indexes=(apps_data.index,),
                       examples=apps_data.examples, max_pixels=MAX_PIXELS)
    services = Services(config)
    return build_app(config, services), services


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile")
    out = {}
    for name in HOSTILE:
        out[name] = folder / name
        out[name].write_bytes(BY_NAME[name].data)
    return out


def _takes_uploads(fn: Any) -> bool:
    return any(isinstance(c, UPLOADS) for c in fn.inputs)


def _payload(path: Path, component: Any) -> Any:
    one = {"path": str(path), "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}
    return [one] if isinstance(component, gr.File) else one


def _inputs(fn: Any, path: Path | None) -> list[Any]:
    return [_payload(path, c) if isinstance(c, UPLOADS) and path is not None
            else "caption" if isinstance(c, gr.Textbox) else c.value for c in fn.inputs]


def _run(demo: gr.Blocks, fn: Any, inputs: list[Any], state: SessionState) -> dict[str, Any]:
    """Gradio's whole path for one event; the /caption endpoint's gr.Error becomes its text
    (any other exception, e.g. Gradio's own "Could not preprocess", fails the test)."""
    try:
        data = asyncio.run(demo.process_api(fn, inputs, state, explicit_call=True))["data"]
    except gr.Error as exc:
        return {"data": [f"Error: {exc.message}"]}
    return {"data": [d.model_dump() if hasattr(d, "model_dump") else d for d in data]}


def test_every_event_with_an_upload_input_skips_gradios_preprocessing(app: tuple[gr.Blocks, Services]) -> None:
    demo, _ = app
    with_uploads = [fn for fn in demo.fns.values() if _takes_uploads(fn)]
    assert len(with_uploads) >= 5  # caption (button, example, API), its neighbours, batch, similar
    assert [fn.name for fn in with_uploads if fn.preprocess] == []


def test_closing_the_gallery_list_then_a_bomb_is_refused_by_the_app(app: tuple[gr.Blocks, Services],
                                                                     hostile: dict[str, Path]) -> None:
    """The issue's sequence: the pick list closed without a choice (``pick(None)``), then a bomb."""
    demo, services = app
    state = SessionState(demo)
    pick = next(fn for fn in demo.fns.values() if fn.name == "<lambda>" and
                [type(c) for c in fn.outputs] == [gr.Image, gr.State])
    assert handlers.pick(services, None, None)[0] == gr.skip()  # what closing the list answers
    _run(demo, pick, [services.indexes.choices[0], None], state)
    similar = next(fn for fn in demo.fns.values() if fn.api_name == "similar")
    for name in ("bomb-100000x100000.png", "text.jpg"):
        answer = _run(demo, similar, _inputs(similar, hostile[name]), state)["data"][0]
        assert re.search(BY_NAME[name].expect, answer["error"] or ""), (name, answer)
        assert answer["error"].startswith(name), answer


@pytest.mark.timeout(600)
def test_every_upload_input_after_every_kind_of_update(app: tuple[gr.Blocks, Services],
                                                       hostile: dict[str, Path]) -> None:
    demo, _ = app
    updaters = [fn for fn in demo.fns.values() if any(isinstance(c, UPLOADS) for c in fn.outputs)]
    assert updaters  # the pick list, an index change, the examples
    rebuilt_by = []
    for updater in [None, *updaters]:
        state = SessionState(demo)
        if updater is not None:  # the session's upload components rebuilt from an update
            asyncio.run(demo.postprocess_data(updater, [gr.update() for _ in updater.outputs], state))
            if any(isinstance(c, UPLOADS) and state[c._id] is not c for c in updater.outputs):
                rebuilt_by.append(updater.name)  # what made the patched preprocess of before vanish
        for fn in demo.fns.values():
            if not _takes_uploads(fn):
                continue
            for name, path in hostile.items():
                text = json.dumps(_run(demo, fn, _inputs(fn, path), state)["data"], ensure_ascii=False, default=str)
                assert re.search(BY_NAME[name].expect, text), (updater and updater.name, fn.name, name, text[:300])
    assert rebuilt_by  # the mechanism of the issue was exercised
