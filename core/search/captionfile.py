"""Captions for a gallery from an ``img2text caption`` output file, joined by image path.

Reads the line formats that command writes: ``jsonl`` (``{"path", "caption"[, "error"]}``),
``csv`` (``path,caption,error`` with a header) and ``text`` (``PATH<TAB>CAPTION``), chosen by
the file's suffix (``.jsonl``, ``.csv``, anything else is text). Records with an error are left
out. A folder of sidecar caption files or an imagefolder ``metadata.jsonl`` is read by
``core.datasets.read_caption_set``. Read-only: the file is never modified.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

from core.datasets import is_caption_set, read_caption_set
from core.search.errors import IndexConfigError

MAX_CAPTION_FILE_BYTES = 2 << 30  # 2 GiB of captions is ~20M images; beyond that, shard it


def read_caption_file(path: str | Path) -> dict[str, str]:
    """``{path as written: caption}`` from a caption output file.

    Raises:
        FileNotFoundError: no such file.
        IndexConfigError: too large, not UTF-8, or a line that is not a record of its format.
    """
    path = Path(path)
    if is_caption_set(path):  # a folder of sidecar files, or an imagefolder's metadata.jsonl
        return read_caption_set(path)
    if path.stat().st_size > MAX_CAPTION_FILE_BYTES:
        raise IndexConfigError(f"{path}: larger than {MAX_CAPTION_FILE_BYTES:,} bytes; split it")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            rows = [json.loads(line) for line in text.split("\n") if line.strip()]
            pairs = [(r["path"], r.get("caption", "")) for r in rows if not r.get("error")]
        elif path.suffix == ".csv":
            reader = csv.DictReader(io.StringIO(text, newline=""))
            pairs = [(r["path"], r["caption"]) for r in reader if not r.get("error")]
        else:
            pairs = [tuple(line.rsplit("\t", 1)) for line in text.split("\n") if line]  # type: ignore[misc]
            if any(len(p) != 2 for p in pairs):
                raise ValueError("a line has no tab between path and caption")
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IndexConfigError(
            f"{path}: not an `img2text caption` output in {path.suffix or 'text'} format ({exc}); "
            "write it with --format jsonl, csv or text"
        ) from exc
    return {str(p): str(c) for p, c in pairs if c}


def match_captions(paths: list[Path], captions: dict[str, str]) -> list[str | None]:
    """Per gallery path, its caption: by the path as written, else resolved, else by file name
    when that name is unique in both the gallery and the file, else (a caption file with no
    image next to it, keyed without extension) by a stem unique in both."""
    resolved = {str(Path(p).resolve()): c for p, c in captions.items()}
    names: dict[str, list[str]] = {}
    stems: dict[str, list[str]] = {}  # sidecars in a mirrored tree have no image next to them
    for p, c in captions.items():
        names.setdefault(Path(p).name, []).append(c)
        if not Path(p).suffix:
            stems.setdefault(Path(p).name, []).append(c)
    gallery_names = [Path(p).name for p in paths]
    in_gallery = Counter(gallery_names)
    in_gallery_stems = Counter(Path(p).stem for p in paths)
    out: list[str | None] = []
    for gp, name in zip(paths, gallery_names, strict=True):
        hit = captions.get(str(gp)) or resolved.get(str(Path(gp).resolve()))
        if hit is None and len(names.get(name, [])) == 1 and in_gallery[name] == 1:
            hit = names[name][0]
        stem = Path(gp).stem
        if hit is None and len(stems.get(stem, [])) == 1 and in_gallery_stems[stem] == 1:
            hit = stems[stem][0]
        out.append(hit)
    return out
