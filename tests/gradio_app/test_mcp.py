"""``python -m gradio_app --mcp``: the real ``mcp`` client lists and calls the tools over streamable HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mcp  # a dev dependency: missing, the module fails (never skips)
import pytest
from mcp.client.streamable_http import streamable_http_client

import core
from tests.browser.support import (
    MAX_PIXELS,
    MAX_UPLOAD_MB,
    AppData,
    free_port,
    python,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.slow

TOOLS = {"caption_image", "find_similar_images", "find_images_by_words"}


@pytest.fixture(scope="module")
def mcp_url(tiny_model_dir: Path, apps_data: AppData) -> Iterator[str]:
    port = free_port()
    cmd = [python(), "-m", "gradio_app", "--mcp", "--model", str(tiny_model_dir), "--device", "cpu",
           "--index", str(apps_data.index), "--port", str(port), "--max-upload-mb", str(MAX_UPLOAD_MB),
           "--max-pixels", str(MAX_PIXELS)]
    proc = start_server(cmd, f"http://127.0.0.1:{port}/")
    yield f"http://127.0.0.1:{port}/gradio_api/mcp/"
    stop_server(proc)


def session_call(url: str, work: Any) -> Any:
    """Run ``await work(session)`` in a fresh, initialised MCP client session."""
    async def run() -> Any:
        async with streamable_http_client(url) as (read, write, _), mcp.ClientSession(read, write) as session:
            await session.initialize()
            return await work(session)
    return asyncio.run(run())


def call(url: str, tool: str, arguments: dict[str, Any]) -> Any:
    return session_call(url, lambda s: s.call_tool(tool, arguments))


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def text_of(result: Any) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


def test_lists_exactly_the_three_tools_with_documented_typed_parameters(mcp_url: str) -> None:
    listed = session_call(mcp_url, lambda s: s.list_tools())
    tools = {t.name: t for t in listed.tools}
    assert set(tools) == TOOLS  # the page's /caption, /similar ... are not MCP tools
    caption = tools["caption_image"]
    assert caption.description.startswith("Describe an image in one English sentence")
    props = caption.inputSchema["properties"]
    assert caption.inputSchema["required"] == ["image"]
    assert props["image"]["type"] == "string" and "http" in props["image"]["format"]
    assert f"at most {MAX_UPLOAD_MB} MB and {MAX_PIXELS:,} pixels" in props["image"]["description"]
    assert props["decoding"]["enum"] == ["Beam search", "Greedy", "Sampling"]
    assert props["precision"]["enum"] == ["float32", "int8"]
    assert props["num_beams"]["type"] == "number" and props["num_beams"]["default"] == 4
    for name in ("decoding", "num_beams", "max_new_tokens", "temperature", "top_p", "seed", "precision"):
        assert props[name]["description"], name
    words = tools["find_images_by_words"].inputSchema["properties"]
    assert words["words"]["type"] == "string" and "1 to 20" in words["k"]["description"]


def test_caption_tool_equals_core_caption_with_the_settings(mcp_url: str, apps_data: AppData,
                                                            tiny_model_dir: Path) -> None:
    image = apps_data.gallery / "g05.png"
    result = call(mcp_url, "caption_image", {"image": data_uri(image), "decoding": "Greedy", "max_new_tokens": 8})
    assert not result.isError, text_of(result)
    assert text_of(result) == core.caption(image, model=str(tiny_model_dir), device="cpu", num_beams=1,
                                           max_new_tokens=8)


def test_similar_and_words_tools_return_ranked_json(mcp_url: str, apps_data: AppData) -> None:
    query = apps_data.gallery / "g03.png"
    similar = call(mcp_url, "find_similar_images", {"image": data_uri(query), "k": 3})
    assert not similar.isError, text_of(similar)
    answer = json.loads(text_of(similar))
    assert [r["rank"] for r in answer["results"]] == [1, 2, 3]
    assert answer["same_image"] == "g03"  # the query is a gallery image: named, not counted
    assert "g03" not in [r["image_id"] for r in answer["results"]]
    caption = core.search.EmbeddingIndex.load(apps_data.index).captions[7][0]
    words = json.loads(text_of(call(mcp_url, "find_images_by_words", {"words": caption, "k": 2})))
    assert words["results"][0]["image_id"] == "g07" and len(words["results"]) <= 2


def _bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A tiny PNG whose header claims 900 MP (its pixel data is never there)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("tool", ["caption_image", "find_similar_images"])
def test_hostile_uploads_are_tool_errors_with_the_reason(mcp_url: str, apps_data: AppData, tool: str) -> None:
    cases = {
        "data:image/png;base64," + base64.b64encode(_bomb_png()).decode(): "pixels",
        data_uri(apps_data.not_image): "not a supported image",
        data_uri(apps_data.too_many_pixels): "pixels",
        data_uri(apps_data.too_large): "",  # over the upload cap: Gradio refuses the upload itself
        "/etc/passwd": "provide a url",  # a server path is never read
    }
    for image, reason in cases.items():
        result = call(mcp_url, tool, {"image": image})
        text = text_of(result)
        assert result.isError, (image[:40], text)
        assert reason in text and "Traceback" not in text, (image[:40], text)
    ok = call(mcp_url, "caption_image", {"image": data_uri(apps_data.good)})  # the server is still fine
    assert not ok.isError and text_of(ok)


def test_bad_settings_are_tool_errors(mcp_url: str, apps_data: AppData) -> None:
    result = call(mcp_url, "find_similar_images", {"image": data_uri(apps_data.good), "k": 500})
    assert result.isError and "greater than maximum value 20" in text_of(result)
    result = call(mcp_url, "find_images_by_words", {"words": "   "})
    assert result.isError and "no words" in text_of(result)
    result = call(mcp_url, "caption_image", {"image": data_uri(apps_data.good), "precision": "fp8"})
    assert result.isError and "fp8" in text_of(result) and "Traceback" not in text_of(result)
