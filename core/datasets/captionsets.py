"""Captions kept as training tools keep them: sidecar files and Hugging Face imagefolder metadata.

* a **folder of sidecar files** (``photo.jpg`` + ``photo.txt``, or ``.caption``; kohya, OneTrainer,
  taggui, ``img2text caption --sidecar``): key = the image next to the caption file when there is
  one, else the caption file's path without its extension (mirrored trees hold no images);
* an **imagefolder** (``DIR/metadata.jsonl`` rows of ``file_name`` and ``text``; ``img2text caption
  --format imagefolder``): key = ``DIR/file_name``.

Read by ``img2text eval --captions`` and ``ssl embed --captions``, so hand-corrected captions can
be scored and searched. Read-only.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.errors import DatasetError
from core.images import IMAGE_EXTENSIONS

SIDECAR_EXTENSIONS = (".txt", ".caption")
IMAGEFOLDER_METADATA = "metadata.jsonl"
MAX_SIDECAR_BYTES = 1 << 20  # a caption file larger than this is not a caption


def is_caption_set(path: str | Path) -> bool:
    """Whether ``path`` is a folder (sidecars or an imagefolder) or an imagefolder ``metadata.jsonl``."""
    path = Path(path)
    return path.is_dir() or (path.name == IMAGEFOLDER_METADATA and _is_imagefolder(path))


def _is_imagefolder(meta: Path) -> bool:
    try:
        with meta.open(encoding="utf-8") as fh:
            first = fh.readline()
        return "file_name" in json.loads(first) if first.strip() else True
    except (OSError, ValueError, TypeError):
        return False


def read_caption_set(path: str | Path) -> dict[str, str]:
    """``{image path: caption}`` of a sidecar folder or an imagefolder (see the module docstring).

    Raises:
        DatasetError: not found, unreadable, or no caption in it.
    """
    path = Path(path)
    if path.is_dir() and (path / IMAGEFOLDER_METADATA).is_file():
        path = path / IMAGEFOLDER_METADATA
    if path.is_dir():
        found = read_sidecars(path)
    elif path.is_file():
        found = read_imagefolder(path)
    else:
        raise DatasetError(f"{path}: no such file or folder of captions")
    if not found:
        raise DatasetError(f"{path}: holds no captions (sidecar files {', '.join(SIDECAR_EXTENSIONS)} "
                           f"or an imagefolder {IMAGEFOLDER_METADATA})")
    return found


def read_imagefolder(meta: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        lines = meta.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{meta}: cannot read it as UTF-8 text ({exc})") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out[str(meta.parent / row["file_name"])] = str(row.get("text", ""))
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{meta}: not an imagefolder metadata.jsonl (line {number}: {exc}); each "
                               'line must be {"file_name": ..., "text": ...}') from exc
    return {k: v for k, v in out.items() if v}


def read_sidecars(folder: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for file in sorted(folder.rglob("*")):
        if file.suffix.lower() not in SIDECAR_EXTENSIONS or not file.is_file() or file.name.startswith("."):
            continue
        if file.stat().st_size > MAX_SIDECAR_BYTES:
            raise DatasetError(f"{file}: over {MAX_SIDECAR_BYTES:,} bytes, not a caption file")
        try:
            text = file.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{file}: not UTF-8 text ({exc}); save it as UTF-8") from exc
        if text:
            out[str(_image_of(file))] = text
    return out


def _image_of(caption_file: Path) -> Path:
    for ext in sorted(IMAGE_EXTENSIONS):
        for candidate in (caption_file.with_suffix(ext), caption_file.with_suffix(ext.upper())):
            if candidate.is_file():
                return candidate
    return caption_file.with_suffix("")
