"""Hugging Face ``imagefolder`` output: ``DIR/metadata.jsonl`` rows of ``file_name`` and ``text``.

``datasets.load_dataset("imagefolder", data_dir=DIR)`` then yields each image with a ``text``
column. ``file_name`` is relative to ``DIR``: an image already inside ``DIR`` is named where it
is; one that lives elsewhere is copied (or hard-linked, ``link=True``) into ``DIR`` mirroring
the source tree. The image is in place (atomically) before its row is appended, so every row
names a whole file; rows are appended one ``write`` + flush each, like ``--format jsonl``, and
``--resume`` skips the images whose ``file_name`` is already listed.

Failed inputs get no row: ``datasets`` would try to open them. They are reported on stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import IO

from core.errors import ConfigError
from core.fileio import atomic_write

METADATA_NAME = "metadata.jsonl"


def _inside(path: Path, folder: Path) -> PurePosixPath | None:
    try:
        return PurePosixPath(path.resolve().relative_to(folder.resolve()).as_posix())
    except ValueError:
        return None


def file_name_for(image: Path, out_dir: Path, mirrored: PurePosixPath) -> PurePosixPath:
    """The row's ``file_name``: where ``image`` is inside ``out_dir``, else its mirrored name."""
    inside = _inside(image, out_dir)
    if inside is not None:
        return inside
    if mirrored.is_absolute() or ".." in mirrored.parts:
        raise ConfigError(f"{image}: cannot name it inside {out_dir} ({mirrored})")
    return mirrored


def place_image(image: Path, out_dir: Path, file_name: PurePosixPath, *, link: bool = False) -> None:
    """Copy or hard-link ``image`` to ``out_dir/file_name`` atomically (nothing when it is there).

    Raises:
        ConfigError: ``link`` across file systems (hard links cannot).
        OSError: the image cannot be read or the folder written.
    """
    dest = out_dir.joinpath(*file_name.parts)
    if _inside(image, out_dir) == file_name:
        return
    if not link:
        atomic_write(dest, lambda tmp: shutil.copyfile(image, tmp))
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.link.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(image, tmp)
    except OSError as exc:
        if exc.errno == 18:  # EXDEV
            raise ConfigError(f"{image}: cannot hard-link into {out_dir} (another file system); "
                              "drop --link to copy the images instead") from exc
        raise
    os.replace(tmp, dest)


def format_row(file_name: PurePosixPath, caption: str) -> str:
    return json.dumps({"file_name": str(file_name), "text": caption}, ensure_ascii=False) + "\n"


def read_listed(out_dir: Path) -> set[str]:
    """The ``file_name`` of every complete row of ``DIR/metadata.jsonl`` (a torn last line is cut)."""
    path = out_dir / METADATA_NAME
    if not path.is_file():
        return set()
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with open(path, "r+b") as fh:
            fh.truncate(len(complete))
    try:
        return {json.loads(line)["file_name"] for line in complete.decode("utf-8").split("\n") if line}
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: cannot resume, not an imagefolder metadata.jsonl ({exc}); "
                          "start over with --overwrite or write elsewhere") from exc


def open_metadata(out_dir: Path, *, append: bool) -> IO[str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return open(out_dir / METADATA_NAME, "a" if append else "w", encoding="utf-8", newline="")
