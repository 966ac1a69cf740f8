"""Plain-text tables for the terminal: aligned columns whatever the length of paths."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PATH_WIDTH = 40  # longer paths lose their middle to an ellipsis; the file name stays readable

# The definition core.search.metrics implements (issue #11), printed under `img2text ssl eval`,
# with how the two usual tools divide the same sum (their numbers are not comparable with ours).
MAP_AT_K_FORMULA = (
    "mAP@k = mean over the queries (with at least one relevant image) of AP@k; AP@k = S / min(k, R), "
    "S = sum of precision@i over the ranks i <= k that hold a relevant image, R = the query's "
    "relevant images in the gallery. torchmetrics RetrievalMAP(top_k=k) divides S by the relevant "
    "images found in the top k (so it is >= ours); trec_eval's map cut at k divides S by R (<= ours)."
)


def ellipsize_middle(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters by replacing its middle with ``...``.

    Keeps more of the end (a path's file name) than of the start.
    """
    if len(text) <= width:
        return text
    if width <= 3:
        return text[-width:]
    head = (width - 3) // 3
    tail = width - 3 - head
    return f"{text[:head]}...{text[len(text) - tail:]}"


def results_table(results: Sequence[Any], path_width: int = PATH_WIDTH) -> str:
    """``SearchResult``s as rank, score, image id, path (middle-ellipsized), and the caption that
    matched a words query (its words in brackets), else the first caption; "(generated)" follows
    a caption a captioner wrote.

    Every column but the caption (last, free length) has one width for all rows.
    """
    paths = [ellipsize_middle(str(r.path), path_width) for r in results]
    id_w = max([len("image id"), *(len(str(r.image_id)) for r in results)])
    path_w = max([len("path"), *(len(p) for p in paths)])
    lines = [f"{'rank':>4} {'score':>6}  {'image id':<{id_w}}  {'path':<{path_w}}  caption"]
    for r, path in zip(results, paths, strict=True):
        plain = caption = r.captions[0] if r.captions else ""
        if getattr(r, "matched_caption", None):
            from core.search import mark_words  # torch-free --help: core.search loads only here

            plain, caption = r.matched_caption, mark_words(r.matched_caption, r.matched_words, "[", "]")
        if plain and plain in getattr(r, "generated", []):
            caption += " (generated)"  # a captioner wrote it, not the data set
        lines.append(f"{r.rank:>4} {r.score:>6.3f}  {r.image_id!s:<{id_w}}  {path:<{path_w}}  {caption}")
    return "\n".join(line.rstrip() for line in lines)
