"""Chromium finds images by words in the Streamlit app over a CLIP index: semantic mode, as core ranks."""

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
from tests.streamlit_app.conftest import APP
from tests.streamlit_app.test_browser import _results_are

pytestmark = [pytest.mark.browser, pytest.mark.slow]
WORDS = "a red square"


@pytest.fixture(scope="module")
def clip_server(tiny_model_dir: Path, tiny_encoders: dict[str, Path], apps_data: AppData,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    index = clip_index(apps_data, tiny_encoders["clip"], tmp_path_factory.mktemp("clip") / "index")
    port = free_port()
    proc = start_server([python(), "-m", "streamlit", "run", str(APP), "--server.port", str(port),
                         "--server.headless", "true", "--browser.gatherUsageStats", "false", "--",
                         "--model", str(tiny_model_dir), "--device", "cpu", "--index", str(index)],
                        f"http://127.0.0.1:{port}/_stcore/health")
    yield f"http://127.0.0.1:{port}", index
    stop_server(proc)


def test_find_by_words_answers_by_meaning(browser, clip_server: tuple[str, Path]) -> None:  # type: ignore[no-untyped-def]
    from core.search import EmbeddingIndex

    url, folder = clip_server
    want = EmbeddingIndex.load(folder).find_text(WORDS, 5, mode="semantic")
    for page in page_session(browser, url, ".st-key-caption-upload input[type=file]", height=1000,
                             state="attached"):
        page.get_by_role("tab", name="Similar images").click()
        panel = page.get_by_role("tabpanel", name="Similar images")
        page.locator(".st-key-similar-words input").fill(WORDS)
        page.locator(".st-key-similar-words input").press("Enter")
        panel.get_by_text(f'Top {len(want)} for the words "{WORDS}" · semantic search: meaning, through '
                          "the encoder's text tower (cosine).").wait_for()
        _results_are(panel, want)
