"""The app's MCP tools (``python -m gradio_app --mcp``): captioning, similar images, words search.

Gradio (``launch(mcp_server=True)``, the ``gradio[mcp]`` extra) serves every public API endpoint
as an MCP tool over streamable HTTP at ``/gradio_api/mcp/``: the tool's name is the function's,
its description and each parameter's come from the docstring (one ``name: text`` line per
parameter under ``Args:``), and the parameter types from the input components. An image input is
a ``gr.Image`` here, so an agent passes an ``http(s)`` URL or a ``data:image/...;base64,`` string;
Gradio stores it as an upload (the app's ``max_file_size`` cap applies), and the tool hands the
stored path to ``core.load_image`` (format allow-list, pixel and byte caps), exactly as the page.

A tool's error is a ``gr.Error`` with the reason (Gradio's MCP server returns it as a tool error,
``isError``), never a traceback. The page's own endpoints (``/caption``, ``/similar``, ...) stay
API endpoints for ``gradio_client`` but are left out of the MCP tool list (their functions are
marked ``_mcp_type = "api"``: Gradio's list_tools skips a function whose ``_mcp_type`` is not
``"tool"``, the attribute its ``gr.mcp.tool/resource/prompt`` decorators set).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import gradio as gr

from core import workflows as wf
from core.captioning import DECODING_MODES
from core.workflows import PRECISIONS
from gradio_app import handlers
from gradio_app.app import on
from gradio_app.services import Services

MAX_K = 20  # the page's "Results (k)" slider goes up to 20 (Gradio refuses more, as a tool error)
TOOL_NAMES = ("caption_image", "find_similar_images", "find_images_by_words")


def _limits(services: Services) -> str:
    mb, pixels = services.config.max_upload_mb, services.config.max_pixels
    return f"JPEG, PNG, WebP, GIF, BMP or TIFF, at most {mb} MB and {pixels:,} pixels"


def _answer(answer: wf.SimilarAnswer) -> str:
    """The JSON text of a search (``/similar``'s fields); a user's mistake becomes a tool error."""
    if answer.error:
        raise gr.Error(answer.error, print_exception=False)
    return json.dumps(handlers.payload(answer), ensure_ascii=False)


def caption_tool(services: Services) -> Callable[..., str]:
    def caption_image(image: str, decoding: str = "Beam search", num_beams: int = 4, max_new_tokens: int = 15,
                      temperature: float = 1.0, top_p: float = 1.0, seed: int = -1,
                      precision: str = "float32") -> str:
        try:
            return handlers.caption_text(services, image, decoding, num_beams, max_new_tokens, temperature,
                                         top_p, seed, precision)
        except handlers.UserError as exc:
            raise gr.Error(str(exc), print_exception=False) from exc
    caption_image.__doc__ = f"""Describe an image in one English sentence with the app's captioning model.

    Args:
        image: the picture to caption, as an http(s) URL or a data:image/...;base64 string ({_limits(services)}).
        decoding: "Beam search" (the model card's way), "Greedy" (fastest) or "Sampling" (varied captions).
        num_beams: beam width, 1 to 8; used by "Beam search" only.
        max_new_tokens: most words-pieces the caption may have, 1 to 64.
        temperature: sampling temperature, 0.1 to 2.0 (higher = more varied); used by "Sampling" only.
        top_p: nucleus sampling share, 0.05 to 1.0; used by "Sampling" only.
        seed: sampling seed for a repeatable caption; -1 = random; used by "Sampling" only.
        precision: "float32" (exact) or "int8" (faster on a CPU; the caption may differ a little).
    Returns:
        the caption text.
    """
    return caption_image


def similar_tool(services: Services) -> Callable[..., str]:
    def find_similar_images(image: str, k: int = 5, index: str | None = None) -> str:
        return _answer(wf.search_gallery(services.indexes, index, k, upload=image, **services.limits))
    find_similar_images.__doc__ = f"""Find the k images of an indexed gallery that look most like a picture.

    Args:
        image: the query picture, as an http(s) URL or a data:image/...;base64 string ({_limits(services)}).
        k: how many results, 1 to {MAX_K}.
        index: which of the app's index folders to search (one of the listed values; default: the first).
    Returns:
        JSON text: {{"results": [{{"rank", "image_id", "image_path", "score", "captions", "categories"}}], "query", "note", "same_image": the gallery id of the query itself or null, "warning": why the scores mean little or null, "search": how the index ranks}}.
    """
    return find_similar_images


def words_tool(services: Services) -> Callable[..., str]:
    def find_images_by_words(words: str, k: int = 5, index: str | None = None) -> str:
        return _answer(wf.search_gallery(services.indexes, index, k, text=words or "", **services.limits))
    find_images_by_words.__doc__ = f"""Find the k gallery images whose captions best match some words (BM25 ranking).

    Args:
        words: the words to look for in the gallery's captions, e.g. "a dog on a beach".
        k: how many results, 1 to {MAX_K}.
        index: which of the app's index folders to search (one of the listed values, with captions; default: the first).
    Returns:
        JSON text with the same fields as find_similar_images.
    """
    return find_images_by_words


def add_tools(demo: gr.Blocks, services: Services) -> list[str]:
    """Register the MCP tools on ``demo`` (inside its ``with`` block); returns their names.

    The search tools come only with an index (without one they could only fail).
    """
    page_endpoints = [fn.fn for fn in demo.fns.values() if fn.fn is not None and fn.api_visibility == "public"]
    names = []
    with gr.Column(visible=False):
        image = gr.Image(type="filepath", label="image")  # undecoded: every event goes through on()
        caption = gr.Textbox(label="caption")
        decoding = gr.Dropdown(list(DECODING_MODES), value="Beam search", label="decoding")
        settings = [decoding, gr.Slider(1, 8, value=4, step=1, label="num_beams"),
                    gr.Slider(1, 64, value=15, step=1, label="max_new_tokens"),
                    gr.Slider(0.1, 2.0, value=1.0, label="temperature"), gr.Slider(0.05, 1.0, value=1.0, label="top_p"),
                    gr.Number(value=-1, precision=0, label="seed"),
                    gr.Dropdown(list(PRECISIONS), value=services.config.precision, label="precision")]
        _endpoint(caption_tool(services), [image, *settings], caption, concurrency_id="caption",
                  concurrency_limit=services.config.batch_size)
        names.append("caption_image")
        if services.config.indexes:
            k = gr.Slider(1, MAX_K, value=5, step=1, label="k")
            choice = gr.Dropdown(services.indexes.choices, value=services.indexes.choices[0], label="index")
            found = gr.Textbox(label="results")
            _endpoint(similar_tool(services), [image, k, choice], found)
            _endpoint(words_tool(services), [gr.Textbox(label="words"), k, choice], found)
            names += ["find_similar_images", "find_images_by_words"]
    for fn in page_endpoints:  # the page's endpoints stay API endpoints, not MCP tools
        try:
            fn._mcp_type = "api"
        except AttributeError:  # a bound method or builtin cannot carry the mark
            pass
    return names


def _endpoint(fn: Callable[..., str], inputs: list[Any], output: Any, **queue: Any) -> None:
    on(gr.Button(visible=False).click, fn, inputs, outputs=[output], api_name=fn.__name__, **queue)
