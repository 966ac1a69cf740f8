"""Crash-safe file writes and content hashes: the one place every package writes files through.

A reader of a file written here sees the old file or the new one, never a partial one: the bytes
go to a temporary file in the same folder, are fsync'ed, then ``os.replace`` makes them live.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO


def atomic_write(dest: str | os.PathLike, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp_path)`` to fill a temporary file, then move it over ``dest`` atomically.

    Args:
        dest: the file to create or replace; its folder is created if missing.
        write: writes the new content to the path it is given (e.g. ``safetensors.save_file``).

    Raises:
        Whatever ``write`` raises; the temporary file is removed and ``dest`` is left as it was.
    """
    dest = Path(dest)
    tmp = _new_temp(dest)
    try:
        write(tmp)
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())  # the bytes must be on disk before the rename makes them live
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(dest.parent)


def _new_temp(dest: Path) -> Path:
    """A new empty ``.NAME.PID.HEX.tmp`` beside ``dest`` (its folder created), to fill and rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    # os.open with 0o666 honours the umask (mkstemp would force 0600 on shared folders).
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return tmp


@contextlib.contextmanager
def atomic_open(dest: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file to fill bit by bit that appears at ``dest`` whole, or not at all.

    For output too large to build in memory first (a tar shard of a thousand images): the bytes
    go to a temporary ``.NAME.PID.HEX.tmp`` in the same folder, and leaving the ``with`` block
    normally fsyncs it and moves it over ``dest``; an exception removes it and leaves ``dest`` as
    it was. A process killed inside the block leaves only the temporary file behind.
    """
    dest = Path(dest)
    tmp = _new_temp(dest)
    fh = open(tmp, "wb")  # closed by the with block below
    try:
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(dest.parent)


def atomic_write_bytes(dest: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``dest`` atomically (old-or-new under a crash)."""
    atomic_write(dest, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(dest: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``dest`` atomically, with no newline translation."""
    atomic_write_bytes(dest, text.encode("utf-8"))


def atomic_write_json(dest: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON (plus a final newline) atomically."""
    atomic_write_bytes(dest, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make renames inside ``folder`` durable; a no-op where folders can't be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data`` (the content hash used to recognise the same image)."""
    return hashlib.sha256(data).hexdigest()
