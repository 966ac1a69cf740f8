"""The Similar images tab of both apps: one query (an upload, a gallery image or words) -> what to show.

Both apps call :func:`search_gallery` and lay out its :class:`SimilarAnswer`: the same results,
the same one-line note (what was searched, how the index searches, the gallery copy of an
uploaded query), the same collapse warning and the same table rows (:func:`result_rows`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from core.errors import Img2TextError
from core.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from core.search import gallery_entry, mark_words, result_image
from core.workflows.indexes import IndexShelf
from core.workflows.similar_text import (
    NO_CAPTIONS,
    WORDS_SEARCH,
    text_answer,
    text_box_info,
    text_unavailable,
)
from core.workflows.similarity import find_neighbours
from core.workflows.uploads import Upload, load_upload

__all__ = ["NO_CAPTIONS", "WORDS_SEARCH", "SimilarAnswer", "gallery_picture", "hit_label", "hit_picture",
           "index_label", "labelled", "result_rows", "search_gallery", "shown_caption", "words_info",
           "words_unavailable"]

GENERATED = "(generated)"  # follows a caption a captioner wrote, apart from the data set's own
MARKS = ("[", "]")  # how a matched word is marked in plain text: "a [dog] on a [couch]"


def index_label(index: Any) -> str:
    """How ``index`` searches: ``"exact search"`` or ``"IVF1024,Flat · recall@10 0.96 (measured at build)"``."""
    if index.kind == "exact":
        return "exact search"
    return f"{index.kind} · recall@10 {index.recall_at_10:.2f} (measured at build)"


def words_unavailable(shelf: IndexShelf, choice: str | None) -> str | None:
    """Why the index ``choice`` cannot be searched by words (no captions nor a text tower, not
    loadable), or None."""
    try:
        return text_unavailable(shelf.get(choice))
    except (Img2TextError, ValueError, OSError) as exc:
        return str(exc)


def words_info(shelf: IndexShelf, choice: str | None) -> str:
    """The words box's help line: what index ``choice`` matches words by (meaning, captions, both)."""
    try:
        return text_box_info(shelf.get(choice))
    except (Img2TextError, ValueError, OSError) as exc:
        return str(exc)


def gallery_picture(shelf: IndexShelf, choice: str | None, image_id: str | None) -> str | Image.Image | None:
    """The picture of gallery image ``image_id`` of index ``choice`` (see :func:`hit_picture`):
    its file's path or its tar member; None for no or an unknown id, an index that does not
    load, or an image that is gone."""
    if image_id in (None, ""):
        return None
    try:
        entry = gallery_entry(shelf.get(choice), image_id)
    except (Img2TextError, ValueError, OSError):
        return None
    return hit_picture(entry)


@dataclass(frozen=True)
class SimilarAnswer:
    """One Similar images query's outcome, as both apps show it."""

    hits: list[Any]  # SearchResults, best first, ranks from 1 (empty on error)
    query: str = ""  # what was searched: "the uploaded image", "gallery image g09", 'the words "red"'
    same: Any = None  # the SearchResult of the gallery copy of an uploaded query (not counted), or None
    search: str = ""  # how results were ranked: index_label(index), or words search
    warning: str | None = None  # the index's collapse warning (image queries only)
    error: str | None = None  # why there are no results: the input, the reason and the fix
    text_mode: str | None = None  # for a words query: "semantic", "words" or "hybrid"
    wanted: int = 0  # the k asked for (words search says when fewer images match)

    @property
    def note(self) -> str:
        """One line above the results ("" on error)."""
        if self.error:
            return ""
        n = len(self.hits)
        if self.search == WORDS_SEARCH and n < self.wanted:  # only matches come back
            text = (f"No image matches {self.query}" if n == 0 else
                    f"Only {n} image{'s' if n > 1 else ''} match{'es' if n == 1 else ''} {self.query} "
                    f"({self.wanted} asked)")
        else:
            text = f"Top {n} for {self.query}" if self.hits else f"No results for {self.query}"
        text += f" · {self.search}." if self.search else "."
        if self.same is not None:
            text += f" The query is gallery image {self.same.image_id} (not counted)."
        return text


def search_gallery(
    shelf: IndexShelf, choice: str | None, k: float, *, upload: Upload | None = None,
    name: str | None = None, image_id: str | None = None, text: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES,
) -> SimilarAnswer:
    """Search index ``choice`` by words (``text``), else by a gallery image (``image_id``), else by an upload.

    Args:
        shelf, choice: the app's indexes and the chosen one (None: the first).
        k: results wanted (at least 1).
        upload, name: an uploaded file (path or bytes) and what the user calls it.
        image_id: a gallery image picked as the query; it is left out of its own results.
        text: words, searched in the index's default text mode (by meaning, by caption words
            (BM25) or both fused; ``SimilarAnswer.text_mode`` says which).
        max_pixels, max_bytes: the app's upload limits.

    Returns:
        The answer; a user's mistake (bad upload, unknown id, no query, an index without
        captions or that does not load) is its ``error``, never an exception.
    """
    k = max(1, int(k))
    try:
        index = shelf.get(choice)
        if text is not None:  # by meaning, caption words or both: core.workflows.similar_text
            answer = text_answer(index, text, k)
            if isinstance(answer, str):
                return SimilarAnswer([], error=answer)
            hits, search, mode = answer
            return SimilarAnswer(hits, f'the words "{" ".join(text.split())}"', search=search,
                                 text_mode=mode, wanted=k)
        label, warning = index_label(index), shelf.warning(choice)
        if image_id not in (None, ""):
            known = index.image_ids[index.row_of_id(image_id)]  # an indexed id only, never a file path
            return SimilarAnswer(index.find_similar(known, k=k), f"gallery image {image_id}",
                                 search=label, warning=warning)
        if upload is None:
            return SimilarAnswer([], error="no query: upload an image or pick one from the gallery")
        image = load_upload(upload, name, max_pixels=max_pixels, max_bytes=max_bytes)
        data = upload if isinstance(upload, bytes) else Path(upload).read_bytes()
        found = find_neighbours(index, image, data, k)
        return SimilarAnswer(found.hits, "the uploaded image", found.same, label, warning)
    except (Img2TextError, ValueError, OSError) as exc:  # stale index, missing checkpoint, bad file
        return SimilarAnswer([], error=str(exc))


def _fields(hit: Any) -> Mapping[str, Any]:
    return hit if isinstance(hit, Mapping) else hit.to_dict()


def labelled(caption: str, hit: Any) -> str:
    """``caption`` with ``" (generated)"`` when a captioner wrote it (not the data set)."""
    return f"{caption} {GENERATED}" if caption in (_fields(hit).get("generated") or []) else caption


def shown_caption(hit: Any, marks: tuple[str, str] = MARKS) -> str:
    """The caption to show for a result: the one that matched a words query, its matched words
    marked (``marks``: before, after), else the first caption; "" when it has none. A generated
    caption is labelled so (see :func:`labelled`)."""
    h = _fields(hit)
    if h.get("matched_caption"):
        marked = mark_words(h["matched_caption"], h.get("matched_words") or [], *marks)
        return f"{marked} {GENERATED}" if h["matched_caption"] in (h.get("generated") or []) else marked
    return labelled(h["captions"][0], h) if h["captions"] else ""


def hit_label(hit: Any, marks: tuple[str, str] = MARKS) -> str:
    """``"#1 · g03 · 0.912 · a red square"``: rank, id, score, and :func:`shown_caption`.

    Args:
        hit: a ``SearchResult`` or its ``to_dict()`` form (e.g. from the Gradio API's JSON).
        marks: how matched words are marked (``("**", "**")`` where the label is Markdown).
    """
    h = _fields(hit)
    label = f"#{h['rank']} · {h['image_id']} · {h['score']:.3f}"
    caption = shown_caption(h, marks)
    return label + (f" · {caption}" if caption else "")


def hit_picture(hit: Any) -> str | Image.Image | None:
    """What an app shows for a result: the path of its file (served from the index's image
    folders), its member of a webdataset tar shard (decoded), or None when it has moved.

    Args:
        hit: a ``SearchResult`` or its dict form (the Gradio API's, with ``image_path``).
    """
    h = dict(_fields(hit))
    path = str(h.get("image_path") or h["path"])
    if Path(path).is_file():
        return path
    return result_image({**h, "path": path})


def result_rows(hits: Iterable[Any]) -> list[dict[str, Any]]:
    """Table rows: rank, image id, score to 4 places, and the caption that matched a words query
    (words marked) else the first two captions joined by " / "."""
    return [{"rank": h["rank"], "image id": str(h["image_id"]), "score": round(h["score"], 4),
             "captions": shown_caption(h) if h.get("matched_caption") else
             " / ".join(labelled(c, h) for c in h["captions"][:2])}
            for h in map(_fields, hits)]
