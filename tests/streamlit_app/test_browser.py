"""A real Chromium drives ``streamlit run``: caption an upload, search similar images."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import core
from tests.streamlit_app.conftest import StreamlitServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture()
def page(browser, streamlit_server: StreamlitServer):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(streamlit_server.url + "/")
    page.wait_for_selector(".st-key-caption-upload input[type=file]", state="attached")
    yield page
    context.close()


def test_caption_in_browser_equals_core(page, streamlit_server: StreamlitServer, test_output_dir: Path) -> None:  # type: ignore[no-untyped-def]
    image = streamlit_server.data.good
    assert "10MB" in page.locator(".st-key-caption-upload").inner_text()  # maxUploadSize in force
    page.locator(".st-key-caption-upload input[type=file]").set_input_files(str(image))
    caption = page.locator("#caption-text")
    caption.wait_for()
    want = core.caption(image, model=str(streamlit_server.model), device="cpu", max_new_tokens=15)
    assert caption.inner_text() == want
    page.get_by_text("Nearest gallery images").wait_for()
    page.wait_for_timeout(1000)
    page.screenshot(path=str(test_output_dir / "streamlit-caption.png"), full_page=True)


def test_bad_upload_shows_error_in_browser(page, streamlit_server: StreamlitServer, test_output_dir: Path) -> None:  # type: ignore[no-untyped-def]
    page.locator(".st-key-caption-upload input[type=file]").set_input_files(
        str(streamlit_server.data.not_image))
    alert = page.locator("[data-testid=stAlertContentError]").first
    alert.wait_for()
    assert "not a supported image" in alert.inner_text()
    page.screenshot(path=str(test_output_dir / "streamlit-caption-error.png"), full_page=True)


def test_similar_search_in_browser(page, streamlit_server: StreamlitServer, test_output_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from core.search import EmbeddingIndex

    page.get_by_role("tab", name="Similar images").click()
    query = streamlit_server.data.gallery / "g09.png"
    page.locator(".st-key-similar-upload input[type=file]").set_input_files(str(query))
    page.locator(".st-key-similar-run button").click()
    panel = page.get_by_role("tabpanel", name="Similar images")
    panel.get_by_text(re.compile(r"^#5 · ")).wait_for()
    found = EmbeddingIndex.load(streamlit_server.data.index).find_similar(core.load_image(query), k=6)
    want = found[1:]  # the gallery copy of the query is named, not counted
    assert found[0].image_id == "g09"
    texts = panel.locator("[data-testid=stCaptionContainer]").all_inner_texts()
    assert any("gallery image g09 (not counted)" in t for t in texts), texts
    captions = [c for c in texts if c.startswith("#")]
    assert [c.split(" · ")[1] for c in captions] == [str(w.image_id) for w in want]
    assert captions[0].split(" · ")[2] == f"{want[0].score:.3f}"
    page.wait_for_timeout(1000)
    page.screenshot(path=str(test_output_dir / "streamlit-similar.png"), full_page=True)


def test_batch_tab_in_browser(page, streamlit_server: StreamlitServer, test_output_dir: Path) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("tab", name="Batch").click()
    files = [streamlit_server.data.gallery / "g02.png", streamlit_server.data.not_image,
             streamlit_server.data.gallery / "g07.png"]
    page.locator(".st-key-batch-upload input[type=file]").set_input_files([str(p) for p in files])
    page.locator(".st-key-batch-run button").click()
    panel = page.get_by_role("tabpanel", name="Batch")
    panel.get_by_text("2 captioned, 1 failed").wait_for()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(test_output_dir / "streamlit-batch.png"), full_page=True)


def test_training_run_tab_in_browser(page, test_output_dir: Path) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("tab", name="Training run").click()
    panel = page.get_by_role("tabpanel", name="Training run")
    panel.get_by_text("Sample retrievals").wait_for()
    panel.get_by_text(re.compile(r"^query ")).first.wait_for()
    assert "backbone conv" in panel.inner_text()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(test_output_dir / "streamlit-run.png"), full_page=True)
