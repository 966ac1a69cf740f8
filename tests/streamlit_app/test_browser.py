"""A real Chromium drives ``streamlit run``: caption an upload, search similar images."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

import core
from tests.browser.support import LONG_EXAMPLE, page_session, streamlit_choose, tall_screenshot
from tests.streamlit_app.conftest import StreamlitServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture()
def page(browser, streamlit_server: StreamlitServer):  # type: ignore[no-untyped-def]
    yield from page_session(browser, streamlit_server.url, ".st-key-caption-upload input[type=file]",
                            height=1000, state="attached")


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
    tall_screenshot(page, test_output_dir / "streamlit-caption.png")


def test_new_settings_caption_on_the_button_only(page, streamlit_server: StreamlitServer) -> None:  # type: ignore[no-untyped-def]
    """As in the Gradio app: an upload captions at once; new settings caption on Caption."""
    image = streamlit_server.data.good
    page.locator(".st-key-caption-upload input[type=file]").set_input_files(str(image))
    caption = page.locator("#caption-text")
    caption.wait_for()
    first = caption.inner_text()
    page.get_by_text("Generation settings").first.click()
    page.locator(".st-key-caption-max-tokens input[type=range]").focus()
    page.keyboard.press("Home")  # 1 new token
    page.locator(".st-key-caption-max-tokens [data-testid=stSliderThumbValue]").get_by_text("1", exact=True).wait_for()
    page.wait_for_timeout(2000)
    assert caption.inner_text() == first  # the settings change alone did not caption
    want = core.caption(image, model=str(streamlit_server.model), device="cpu", max_new_tokens=1)
    assert want != first
    page.locator(".st-key-caption-run button").click()
    page.wait_for_function("w => document.querySelector('#caption-text')?.innerText === w", arg=want)


def test_example_names_and_top_p_label_are_not_cut(page) -> None:  # type: ignore[no-untyped-def]
    label = page.locator(".st-key-example-3 [data-testid=stMarkdownContainer]")
    assert label.inner_text() == LONG_EXAMPLE
    # the wrapping style arrives with the page's other elements, maybe after the button's first
    # paint: wait (bounded) until the name fits; a label that stays cut fails the wait
    page.wait_for_function("e => e.scrollWidth <= e.clientWidth + 1 && e.scrollHeight <= e.clientHeight + 1",
                           arg=label.element_handle(), timeout=15_000)
    page.get_by_text("Generation settings").first.click()
    panel = page.get_by_role("tabpanel", name="Caption")
    top_p = panel.get_by_text("Top-p", exact=True).bounding_box()
    beams = panel.get_by_text("Beams", exact=True).bounding_box()
    assert top_p is not None and beams is not None and top_p["height"] <= beams["height"] + 1


def test_bad_upload_shows_error_in_browser(page, streamlit_server: StreamlitServer, test_output_dir: Path) -> None:  # type: ignore[no-untyped-def]
    page.locator(".st-key-caption-upload input[type=file]").set_input_files(
        str(streamlit_server.data.not_image))
    alert = page.locator("[data-testid=stAlertContentError]").first
    alert.wait_for()
    assert "not a supported image" in alert.inner_text()
    tall_screenshot(page, test_output_dir / "streamlit-caption-error.png")


def test_similar_search_in_browser(page, streamlit_server: StreamlitServer, test_output_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from core.search import EmbeddingIndex

    page.get_by_role("tab", name="Similar images").click()
    query = streamlit_server.data.gallery / "g09.png"
    page.locator(".st-key-similar-upload input[type=file]").set_input_files(str(query))
    panel = page.get_by_role("tabpanel", name="Similar images")
    # The server has the upload (a click while the file is still in flight searches without it).
    panel.get_by_text("Query: the uploaded image g09.png").wait_for()
    page.locator(".st-key-similar-run button").click()
    panel.get_by_text(re.compile(r"^#5 · ")).wait_for()
    found = EmbeddingIndex.load(streamlit_server.data.index).find_similar(core.load_image(query), k=6)
    want = found[1:]  # the gallery copy of the query is named, not counted
    assert found[0].image_id == "g09"
    texts = panel.locator("[data-testid=stCaptionContainer]").all_inner_texts()
    assert any("gallery image g09 (not counted)" in t for t in texts), texts
    captions = [c for c in texts if c.startswith("#")]
    assert [c.split(" · ")[1] for c in captions] == [str(w.image_id) for w in want]
    assert captions[0].split(" · ")[2] == f"{want[0].score:.3f}"
    assert any("Top 5 for the uploaded image · exact search." in t for t in texts), texts


def _results_are(panel, hits: list) -> None:  # type: ignore[no-untyped-def,type-arg]
    """Wait (up to 30 s: a rerun's stale elements go at its end) until the result grid shows
    exactly these results' labels, in order."""
    want = [f"#{h.rank} · {h.image_id} · {h.score:.3f}" for h in hits]
    deadline = time.monotonic() + 30
    while True:
        texts = panel.locator("[data-testid=stCaptionContainer]").all_inner_texts()
        got = [" · ".join(t.split(" · ")[:3]) for t in texts if t.startswith("#")]
        if got == want or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert got == want, texts


def test_picked_gallery_image_is_the_query(page, streamlit_server: StreamlitServer, test_output_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from core.search import EmbeddingIndex

    index = EmbeddingIndex.load(streamlit_server.data.index)
    page.get_by_role("tab", name="Similar images").click()
    panel = page.get_by_role("tabpanel", name="Similar images")
    page.locator(".st-key-similar-find input").fill("g09.png")
    page.locator(".st-key-similar-find input").press("Enter")
    page.locator(".st-key-similar-id").get_by_text("Gallery image (1 shown)").wait_for()
    streamlit_choose(page, "similar-id", "g09", "g09 · g09.png")
    panel.get_by_text("Query: gallery image g09").wait_for()  # shown in the query slot
    page.locator(".st-key-similar-run button").click()
    panel.get_by_text("Top 5 for gallery image g09 · exact search.").wait_for()
    _results_are(panel, index.find_similar("g09", k=5))
    # k changed, Find similar again: the picked image is still the query
    page.locator(".st-key-similar-k input[type=range]").focus()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    page.locator(".st-key-similar-k [data-testid=stSliderThumbValue]").get_by_text("3", exact=True).wait_for()
    page.locator(".st-key-similar-run button").click()
    panel.get_by_text("Top 3 for gallery image g09 · exact search.").wait_for()
    _results_are(panel, index.find_similar("g09", k=3))
    tall_screenshot(page, test_output_dir / "streamlit-similar.png")


def test_find_images_by_words_in_browser(page, streamlit_server: StreamlitServer) -> None:  # type: ignore[no-untyped-def]
    from core.search import EmbeddingIndex

    index = EmbeddingIndex.load(streamlit_server.data.index)
    words = " ".join(index.captions[4][0].split()[:3])
    page.get_by_role("tab", name="Similar images").click()
    panel = page.get_by_role("tabpanel", name="Similar images")
    page.locator(".st-key-similar-words input").fill(words)
    page.locator(".st-key-similar-words input").press("Enter")  # Enter submits the form
    want = index.find_text(words, 5)
    panel.get_by_text(f'Top {len(want)} for the words "{words}" · caption words, BM25 relevance.').wait_for()
    _results_are(panel, want)


def test_batch_tab_in_browser(page, streamlit_server: StreamlitServer, test_output_dir: Path) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("tab", name="Batch").click()
    gallery = streamlit_server.data.gallery
    files = [gallery / "g02.png", streamlit_server.data.not_image, gallery / "g07.png",
             *(gallery / f"g0{i}.png" for i in (0, 1, 3, 4)), streamlit_server.data.too_many_pixels]
    page.locator(".st-key-batch-upload input[type=file]").set_input_files([str(p) for p in files])
    page.locator(".st-key-batch-run button").click()
    panel = page.get_by_role("tabpanel", name="Batch")
    panel.get_by_text("6 captioned, 2 failed").wait_for()
    page.wait_for_timeout(1500)
    # every row in view (the last one was hidden) and no column cut off to the right
    table = panel.locator(".dvn-scroller")
    assert table.evaluate("e => [e.scrollHeight <= e.clientHeight + 1, e.scrollWidth <= e.clientWidth + 1]") == \
        [True, True]
    tall_screenshot(page, test_output_dir / "streamlit-batch.png")


def test_training_run_tab_in_browser(page, test_output_dir: Path) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("tab", name="Training run").click()
    panel = page.get_by_role("tabpanel", name="Training run")
    panel.get_by_text("Sample retrievals").wait_for()
    panel.get_by_text(re.compile(r"^query ")).first.wait_for()
    assert "backbone conv" in panel.inner_text()
    page.wait_for_timeout(1500)
    tall_screenshot(page, test_output_dir / "streamlit-run.png")


BAR = re.compile(r"Model ready: |Loading the captioning model ")
INT8_STAGE = re.compile(r"\(int8\)?(: (reading weights|quantising to int8), \d+ s|…)|"
                        r"\(int8(; compiling the encoder in the background, \d+ s)?\)")


def test_choosing_int8_shows_its_load_in_the_bar_then_captions_like_core(page, streamlit_server: StreamlitServer) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    bar = page.get_by_text(BAR).first
    page.get_by_text(re.compile("^Model ready: ")).first.wait_for()
    assert "int8" not in bar.inner_text()  # float32, the app's setting
    page.get_by_text("Generation settings").first.click()
    precision = page.locator(".st-key-caption-precision")
    radio = precision.get_by_role("radio", name="int8")
    for _ in range(3):  # a click landing while the page still reruns (a loaded machine) can be lost
        precision.get_by_text("int8", exact=True).click()
        try:
            expect(radio).to_be_checked(timeout=20_000)
            break
        except AssertionError:
            continue
    expect(radio).to_be_checked(timeout=1)
    page.get_by_text(re.compile(r"\(int8")).first.wait_for(timeout=180_000)  # the bar follows the choice
    shown = page.get_by_text(BAR).first.inner_text()
    assert INT8_STAGE.search(shown), shown
    page.get_by_text(re.compile(r"^Model ready: .* \(int8\)$")).first.wait_for(timeout=600_000)
    captioner = core.get_captioner(str(streamlit_server.model), device="cpu", dtype="int8")
    assert captioner.wait_compiled(600)  # compare compiled with compiled
    image = streamlit_server.data.good
    page.locator(".st-key-caption-upload input[type=file]").set_input_files(str(image))
    page.locator("#caption-text").wait_for()
    assert page.locator("#caption-text").inner_text() == captioner.caption(image, max_new_tokens=15)


def test_started_with_int8_loads_int8_at_start_up(tiny_model_dir: Path) -> None:
    """``IMG2TEXT_PRECISION=int8``: the server's first load (before any browser) is the int8 model."""
    import select

    from tests.browser.support import free_port, python, start_server, stop_server
    from tests.streamlit_app.conftest import APP

    port = free_port()
    cmd = [python(), "-m", "streamlit", "run", str(APP), "--server.port", str(port), "--server.headless", "true",
           "--browser.gatherUsageStats", "false", "--", "--model", str(tiny_model_dir), "--device", "cpu"]
    proc = start_server(cmd, f"http://127.0.0.1:{port}/_stcore/health", env={"IMG2TEXT_PRECISION": "int8"})
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 300
        while not any("Model ready" in line for line in lines) and time.monotonic() < deadline:
            if select.select([proc.stdout], [], [], 1)[0]:
                lines.append(proc.stdout.readline())  # type: ignore[union-attr]
        loads = [line for line in lines if line.startswith("image-to-text: ")]
        assert loads and all("int8" in line for line in loads), lines
        assert any("quantising to int8" in line for line in loads), loads
    finally:
        stop_server(proc)


def test_picking_a_florence_folder_shows_its_task_choice_and_captions_like_core(page, streamlit_server: StreamlitServer,  # type: ignore[no-untyped-def]
                                                                                test_output_dir: Path) -> None:
    """As in the Gradio app: a typed local folder of another family is loaded (the bar says so),
    Florence-2 shows its task choice instead of a prompt box, and the caption equals core's."""
    from tests.fixtures.tiny_families import tiny_family_model

    florence = str(tiny_family_model("florence2"))
    page.get_by_text(re.compile("^Model ready: ")).first.wait_for()
    assert page.locator("[class*=st-key-caption-prompt]").count() == 0  # ViT-GPT2: no prompt box
    box = page.locator(".st-key-caption-model input")
    box.fill(florence)
    box.press("Enter")
    page.get_by_text(re.compile("^Model ready: " + re.escape(florence))).first.wait_for(timeout=300_000)
    task = page.locator("[class*=st-key-caption-task]")
    task.wait_for()
    assert task.locator("input").input_value() == "<CAPTION>"  # the family's default task
    image = streamlit_server.data.good
    page.locator(".st-key-caption-upload input[type=file]").set_input_files(str(image))
    page.locator("#caption-text").wait_for()
    want = core.caption(image, model=florence, device="cpu", prompt="<CAPTION>", num_beams=4, max_new_tokens=15)
    assert page.locator("#caption-text").inner_text() == want
    page.wait_for_timeout(1000)
    tall_screenshot(page, test_output_dir / "streamlit-caption-florence.png")
