"""search_gallery (upload, gallery id, words), its note and warning, result rows, labels, batch texts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import core
from core.captioning import CaptionRecord
from core.search import EmbeddingIndex, SearchResult
from core.workflows import (
    NO_CAPTIONS,
    IndexShelf,
    batch_problem,
    batch_summary,
    collapse_warning,
    gallery_picture,
    hit_label,
    index_label,
    result_rows,
    search_gallery,
    words_unavailable,
)
from tests.browser.support import AppData


@pytest.fixture(scope="module")
def shelf(apps_data: AppData) -> IndexShelf:
    return IndexShelf([apps_data.index, apps_data.collapsed])


def test_by_gallery_id_is_find_similar_with_the_index_kind(shelf: IndexShelf, apps_data: AppData) -> None:
    want = EmbeddingIndex.load(apps_data.index).find_similar("g04", k=3)
    answer = search_gallery(shelf, None, 3, image_id="g04")
    assert answer.error is None and answer.hits == want and answer.warning is None
    assert answer.note == "Top 3 for gallery image g04 · exact search."


def test_by_upload_path_or_bytes_names_the_gallery_copy(shelf: IndexShelf, apps_data: AppData) -> None:
    path = apps_data.gallery / "g05.png"
    plain = EmbeddingIndex.load(apps_data.index).find_similar(core.load_image(path), k=4)
    for upload in (str(path), path.read_bytes()):
        answer = search_gallery(shelf, str(apps_data.index), 3, upload=upload, name="g05.png")
        assert answer.same.image_id == "g05" == plain[0].image_id
        assert [h.image_id for h in answer.hits] == [h.image_id for h in plain[1:]]
        assert answer.note.endswith("The query is gallery image g05 (not counted).")


def test_words_fewer_matches_than_k_are_said_and_the_matched_caption_shown(tmp_path: Path) -> None:
    x = np.eye(3, dtype=np.float32)
    caps = [["a cat on a chair", "a dog on an old couch"], ["a bus on a road"], ["a tree in a park"]]
    folder = EmbeddingIndex.from_arrays(x, ["c", "b", "t"], captions=caps, kind="exact").save(tmp_path / "i")
    answer = search_gallery(IndexShelf([folder]), None, 5, text="a dog on a couch")
    assert [h.image_id for h in answer.hits] == ["c"]  # "a" and "on" make no other image a match
    assert answer.note == 'Only 1 image matches the words "a dog on a couch" (5 asked) · caption words, BM25 relevance.'
    assert hit_label(answer.hits[0]).endswith(" · a [dog] on an old [couch]")
    assert hit_label(answer.hits[0].to_dict(), ("**", "**")).endswith(" · a **dog** on an old **couch**")
    assert result_rows(answer.hits)[0]["captions"] == "a [dog] on an old [couch]"


def test_generated_captions_are_labelled_wherever_captions_are_shown(tmp_path: Path) -> None:
    from core.workflows import gallery_matches

    index = EmbeddingIndex.from_arrays(np.eye(2, dtype=np.float32), ["a", "b"], paths=["/p/a.jpg", "/p/b.jpg"],
                                       captions=[["a red bus"], ["a green tree"]], kind="exact")
    (tmp_path / "caps.jsonl").write_text('{"path": "/p/b.jpg", "caption": "a tall bus stop"}\n', encoding="utf-8")
    index.add_captions(tmp_path / "caps.jsonl")
    folder = index.save(tmp_path / "i")
    hits = search_gallery(IndexShelf([folder]), None, 5, text="bus").hits
    labels = {h.image_id: hit_label(h) for h in hits}
    assert labels["a"].endswith(" · a red [bus]")  # the data set's caption: no label
    assert labels["b"].endswith(" · a tall [bus] stop (generated)")
    assert result_rows([h for h in hits if h.image_id == "b"])[0]["captions"] == "a tall [bus] stop (generated)"
    by_id = search_gallery(IndexShelf([folder]), None, 1, image_id="a").hits[0]
    assert result_rows([by_id])[0]["captions"] == "a green tree / a tall bus stop (generated)"
    assert dict((i, label) for label, i in gallery_matches(EmbeddingIndex.load(folder), "bus"))["b"].endswith(
        "a tall [bus] stop (generated)")


def test_by_words_is_find_text(shelf: IndexShelf, apps_data: AppData) -> None:
    index = EmbeddingIndex.load(apps_data.index)
    words = " ".join(index.captions[7][0].split()[:3])
    answer = search_gallery(shelf, None, 4, text=f"  {words} ")
    assert answer.error is None and answer.hits == index.find_text(words, 4) and answer.hits
    n = len(answer.hits)
    begin = f"Top {n} for" if n == 4 else f"Only {n} image{'s' if n > 1 else ''} match{'es' if n == 1 else ''}"
    assert answer.note == (f'{begin} the words "{words}"{"" if n == 4 else " (4 asked)"} · caption words, '
                           "BM25 relevance.")
    assert search_gallery(shelf, None, 4, text="zzz-no-such-word").note.startswith(
        'No image matches the words "zzz-no-such-word"')
    assert "no words" in search_gallery(shelf, None, 4, text=" ").error


def test_an_index_without_captions_says_why_words_cannot_search(shelf: IndexShelf, apps_data: AppData) -> None:
    assert words_unavailable(shelf, None) is None
    assert words_unavailable(shelf, str(apps_data.collapsed)) == NO_CAPTIONS
    assert "--captions FILE" in NO_CAPTIONS
    answer = search_gallery(shelf, str(apps_data.collapsed), 3, text="green square")
    assert answer.hits == [] and answer.error == NO_CAPTIONS and answer.note == ""
    assert "not one of the app's indexes" in (words_unavailable(shelf, "/etc") or "")


def test_a_collapsed_index_answers_with_its_warning(shelf: IndexShelf, apps_data: AppData) -> None:
    collapsed = EmbeddingIndex.load(apps_data.collapsed)
    assert collapse_warning(collapsed) is not None
    answer = search_gallery(shelf, str(apps_data.collapsed), 3, image_id="g02")
    assert answer.hits == collapsed.find_similar("g02", k=3)
    assert answer.warning == collapse_warning(collapsed) and "collapsed" in answer.warning


def test_mistakes_are_the_answers_error(shelf: IndexShelf, apps_data: AppData) -> None:
    assert "unknown image id 'nope'" in search_gallery(shelf, None, 3, image_id="nope").error
    bad = search_gallery(shelf, None, 3, upload=str(apps_data.not_image), name="notes.jpg")
    assert bad.error.startswith("notes.jpg: not a supported image")
    huge = search_gallery(shelf, None, 3, upload=str(apps_data.too_many_pixels), max_pixels=1000)
    assert huge.error.startswith("huge-pixels.png: image is 2000x1000")
    assert search_gallery(shelf, None, 3).error == "no query: upload an image or pick one from the gallery"
    assert "not one of the app's indexes" in search_gallery(shelf, "/etc", 3, image_id="g01").error
    assert len(search_gallery(shelf, None, 0, image_id="g01").hits) == 1  # k below 1 means 1


def test_index_label_names_the_backend_and_its_measured_recall() -> None:
    vectors = np.random.default_rng(0).standard_normal((3000, 16)).astype("float32")
    ids = [f"i{n}" for n in range(3000)]
    assert index_label(EmbeddingIndex.from_arrays(vectors[:50], ids[:50], kind="exact")) == "exact search"
    ivf = EmbeddingIndex.from_arrays(vectors, ids, kind="IVF16,Flat")
    assert 0 < ivf.recall_at_10 <= 1
    assert index_label(ivf) == f"IVF16,Flat · recall@10 {ivf.recall_at_10:.2f} (measured at build)"


def test_gallery_picture(shelf: IndexShelf, apps_data: AppData, tmp_path: Path) -> None:
    assert gallery_picture(shelf, None, "g07") == str(apps_data.gallery / "g07.png")
    assert gallery_picture(shelf, None, "nope") is None and gallery_picture(shelf, None, None) is None
    assert gallery_picture(shelf, "/etc", "g07") is None
    gone = EmbeddingIndex.from_arrays(np.eye(2, dtype="float32"), ["a", "b"], paths=[tmp_path / "a.png", "b.png"])
    gone.save(tmp_path / "idx")
    assert gallery_picture(IndexShelf([tmp_path / "idx"]), None, "a") is None  # the file is not there


def test_rows_and_labels_from_results_or_their_json() -> None:
    hits = [SearchResult(1, "g03", Path("/x/g03.png"), 0.912345, ["a red square", "red", "third"]),
            SearchResult(2, 17, Path("/x/17.png"), 0.5, [])]
    rows = [{"rank": 1, "image id": "g03", "score": 0.9123, "captions": "a red square / red"},
            {"rank": 2, "image id": "17", "score": 0.5, "captions": ""}]
    assert result_rows(hits) == result_rows([h.to_dict() for h in hits]) == rows
    assert [hit_label(h) for h in hits] == ["#1 · g03 · 0.912 · a red square", "#2 · 17 · 0.500"]
    assert hit_label(hits[0].to_dict()) == hit_label(hits[0])


def test_batch_limit_and_summary() -> None:
    assert batch_problem(0, 5) == "Upload one or more images first."
    assert batch_problem(5, 5) is None
    assert batch_problem(6, 5) == "6 files: the limit is 5 per run; caption them in runs of at most 5."
    records = [CaptionRecord("a.png", "a cat"), CaptionRecord("b.png", "", "broken"), CaptionRecord("c", "x")]
    assert batch_summary(records) == "2 captioned, 1 failed"


def test_hit_picture_is_the_file_else_the_tar_member_else_nothing(apps_data: AppData, tmp_path: Path) -> None:
    """What both apps show per result: a gallery file's path, a tar member's pixels, or nothing."""
    from core.workflows import hit_picture
    from tests.browser.support import tar_index

    on_disk = EmbeddingIndex.load(apps_data.index).find_similar("g04", k=2)
    assert [hit_picture(h) for h in on_disk] == [str(h.path) for h in on_disk]
    folder = tar_index(apps_data, tmp_path)
    shards = EmbeddingIndex.load(folder)
    picked = gallery_picture(IndexShelf([folder]), None, "g04")  # a picked query shows too
    assert np.array_equal(np.asarray(picked), np.asarray(core.load_image(apps_data.gallery / "g04.png")))
    hits = shards.find_similar("g04", k=3)
    assert hits and all(not Path(h.path).is_file() for h in hits)  # tar members: no file
    for hit in hits:
        want = np.asarray(core.load_image(apps_data.gallery / f"{hit.image_id}.png"))
        assert np.array_equal(np.asarray(hit_picture(hit)), want)
        api_form = {"image_path": str(hit.path), **{k: v for k, v in hit.to_dict().items() if k != "path"}}
        assert np.array_equal(np.asarray(hit_picture(api_form)), want)  # the Gradio API's dict
    (tmp_path / "shards" / "00000.tar").unlink()
    gone = [h for h in hits if h.source.endswith("00000.tar")]
    assert gone and all(hit_picture(h) is None for h in gone)
