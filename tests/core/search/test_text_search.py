"""Search by words over Tiny COCO's own captions (SQLite FTS5, BM25), file-backed and in memory."""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from core.datasets import find_dataset
from core.search import STOP_WORDS, EmbeddingIndex, QueryError, mark_words
from core.search.gallerydb import fts_query

HOSTILE = [
    "'; DROP TABLE images; --",
    '" OR 1=1 --',
    "dog AND cat NOT bird",
    "NEAR(man woman, 2)",
    "capt*",
    "text:man ^woman",
    "(((",
    '"unterminated',
    "\x00\x01 a man",
    "%_ LIKE '%'",
    "",
    "   ",
    "🙂 żółw",
]


@pytest.fixture(scope="module")
def coco_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[EmbeddingIndex, EmbeddingIndex]:
    data = os.environ.get("TINY_COCO_DIR")
    if not data:
        pytest.fail("TINY_COCO_DIR is not set; point it at the Tiny COCO folder")
    info = find_dataset(data, "val2017")
    vectors = np.random.default_rng(0).standard_normal((len(info.records), 16)).astype(np.float32)
    index = EmbeddingIndex.from_arrays(
        vectors, [r.image_id for r in info.records], paths=[r.path for r in info.records],
        captions=[r.captions for r in info.records], kind="exact",
    )
    folder = index.save(tmp_path_factory.mktemp("coco") / "idx")
    return index, EmbeddingIndex.load(folder)


def _words(captions: list[str]) -> str:
    return " ".join(dict.fromkeys(w.lower() for c in captions for w in re.findall(r"\w+", c)))


@pytest.mark.parametrize("which", [0, 1], ids=["in-memory", "loaded"])
def test_words_of_one_images_captions_find_it_first(coco_index, which) -> None:  # type: ignore[no-untyped-def]
    index = coco_index[which]
    assert index.has_captions
    misses = []
    for image_id, caps in zip(index.image_ids, index.captions, strict=True):
        top = index.find_text(_words(caps), k=3)
        assert top and [r.rank for r in top] == list(range(1, len(top) + 1))
        assert [r.score for r in top] == sorted((r.score for r in top), reverse=True)
        if top[0].image_id != image_id:
            misses.append(image_id)
    assert misses == [], f"not ranked first: {misses}"


def test_in_memory_and_file_backed_search_agree(coco_index) -> None:  # type: ignore[no-untyped-def]
    built, loaded = coco_index
    for query in ("a man riding a wave", "two dogs", "pizza on a table", "bus"):
        a, b = built.find_text(query, 5), loaded.find_text(query, 5)
        assert [r.image_id for r in a] == [r.image_id for r in b]
        assert [r.score for r in a] == pytest.approx([r.score for r in b])
        assert all(r.path == built.paths[built.row_of_id(r.image_id)] for r in a)


@pytest.mark.parametrize("query", HOSTILE)
def test_sql_and_fts_syntax_in_a_query_is_harmless(coco_index, query: str) -> None:  # type: ignore[no-untyped-def]
    index = coco_index[1]
    results = index.find_text(query, 5)  # no exception
    assert all(r.score > 0 for r in results)
    if not re.findall(r"\w", query):
        assert results == []
    # the database is untouched and still answers
    assert [r.image_id for r in index.find_text("a man riding a wave", 1)] == [
        r.image_id for r in coco_index[0].find_text("a man riding a wave", 1)
    ]
    with sqlite3.connect(index._gallery_file) as con:  # type: ignore[arg-type]
        assert con.execute("SELECT count(*) FROM images").fetchone()[0] == len(index)


def test_operators_are_words_not_syntax() -> None:
    assert fts_query('dog AND "cat" NEAR(x)*') == '"dog" OR "cat" OR "near" OR "x"'  # "and" is a common word
    assert fts_query("AND OR NOT") == '"and" OR "or" OR "not"'  # only common words: they are the query
    assert fts_query("'; --") is None


def _holds(caption: str, words: set[str]) -> bool:
    return bool(words & {w.lower() for w in re.findall(r"\w+", caption)})


@pytest.mark.parametrize("which", [0, 1], ids=["in-memory", "loaded"])
@pytest.mark.parametrize("query", ["a dog on a couch", "two dogs", "a man riding a wave", "pizza"])
def test_only_images_whose_captions_hold_a_query_word_come_back(coco_index, which, query: str) -> None:  # type: ignore[no-untyped-def]
    # Issue 24: "a dog on a couch", k=5 gave one BM25 hit and four images at 0.000 (matched by "a"/"on").
    index = coco_index[which]
    content = {w for w in query.split() if w not in STOP_WORDS}
    matching = {i for i, caps in zip(index.image_ids, index.captions, strict=True)
                if any(_holds(c, content) for c in caps)}
    got = index.find_text(query, 5)
    assert {r.image_id for r in got} <= matching and len(got) == min(5, len(matching))
    assert [r.score for r in got] == sorted((r.score for r in got), reverse=True) and all(r.score > 0.01 for r in got)
    for r in got:  # the caption shown is one that matched, with the words it holds
        assert r.matched_caption in r.captions and _holds(r.matched_caption, content)
        assert set(r.matched_words) == {w for w in content if _holds(r.matched_caption, {w})}
    if query == "a dog on a couch":
        assert len(got) == len(matching) < 5


def test_the_caption_that_matched_is_named_not_the_first(tmp_path: Path) -> None:
    x = np.eye(3, dtype=np.float32)
    caps = [["a red bus on a street", "a double decker parked by a curb"], ["a zebra on grass"], ["a bus stop"]]
    index = EmbeddingIndex.from_arrays(x, [1, 2, 3], captions=caps, kind="exact")
    loaded = EmbeddingIndex.load(index.save(tmp_path / "idx"))
    for idx in (index, loaded):
        top = idx.find_text("Décker CURB", 3)
        assert [r.image_id for r in top] == [1]
        assert top[0].matched_caption == "a double decker parked by a curb"
        assert top[0].matched_words == ["decker", "curb"]
        assert top[0].to_dict()["matched_caption"] == top[0].matched_caption
    assert mark_words("A Dog on a dogs' couch", ["dog", "couch"], "[", "]") == "A [Dog] on a dogs' [couch]"


def test_captions_from_a_file_are_generated_and_a_database_from_before_reads(tmp_path: Path) -> None:
    from core.search.gallerydb import read_gallery

    index = EmbeddingIndex.from_arrays(np.eye(2, dtype=np.float32), [1, 2], paths=["/p/a.jpg", "/p/b.jpg"],
                                       captions=[["a zebra"], []], kind="exact")
    out = tmp_path / "caps.jsonl"
    out.write_text('{"path": "/p/a.jpg", "caption": "a striped horse"}\n', encoding="utf-8")
    assert index.add_captions(out) == 1 and index.generated == [["a striped horse"], []]
    loaded = EmbeddingIndex.load(index.save(tmp_path / "idx"))
    assert loaded.generated == [["a striped horse"], []]
    assert loaded.find_text("horse", 1)[0].generated == ["a striped horse"]
    old = tmp_path / "old.sqlite"  # the images table before the generated column
    with sqlite3.connect(old) as con:
        con.execute("CREATE TABLE images (row INTEGER PRIMARY KEY, image_id, path TEXT NOT NULL, "
                    "relative_path TEXT, captions TEXT NOT NULL, categories TEXT NOT NULL, source TEXT)")
        con.execute("INSERT INTO images VALUES (0, 7, '/p/x.jpg', NULL, '[\"a cat\"]', '[]', NULL)")
    assert [(r.captions, r.generated) for r in read_gallery(old)] == [(["a cat"], [])]


def test_find_text_validates_k_and_captions_from_a_file(coco_index, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(QueryError, match="k must be"):
        coco_index[0].find_text("dog", 0)
    x = np.eye(3, dtype=np.float32)
    index = EmbeddingIndex.from_arrays(x, [1, 2, 3], paths=["/p/a.jpg", "/p/b.jpg", "/q/c.jpg"])
    assert not index.has_captions and index.find_text("zebra", 3) == []
    out = tmp_path / "caps.jsonl"
    out.write_text('{"path": "/p/a.jpg", "caption": "a zebra on grass"}\n'
                   '{"path": "b.jpg", "caption": "a red bus"}\n'
                   '{"path": "/q/c.jpg", "caption": "", "error": "unreadable"}\n', encoding="utf-8")
    assert index.add_captions(out) == 2  # b.jpg joined by its unique file name
    assert [r.image_id for r in index.find_text("zebra", 3)] == [1]
    assert [r.image_id for r in index.find_text("bus", 3)] == [2]
    folder = index.save(tmp_path / "idx")
    assert EmbeddingIndex.load(folder).find_text("red bus", 1)[0].captions == ["a red bus"]


def test_cli_search_by_text_shows_kind_and_recall(coco_index, capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import json

    from core.cli import main

    folder = coco_index[0].save(tmp_path / "idx")
    assert main(["ssl", "search", "--index", str(folder), "--text", "a man riding a wave",
                 "-k", "3", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    want = [r.image_id for r in coco_index[0].find_text("a man riding a wave", 3)]
    assert [r["image_id"] for r in out["results"]] == want
    assert out["kind"] == "exact" and out["recall_at_10"] == 1.0 and out["query"] == {"text": "a man riding a wave"}
    assert main(["ssl", "search", "--index", str(folder), "--text", "'; DROP TABLE images; --"]) == 0
    assert "index: exact, recall@10 1.000 (scores: BM25)" in capsys.readouterr().out
    assert main(["ssl", "search", "--index", str(folder), "--text", "a dog on a couch", "-k", "5"]) == 0
    text = capsys.readouterr().out
    hits = coco_index[0].find_text("a dog on a couch", 5)
    assert len(hits) < 5 and f"only {len(hits)} of the 5 asked match the words 'a dog on a couch'" in text
    assert "[dog]" in text or "[couch]" in text  # the caption that matched, its words marked
    assert len([line for line in text.splitlines() if line.strip().startswith(("1 ", "2 ", "3 ", "4 ", "5 "))]) == len(hits)
