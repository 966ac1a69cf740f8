"""Sidecar caption files: ``photo.jpg`` -> ``photo.txt`` next to it (or in a mirrored tree).

The layout kohya's sd-scripts, OneTrainer, taggui and joycaption's batch script read. Existing
caption files are skipped by default (never destroy a hand-edited caption); ``overwrite``
replaces them; ``append``/``prepend`` add the new caption after/before the old text, joined by
:data:`JOIN`, and do nothing when the old text already ends/starts with it (so a rerun after a
crash adds nothing twice). Every file is written atomically through ``core.fileio``; the
temporary files a killed run leaves (``.photo.txt.PID.HEX.tmp``) are removed by the next run.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from core.captioning.outputs import CaptionRecord
from core.errors import ConfigError
from core.fileio import atomic_write_text
from core.images import IMAGE_EXTENSIONS

SIDECAR_MODES = ("skip", "overwrite", "append", "prepend")
DEFAULT_CAPTION_EXTENSION = ".txt"
JOIN = ", "  # between an old caption and the added one (append/prepend)
_TEMP = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}\.tmp$")  # core.fileio's temporary-file names


def caption_extension(text: str) -> str:
    """``"txt"``/``".txt"`` -> ``".txt"``; refuses separators and image extensions.

    Raises:
        ConfigError: an extension that could replace an image or write elsewhere.
    """
    ext = text if text.startswith(".") else f".{text}"
    if len(ext) < 2 or "/" in ext or "\\" in ext or ext in (".", ".."):
        raise ConfigError(f"--caption-extension {text!r}: give a file extension such as .txt or .caption")
    if ext.lower() in IMAGE_EXTENSIONS:
        raise ConfigError(f"--caption-extension {text!r} is an image extension: the caption files "
                          "would replace images; use .txt or .caption")
    return ext


def mirror_name(path: Path, roots: Sequence[Path]) -> PurePosixPath:
    """``path`` relative to the deepest of ``roots`` holding it (else its bare file name)."""
    best: PurePosixPath | None = None
    for root in roots:
        try:
            rel = PurePosixPath(path.relative_to(root).as_posix())
        except ValueError:
            continue
        if best is None or len(rel.parts) < len(best.parts):
            best = rel
    return best if best is not None else PurePosixPath(path.name)


def input_roots(args: Iterable[str]) -> list[Path]:
    """The folder each command-line PATH is named relative to: itself (a folder) or its parent."""
    out = []
    for arg in args:
        path = Path(arg)
        out.append(path if path.is_dir() else path.parent)
    return out


def sidecar_path(image: Path, extension: str = DEFAULT_CAPTION_EXTENSION, *,
                 roots: Sequence[Path] = (), out_dir: Path | None = None) -> Path:
    """Where ``image``'s caption file goes: next to it, or under ``out_dir`` mirroring ``roots``."""
    if out_dir is None:
        return image.with_name(image.stem + extension)
    rel = mirror_name(image, roots)
    return out_dir.joinpath(*rel.parts).with_name(rel.stem + extension)


def combine(old: str | None, new: str, mode: str) -> str | None:
    """The file's new text, or ``None`` when it stays as it is."""
    if mode not in SIDECAR_MODES:
        raise ConfigError(f"sidecar mode {mode!r} is unknown; choose one of {', '.join(SIDECAR_MODES)}")
    if old is None or mode == "overwrite":
        return new
    if mode == "skip":
        return None
    kept = old.strip()
    if not kept:
        return new
    if mode == "append":
        return None if kept == new or kept.endswith(JOIN + new) else kept + JOIN + new
    return None if kept == new or kept.startswith(new + JOIN) else new + JOIN + kept


def write_sidecar(path: Path, caption: str, mode: str = "skip") -> bool:
    """Write (or add to) one caption file atomically; ``False`` when it was left as it was.

    Raises:
        OSError: the folder is not writable (the caller reports the input as failed).
    """
    try:
        old: str | None = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        old = None
    except UnicodeDecodeError:
        if mode != "overwrite":
            raise ConfigError(f"{path}: the caption file already there is not UTF-8; fix or remove "
                              "it, or replace it with --overwrite") from None
        old = None
    text = combine(old, caption, mode)
    if text is None:
        return False
    atomic_write_text(path, text + "\n")
    return True


def remove_stale_temps(folder: Path, extension: str) -> int:
    """Remove the temporary caption files a killed run left in ``folder``; returns how many."""
    removed = 0
    try:
        candidates = list(folder.glob(f".*{extension}.*.tmp"))
    except OSError:
        return 0
    for tmp in candidates:
        if _TEMP.match(tmp.name) and tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def sidecar_zip(records: Iterable[CaptionRecord], extension: str = DEFAULT_CAPTION_EXTENSION) -> bytes:
    """A zip of one caption file per successful record (``stem + extension``), for downloads.

    Names repeated in the batch get ``-2``, ``-3`` ... so no caption is lost; failed records have
    no file.
    """
    extension = caption_extension(extension)
    buf = io.BytesIO()
    used: set[str] = set()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for record in records:
            if not record.ok:
                continue
            stem = PurePosixPath(record.path.replace("\\", "/")).stem or "image"
            name, n = stem + extension, 1
            while name in used:
                n += 1
                name = f"{stem}-{n}{extension}"
            used.add(name)
            zf.writestr(name, record.caption + "\n")
    return buf.getvalue()
