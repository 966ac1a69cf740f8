"""A real Chromium drives the Gradio page: caption an upload, search similar images, see errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import core
from core.workflows import hit_label
from tests.browser.support import page_session, tall_screenshot
from tests.gradio_app.conftest import GradioServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture()
def page(browser, gradio_server: GradioServer):  # type: ignore[no-untyped-def]
    yield from page_session(browser, gradio_server.url, "#caption-button")


CAPTION = "#caption-output textarea"


def _caption_in_page(page, image: Path) -> str:  # type: ignore[no-untyped-def]
    """Upload ``image``: it captions at once, with no click (as in the Streamlit app)."""
    page.locator("#caption-image input[type=file]").set_input_files(str(image))
    page.wait_for_selector("#caption-image img")
    page.wait_for_function(f"document.querySelector('{CAPTION}').value.length > 0")
    return page.locator(CAPTION).input_value()


# every gallery label shows in full under its picture: no ellipsis, nothing outside its tile
LABELS_IN_FULL = """sel => [...document.querySelectorAll(sel + ' .caption-label')].map(l => {
    const tile = l.closest('.thumbnail-item').getBoundingClientRect(), box = l.getBoundingClientRect();
    return l.scrollWidth <= l.clientWidth + 1 && l.scrollHeight <= l.clientHeight + 1
        && box.bottom <= tile.bottom + 1 && box.right <= tile.right + 1; })"""


def test_caption_in_browser_equals_core(page, gradio_server: GradioServer, test_output_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from core.search import EmbeddingIndex

    image = gradio_server.data.good
    text = _caption_in_page(page, image)
    assert text == core.caption(image, model=str(gradio_server.model), device="cpu")
    # with an index loaded, the nearest gallery images follow the caption, their labels in full
    page.wait_for_selector("#caption-neighbours img")
    hits = EmbeddingIndex.load(gradio_server.data.index).find_similar(core.load_image(image), k=4)
    labels = page.locator("#caption-neighbours .caption-label").all_inner_texts()
    assert labels == [hit_label(h) for h in hits]
    assert all(" · " in label and label.split(" · ")[-1] for label in labels), labels  # score and caption
    assert page.evaluate(LABELS_IN_FULL, "#caption-neighbours") == [True] * len(hits)
    page.wait_for_timeout(500)
    tall_screenshot(page, test_output_dir / "gradio-caption.png")


def test_new_settings_caption_on_the_button_only(page, gradio_server: GradioServer) -> None:  # type: ignore[no-untyped-def]
    image = gradio_server.data.good
    first = _caption_in_page(page, image)
    page.get_by_text("Generation settings").first.click()
    tokens = page.locator("input[aria-label='number input for Max new tokens']").first
    tokens.fill("2")
    tokens.press("Enter")
    page.wait_for_timeout(2000)
    assert page.locator(CAPTION).input_value() == first  # a settings change alone does not caption
    page.click("#caption-button")
    want = core.caption(image, model=str(gradio_server.model), device="cpu", max_new_tokens=2)
    assert want != first
    page.wait_for_function("w => document.querySelector('#caption-output textarea').value === w", arg=want)


def test_bad_upload_shows_message_in_page(page, gradio_server: GradioServer, test_output_dir: Path) -> None:  # type: ignore[no-untyped-def]
    page.locator("#caption-image input[type=file]").set_input_files(str(gradio_server.data.too_many_pixels))
    error = page.locator("#caption-status .i2t-error")
    error.wait_for()  # the upload alone captions: no click
    assert "over the limit" in error.inner_text()
    tall_screenshot(page, test_output_dir / "gradio-caption-error.png")
    # the page stays usable: a good image captions next
    assert _caption_in_page(page, gradio_server.data.good)
    page.wait_for_function("!document.querySelector('#caption-status .i2t-error')")


def test_unusable_upload_leaves_no_broken_image(page, gradio_server: GradioServer) -> None:  # type: ignore[no-untyped-def]
    page.locator("#caption-image input[type=file]").set_input_files(str(gradio_server.data.not_image))
    page.locator("#caption-status .i2t-error").get_by_text("not a supported image").wait_for()
    page.wait_for_function("!document.querySelector('#caption-image img')")  # the slot is empty again
    page.get_by_role("tab", name="Similar images").click()
    page.locator("#similar-image input[type=file]").set_input_files(str(gradio_server.data.not_image))
    page.locator("#similar-status .i2t-error").get_by_text("not a supported image").wait_for()
    page.wait_for_function("!document.querySelector('#similar-image img')")


def test_top_p_label_on_one_line(page) -> None:  # type: ignore[no-untyped-def]
    for tab, nth in (("Caption", 0), ("Batch", 1)):
        page.get_by_role("tab", name=tab).click()
        page.get_by_text("Generation settings").nth(nth).click()
        top_p = page.get_by_text("Top-p", exact=True).nth(nth).bounding_box()
        beams = page.get_by_text("Beams", exact=True).nth(nth).bounding_box()
        assert top_p is not None and beams is not None
        assert top_p["height"] <= beams["height"] + 1, (tab, top_p, beams)  # one line, as "Beams"


def test_similar_search_in_browser(page, gradio_server: GradioServer, test_output_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from core.search import EmbeddingIndex

    page.get_by_role("tab", name="Similar images").click()
    query = gradio_server.data.gallery / "g06.png"
    page.locator("#similar-image input[type=file]").set_input_files(str(query))
    page.wait_for_selector("#similar-image img")
    page.click("#similar-button")
    page.wait_for_selector("#similar-results img")
    found = EmbeddingIndex.load(gradio_server.data.index).find_similar(core.load_image(query), k=6)
    page.wait_for_function("document.querySelectorAll('#similar-results .caption-label').length === 5")
    assert page.evaluate(LABELS_IN_FULL, "#similar-results") == [True] * 5
    assert found[0].image_id == "g06"
    want = found[1:]  # the gallery copy of the query is named, not counted
    assert "The query is gallery image g06 (not counted)" in page.locator("#similar-status").inner_text()
    table = page.locator("#similar-table")
    table.get_by_text(str(want[-1].image_id), exact=True).wait_for()
    text = table.inner_text()
    positions = [text.index(str(w.image_id)) for w in want]
    assert positions == sorted(positions), text  # shown in rank order
    assert str(round(want[1].score, 4)) in text


def _status_has(page, text: str) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_function("t => document.querySelector('#similar-status').innerText.includes(t)", arg=text)


def _table_shows(page, hits: list) -> None:  # type: ignore[no-untyped-def,type-arg]
    """Wait until the results table lists exactly these results' ids, in order."""
    want = [str(h.image_id) for h in hits]
    page.wait_for_function("w => JSON.stringify([...document.querySelectorAll("
                           "'#similar-table [role=gridcell][data-col=\"1\"]')].map(c => c.innerText.trim()))"
                           " === JSON.stringify(w)", arg=want, timeout=20_000)


def test_picked_gallery_image_is_the_query(page, gradio_server: GradioServer, test_output_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from core.search import EmbeddingIndex

    index = EmbeddingIndex.load(gradio_server.data.index)
    page.get_by_role("tab", name="Similar images").click()
    page.locator("#similar-find input, #similar-find textarea").first.fill("g09.png")
    page.locator("#similar-pick input").click()
    page.get_by_role("option", name="g09 · g09.png", exact=False).first.click()
    page.wait_for_selector("#similar-image img")  # the picked image is in the query slot
    assert page.locator("#similar-picked").count() == 0  # no separate "Picked" box any more
    page.click("#similar-button")
    _status_has(page, "Top 5 for gallery image g09 · exact search.")
    _table_shows(page, index.find_similar("g09", k=5))
    # changing k and pressing Find similar again searches the picked image again (it said "no query")
    page.locator("#similar-k input[type=number]").fill("3")
    page.locator("#similar-k input[type=number]").press("Enter")
    page.click("#similar-button")
    _status_has(page, "Top 3 for gallery image g09")
    _table_shows(page, index.find_similar("g09", k=3))
    page.wait_for_timeout(500)
    tall_screenshot(page, test_output_dir / "gradio-similar.png")
    # an upload replaces the picked image as the query
    page.locator("#similar-image input[type=file]").set_input_files(str(gradio_server.data.good))
    page.wait_for_function("(document.querySelector('#similar-image img')?.src || 'g09.png').endsWith('query.png')")
    # ...and the Gallery image choice no longer shows the picked image
    page.wait_for_function("document.querySelector('#similar-pick input').value === ''")
    page.click("#similar-button")
    _status_has(page, "Top 3 for the uploaded image")
    _table_shows(page, index.find_similar(core.load_image(gradio_server.data.good), k=3))


def test_find_images_by_words(page, gradio_server: GradioServer) -> None:  # type: ignore[no-untyped-def]
    from core.search import EmbeddingIndex

    index = EmbeddingIndex.load(gradio_server.data.index)
    words = " ".join(index.captions[4][0].split()[:3])
    page.get_by_role("tab", name="Similar images").click()
    box = page.locator("#similar-words textarea, #similar-words input").first
    assert box.is_enabled()  # this index has captions
    box.fill(words)
    box.press("Enter")
    _status_has(page, f'for the words "{words}" · caption words, BM25 relevance')
    want = index.find_text(words, 5)
    assert want
    _table_shows(page, want)
    page.wait_for_selector("#similar-results img")


def test_training_run_tab(page, test_output_dir: Path) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("tab", name="Training run").click()
    page.wait_for_selector("#run-loss img")
    page.wait_for_function("document.querySelectorAll('#run-samples img').length >= 15")  # 3 queries, 4 each
    assert "backbone conv" in page.locator("#run-summary").inner_text()
    assert page.locator("#run-samples-note").inner_text().strip() == ""  # this run's index has not collapsed
    page.wait_for_timeout(500)
    tall_screenshot(page, test_output_dir / "gradio-run.png")


def test_batch_tab_table(page, gradio_server: GradioServer, test_output_dir: Path) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("tab", name="Batch").click()
    files = [gradio_server.data.gallery / "g02.png", gradio_server.data.not_image,
             gradio_server.data.gallery / "g07.png"]
    page.locator("#batch-files input[type=file]").set_input_files([str(p) for p in files])
    page.wait_for_function("document.querySelector('#batch-files').innerText.includes('g07')")
    page.click("#batch-button")
    table = page.locator("#batch-table")
    page.wait_for_function(
        "document.querySelector('#batch-table').innerText.includes('not a supported image')")
    want = core.caption(files[0], model=str(gradio_server.model), device="cpu")
    assert want in table.inner_text()
    assert page.locator("#batch-table img:visible").count() == 2  # thumbnails in the rows of the two images
    assert page.locator(".progress-text, .eta-bar").count() == 0  # one progress display, now gone
    page.wait_for_timeout(500)
    tall_screenshot(page, test_output_dir / "gradio-batch.png")


def test_model_bar_example_click_and_greyed_out_controls(page, gradio_server: GradioServer) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_function("document.querySelector('#model-status').innerText.includes('Model ready')")
    # sampling-only controls are greyed out under beam search, as in the Streamlit app
    page.get_by_text("Generation settings").first.click()
    assert page.locator("input[aria-label='range slider for Temperature']").first.is_disabled()
    assert not page.locator("input[aria-label='range slider for Beams']").first.is_disabled()
    # clicking an example captions it, as in the Streamlit app
    page.locator("button.gallery-item").first.click()
    page.wait_for_function("document.querySelector('#caption-output textarea').value.length > 0")
    want = core.caption(gradio_server.data.examples / "example0.png", model=str(gradio_server.model), device="cpu")
    assert page.locator("#caption-output textarea").input_value() == want


@pytest.mark.parametrize(("name", "close"), [("bomb-100000x100000.png", "Escape"), ("text.jpg", "click elsewhere")])
def test_gallery_list_closed_unchosen_then_a_hostile_upload(page, gradio_server: GradioServer, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                            name: str, close: str) -> None:
    """Issue 23 item 1: open the "Gallery image" list, close it without choosing, upload a file the
    app must refuse, press Find similar: the app's own reason, never Gradio's decoding toast."""
    import re

    from tests.reliability.corpus import BY_NAME

    path = tmp_path / name
    path.write_bytes(BY_NAME[name].data)
    page.get_by_role("tab", name="Similar images").click()
    page.locator("#similar-pick input").click()
    page.get_by_role("option").first.wait_for()
    if close == "Escape":
        page.keyboard.press("Escape")
    else:
        page.locator("#similar-status").click(force=True)
    page.get_by_role("option").first.wait_for(state="hidden")
    page.locator("#similar-image input[type=file]").set_input_files(str(path))
    error = page.locator("#similar-status .i2t-error")
    error.wait_for()  # the app refuses the upload itself as it arrives (handlers.query_changed)
    text = error.inner_text()
    assert name in text and re.search(BY_NAME[name].expect, text), text
    page.click("#similar-button")  # and a search after it hands nothing to Gradio's decoding either
    page.wait_for_timeout(1000)  # a toast would have shown by now
    assert "Could not preprocess" not in page.locator("body").inner_text()
    assert page.locator("[data-testid=toast-body]").count() == 0


INT8_BAR = r"/\(int8\)?(: (reading weights|quantising to int8), \d+ s|…)|\(int8(; compiling the encoder in the background, \d+ s)?\)/"


def test_choosing_int8_shows_its_load_in_the_bar_then_captions_like_core(page, gradio_server: GradioServer) -> None:  # type: ignore[no-untyped-def]
    bar = "document.querySelector('#model-status').innerText"
    page.wait_for_function(f"{bar}.includes('Model ready')")
    assert "int8" not in page.locator("#model-status").inner_text()  # float32, the app's setting
    page.get_by_text("Generation settings").first.click()
    page.locator("input[type=radio][value='int8']").first.check()
    page.wait_for_function(f"{bar}.includes('int8')")  # the bar follows the choice at once
    shown = page.locator("#model-status").inner_text()
    assert page.evaluate(f"t => {INT8_BAR}.test(t)", shown), shown  # a stage, e.g. "quantising to int8, 1 s"
    # the timer keeps the bar current until the compiled encoder is in
    page.wait_for_function(f"{bar}.match(/Model ready: .* \\(int8\\)$/m)", timeout=600_000)
    captioner = core.get_captioner(str(gradio_server.model), device="cpu", dtype="int8")
    assert captioner.wait_compiled(600)  # compare compiled with compiled
    image = gradio_server.data.good
    assert _caption_in_page(page, image) == captioner.caption(image)


def test_picking_a_blip_folder_shows_its_prompt_box_and_captions_like_core(page, gradio_server: GradioServer,  # type: ignore[no-untyped-def]
                                                                           test_output_dir: Path) -> None:
    """The model picker takes a typed local folder of another family: its prompt box appears
    (ViT-GPT2 has none), the bar shows its load, and the caption equals core's with that prompt."""
    from tests.fixtures.tiny_families import tiny_family_model

    blip = str(tiny_family_model("blip"))
    bar = "document.querySelector('#model-status').innerText"
    page.wait_for_function(f"{bar}.includes('Model ready')")
    assert not page.locator("#caption-prompt").is_visible()  # ViT-GPT2 captions without a prompt
    box = page.locator("#caption-model input")
    box.fill(blip)
    box.press("Enter")
    page.locator("#caption-prompt textarea").wait_for()  # BLIP: an optional prefix
    assert not page.locator("#caption-task").is_visible()
    page.wait_for_function(f"t => {bar}.includes('Model ready: ' + t)", arg=blip, timeout=300_000)
    page.locator("#caption-prompt textarea").fill("a photo of")
    image = gradio_server.data.good
    text = _caption_in_page(page, image)
    want = core.caption(image, model=blip, device="cpu", prompt="a photo of", num_beams=4, max_new_tokens=15)
    assert text == want and text.startswith("a photo of")  # BLIP keeps its prefix
    page.wait_for_timeout(500)
    tall_screenshot(page, test_output_dir / "gradio-caption-blip.png")
