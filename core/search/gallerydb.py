"""Gallery metadata in SQLite (stdlib ``sqlite3``): one row per image plus an FTS5 caption table.

Tables: ``images(row, image_id, path, relative_path, captions, categories, source, generated,
sha256, file)`` (captions, categories and ``generated``, the captions a captioner wrote rather than
the data set, as JSON lists; ``image_id`` keeps its int or text type; ``sha256`` the image's
encoded bytes as indexed; ``file`` the image file's path relative to the index folder, so an index
works from any working directory and after its folder moves together with its images; databases
written before ``generated``, ``sha256`` or ``file`` read as all reference captions and with those
empty) and ``captions``, an FTS5
table whose rowid is the image's row and whose text is its captions joined. Text search ranks
with FTS5's BM25. Every value reaches SQLite as a bound parameter; the words of a text query
are each quoted as an FTS5 string, so FTS operators, quotes and SQL text in a query are just words.

An image matches a words query when one of its captions holds one of the query's words, not
counting common function words ("a", "on", "the"; :data:`STOP_WORDS`) unless the query has
nothing else; :func:`best_caption` names the caption that matched and :func:`mark_words`
marks its words for display.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.search.errors import IndexFormatError

_SCHEMA = """
CREATE TABLE images (row INTEGER PRIMARY KEY, image_id, path TEXT NOT NULL, relative_path TEXT,
                     captions TEXT NOT NULL, categories TEXT NOT NULL, source TEXT, generated TEXT,
                     sha256 TEXT, file TEXT);
CREATE VIRTUAL TABLE captions USING fts5(text, tokenize = 'unicode61 remove_diacritics 2');
"""
_WORD = re.compile(r"\w+", re.UNICODE)
_MAX_QUERY_WORDS = 64  # a longer query is cut: BM25 over 64 words already ranks well
#: Words that match almost every caption, so they make no image a match (FTS5 gives a word in
#: more than half the rows a near-zero weight: "a dog on a couch" matched every "a" at 0.000).
STOP_WORDS = frozenset(
    "a an the and or not of on in at to by for from with without into onto over under up down "
    "is are was were be been being it its this that these those there here some any as".split()
)


@dataclass(frozen=True)
class GalleryRow:
    """One image's metadata (what ``EmbeddingIndex`` keeps per embedding row)."""

    image_id: int | str
    path: str
    relative_path: str | None
    captions: list[str]
    categories: list[int]
    source: str | None = None
    generated: list[str] = field(default_factory=list)  # which of ``captions`` a captioner wrote
    sha256: str | None = None  # of the image's encoded bytes when it was indexed (None: not known)


def index_relative(path: str | Path, base: Path) -> str | None:
    """``path`` relative to the index folder ``base`` (``../images/a.jpg``) when it is an image
    file, else ``None`` (a tar member's or byte row's key, or a file gone since)."""
    if not Path(path).is_file():
        return None
    try:
        return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(base))).as_posix()
    except ValueError:  # another drive (Windows): no relative form
        return None


def write_gallery(path: Path, rows: Iterable[GalleryRow], *, batch: int = 10_000,
                  base: Path | None = None) -> int:
    """Create the database at ``path`` (an empty or new file) from ``rows`` in order; returns the count.

    Rows are inserted in batches, so an iterator over a huge gallery is never held at once.
    ``base`` is the index folder: each image file's path is also recorded relative to it.
    """
    con = sqlite3.connect(path)
    try:
        # The file is staged and renamed only once complete, so no journal is needed.
        con.executescript("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;" + _SCHEMA)
        count = 0
        pending: list[tuple[Any, ...]] = []
        for row in rows:
            pending.append((count, row.image_id, str(row.path), row.relative_path,
                            json.dumps(list(row.captions), ensure_ascii=False),
                            json.dumps([int(c) for c in row.categories]), row.source,
                            json.dumps(list(row.generated), ensure_ascii=False), row.sha256,
                            index_relative(row.path, base) if base is not None else None))
            count += 1
            if len(pending) >= batch:
                _insert(con, pending)
                pending = []
        _insert(con, pending)
        con.commit()
    finally:
        con.close()
    return count


def _insert(con: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    con.executemany("INSERT INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    con.executemany("INSERT INTO captions(rowid, text) VALUES (?, ?)",
                    [(r[0], "\n".join(json.loads(r[4]))) for r in rows])


def _connect_ro(path: Path) -> sqlite3.Connection:
    # immutable=1: the file is content-addressed and never changes, so no locks or journal,
    # which also lets a read-only folder be searched.
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True,
                           check_same_thread=False)


def read_gallery(path: Path, base: Path | None = None) -> Iterator[GalleryRow]:
    """Every row, in row order; with ``base`` (the index folder), an image file's path is the
    recorded one relative to it, made absolute.

    Raises:
        IndexFormatError: not a gallery database.
    """
    con = _connect_ro(path)
    try:
        have = {r[1] for r in con.execute("PRAGMA table_info(images)")}
        extra = ", ".join(c if c in have else "NULL" for c in ("generated", "sha256", "file"))  # older databases
        cursor = con.execute("SELECT row, image_id, path, relative_path, captions, categories, source, "
                             f"{extra} FROM images ORDER BY row")
        root = os.path.abspath(base) if base is not None else None
        for expected, (row, image_id, p, rel, caps, cats, source, gen, sha, file) in enumerate(cursor):
            if row != expected:
                raise IndexFormatError(f"{path}: image rows are not numbered 0..N-1; rebuild the index")
            if file is not None and root is not None:
                p = os.path.normpath(os.path.join(root, file))
            yield GalleryRow(image_id, p, rel, list(json.loads(caps)), [int(c) for c in json.loads(cats)],
                             source, list(json.loads(gen)) if gen else [], sha)
    except (sqlite3.DatabaseError, ValueError, TypeError) as exc:
        raise IndexFormatError(f"{path}: unreadable gallery database ({exc}); rebuild the index") from exc
    finally:
        con.close()


def fold(word: str) -> str:
    """A word as FTS5's ``unicode61 remove_diacritics 2`` tokenizer compares it: case and accents dropped."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def query_words(text: str) -> list[str]:
    """The words a words query searches for, folded, in order, each once: those of ``text``
    that are not :data:`STOP_WORDS`, or all of them when every one is."""
    words = list(dict.fromkeys(fold(w) for w in _WORD.findall(text)))[:_MAX_QUERY_WORDS]
    content = [w for w in words if w not in STOP_WORDS]
    return content or words


def fts_query(text: str) -> str | None:
    """An FTS5 query that ORs the :func:`query_words` of ``text``, each quoted; ``None`` when it has no words.

    ``\\w+`` words contain no quote, so wrapping each in double quotes makes it a plain string:
    ``AND``, ``NEAR``, ``*``, ``:``, ``^``, parentheses or ``'; DROP TABLE`` stay literal words.
    """
    words = query_words(text)
    return " OR ".join(f'"{w}"' for w in words) if words else None


def best_caption(captions: Iterable[str], words: Iterable[str]) -> tuple[str | None, list[str]]:
    """The caption holding the most of ``words`` (folded query words; the first on a tie) and
    those of ``words`` it holds, in query order; ``(None, [])`` when none holds any."""
    wanted = list(words)
    best: tuple[str | None, list[str]] = (None, [])
    for caption in captions:
        have = {fold(w) for w in _WORD.findall(caption)}
        found = [w for w in wanted if w in have]
        if len(found) > len(best[1]):
            best = (caption, found)
    return best


def mark_words(caption: str, words: Iterable[str], before: str = "**", after: str = "**") -> str:
    """``caption`` with each word that is one of ``words`` (folded) wrapped in ``before``/``after``."""
    wanted = set(words)
    return _WORD.sub(lambda m: f"{before}{m.group(0)}{after}" if fold(m.group(0)) in wanted
                     else m.group(0), caption)


class CaptionSearch:
    """BM25 search over the FTS5 caption table of a gallery database (file or in memory)."""

    def __init__(self, path: Path | None = None, rows: Iterable[GalleryRow] | None = None) -> None:
        """Open ``path`` read-only, or build an in-memory database from ``rows``."""
        if path is not None:
            self._con = _connect_ro(path)
        else:
            self._con = sqlite3.connect(":memory:", check_same_thread=False)
            self._con.executescript(_SCHEMA)
            pending = [(i, r.image_id, str(r.path), r.relative_path, json.dumps(list(r.captions)),
                        "[]", r.source, "[]", r.sha256, None) for i, r in enumerate(rows or [])]
            _insert(self._con, pending)

    def has_captions(self) -> bool:
        """True when at least one image has a non-empty caption."""
        return self._con.execute("SELECT 1 FROM captions WHERE text != '' LIMIT 1").fetchone() is not None

    def find(self, text: str, k: int) -> list[tuple[int, float]]:
        """Up to ``k`` ``(row, score)`` pairs, best first; score = -BM25 (higher is better)."""
        query = fts_query(text)
        if query is None:
            return []
        cursor = self._con.execute(
            "SELECT rowid, bm25(captions) FROM captions WHERE captions MATCH ? "
            "ORDER BY bm25(captions), rowid LIMIT ?", (query, int(k)))
        return [(int(row), -float(score)) for row, score in cursor]

    def close(self) -> None:
        """Close the connection."""
        self._con.close()
