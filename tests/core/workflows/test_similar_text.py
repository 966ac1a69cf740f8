"""The Similar tab over a pretrained-encoder index: upload queries and the words box's text modes."""

from __future__ import annotations

from pathlib import Path

import pytest

import core
from core.search import EmbeddingIndex
from core.workflows import IndexShelf, search_gallery, words_info, words_unavailable
from tests.browser.semantic import clip_index
from tests.browser.support import AppData


@pytest.fixture(scope="module")
def clip_shelf(apps_data: AppData, tiny_encoders: dict[str, Path],
               tmp_path_factory: pytest.TempPathFactory) -> tuple[IndexShelf, Path]:
    folder = clip_index(apps_data, tiny_encoders["clip"], tmp_path_factory.mktemp("clip") / "index")
    return IndexShelf([folder, apps_data.index]), folder


def test_words_box_answers_by_meaning_without_captions(clip_shelf: tuple[IndexShelf, Path]) -> None:
    shelf, folder = clip_shelf
    assert words_unavailable(shelf, None) is None and "meaning" in words_info(shelf, None)
    answer = search_gallery(shelf, None, 4, text="a green circle")
    want = EmbeddingIndex.load(folder).find_text("a green circle", 4, mode="semantic")
    assert answer.error is None and answer.text_mode == "semantic"
    assert [h.image_id for h in answer.hits] == [h.image_id for h in want]
    assert answer.note.startswith('Top 4 for the words "a green circle" · semantic search')
    # the SSL index beside it has captions only: words, as before
    words = search_gallery(shelf, str(shelf.paths[1]), 3, text="a green circle")
    assert words.text_mode == "words" and words.search == "caption words, BM25 relevance"


def test_an_upload_is_embedded_with_the_recorded_encoder(clip_shelf: tuple[IndexShelf, Path],
                                                         apps_data: AppData) -> None:
    shelf, folder = clip_shelf
    answer = search_gallery(shelf, None, 3, upload=str(apps_data.gallery / "g05.png"))
    assert answer.error is None and answer.same is not None and answer.same.image_id == "g05"
    want = EmbeddingIndex.load(folder).find_similar(core.load_image(apps_data.gallery / "g05.png"), k=4)
    assert [h.image_id for h in answer.hits] == [h.image_id for h in want if h.image_id != "g05"][:3]
