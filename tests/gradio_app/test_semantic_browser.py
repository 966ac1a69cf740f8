"""Chromium finds images by words in the Gradio app over a CLIP index: semantic mode, as core ranks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.semantic import clip_index
from tests.browser.support import (
    AppData,
    free_port,
    page_session,
    python,
    start_server,
    stop_server,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
WORDS = "a red square"


@pytest.fixture(scope="module")
def clip_server(tiny_model_dir: Path, tiny_encoders: dict[str, Path], apps_data: AppData,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    index = clip_index(apps_data, tiny_encoders["clip"], tmp_path_factory.mktemp("clip") / "index")
    port = free_port()
    proc = start_server([python(), "-m", "gradio_app", "--model", str(tiny_model_dir), "--device", "cpu",
                         "--index", str(index), "--port", str(port)], f"http://127.0.0.1:{port}/")
    yield f"http://127.0.0.1:{port}", index
    stop_server(proc)


def test_find_by_words_answers_by_meaning(browser, clip_server: tuple[str, Path]) -> None:  # type: ignore[no-untyped-def]
    from core.search import EmbeddingIndex

    url, folder = clip_server
    want = [str(h.image_id) for h in EmbeddingIndex.load(folder).find_text(WORDS, 5, mode="semantic")]
    for page in page_session(browser, url, "#caption-button"):
        page.get_by_role("tab", name="Similar images").click()
        box = page.locator("#similar-words textarea, #similar-words input").first
        assert box.is_enabled()  # no captions, but a text tower
        assert "matched by meaning" in page.locator("#similar-words").inner_text()
        box.fill(WORDS)
        box.press("Enter")
        page.wait_for_function("t => document.querySelector('#similar-status').innerText.includes(t)",
                               arg=f'Top 5 for the words "{WORDS}" · semantic search')
        table = page.locator("#similar-table")
        table.get_by_text(want[-1], exact=True).wait_for()
        text = table.inner_text()
        positions = [text.index(w) for w in want]
        assert positions == sorted(positions), text  # in core's semantic order
