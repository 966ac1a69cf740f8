"""webdataset tar shards: ``key.<ext>`` (the original bytes), ``key.txt``, ``key.json`` per sample.

The layout img2dataset writes and the ``webdataset`` package reads; ``core.datasets``' tar
source reads it too, so one run's output is the next one's input (caption, then ``ssl embed``).
Keys are ``SSSSS_NNNNNN`` (shard, position): no dots, so every reader splits them the same way.
``key.json`` holds ``source`` (the input's path or key), ``model``, ``prompt``, ``caption`` and
``error``. A failed input is a sample with ``key.json`` only (its ``error`` set): no image
member a training loop would trip over, and ``--resume`` retries it.

Each shard is filled in a temporary file and appears whole (``core.fileio.atomic_open``); a
killed run leaves finished shards and a ``.tmp`` that the next run removes.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from core.errors import ConfigError
from core.fileio import atomic_open, atomic_write

SHARD_GLOB = "shard-*.tar"
_MAGIC = ((b"\xff\xd8\xff", "jpg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"GIF8", "gif"), (b"BM", "bmp"),
          (b"II*\x00", "tiff"), (b"MM\x00*", "tiff"))


def shard_name(index: int) -> str:
    """``3`` -> ``shard-00003.tar``."""
    return f"shard-{index:05d}.tar"


def sample_key(shard: int, position: int) -> str:
    return f"{shard:05d}_{position:06d}"


def image_extension(data: bytes, name: str | None = None) -> str:
    """The member extension for encoded image ``data``: the file's own suffix, else sniffed."""
    if name:
        suffix = Path(name).suffix.lower().lstrip(".")
        if suffix:
            return suffix
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    return "bin"


@dataclass(frozen=True)
class Sample:
    """One input's sample; ``data`` is ``None`` for a failed input."""

    source: str  # the input's path or source key
    caption: str
    error: str | None
    data: bytes | None = None  # the original encoded image
    extension: str = "jpg"

    def members(self, key: str, info: dict[str, Any]) -> list[tuple[str, bytes]]:
        meta = {"key": key, "source": self.source, "model": info.get("model"),
                "prompt": info.get("prompt"), "caption": self.caption if self.error is None else None,
                "error": self.error}
        out = [(f"{key}.json", json.dumps(meta, ensure_ascii=False, sort_keys=True).encode())]
        if self.error is None and self.data is not None:
            out = [(f"{key}.{self.extension}", self.data), (f"{key}.txt", self.caption.encode()), *out]
        return out


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def write_shard(dest: Path, index: int, samples: list[Sample], info: dict[str, Any]) -> None:
    """Write one whole shard atomically (what the Ray path does with a part's rows)."""

    def fill(tmp: Path) -> None:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            for pos, sample in enumerate(samples):
                for name, data in sample.members(sample_key(index, pos), info):
                    add_member(tar, name, data)

    atomic_write(dest, fill)


class ShardWriter:
    """Streams samples into ``out_dir/shard-NNNNN.tar``, ``shard_size`` samples each."""

    def __init__(self, out_dir: Path, shard_size: int, info: dict[str, Any], *, start: int = 0) -> None:
        if shard_size < 1:
            raise ConfigError(f"--shard-size must be >= 1, got {shard_size}")
        self.out_dir, self.shard_size, self.info = out_dir, shard_size, info
        self.index, self.count, self.shards_written = start, 0, 0
        self._ctx: Any = None
        self._tar: tarfile.TarFile | None = None

    def add(self, sample: Sample) -> None:
        if self._tar is None:
            self._ctx = atomic_open(self.out_dir / shard_name(self.index))
            fh: BinaryIO = self._ctx.__enter__()
            self._tar = tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT)
        for name, data in sample.members(sample_key(self.index, self.count), self.info):
            add_member(self._tar, name, data)
        self.count += 1
        if self.count == self.shard_size:
            self._finish()

    def _finish(self) -> None:
        assert self._tar is not None
        self._tar.close()
        self._ctx.__exit__(None, None, None)
        self._tar, self._ctx = None, None
        self.index, self.count, self.shards_written = self.index + 1, 0, self.shards_written + 1

    def close(self) -> None:
        """Finish the last (short) shard."""
        if self._tar is not None:
            self._finish()

    def abort(self, exc: BaseException) -> None:
        """Drop the unfinished shard (its temporary file is removed)."""
        if self._ctx is not None:
            self._tar = None
            self._ctx.__exit__(type(exc), exc, exc.__traceback__)
            self._ctx = None


def iter_shard_meta(path: Path) -> Iterator[dict[str, Any]]:
    """The ``key.json`` of every sample of one shard, in order."""
    with tarfile.open(path, "r:") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".json"):
                fh = tar.extractfile(member)
                if fh is not None:
                    yield json.loads(fh.read())


def existing_shards(out_dir: Path) -> list[Path]:
    """Finished shards of ``out_dir`` (leftover temporary files of a killed run are removed)."""
    for tmp in out_dir.glob(".shard-*.tar.*.tmp"):
        tmp.unlink(missing_ok=True)
    return sorted(out_dir.glob(SHARD_GLOB))


def drop_failed(path: Path) -> int:
    """Rewrite a shard without its failed samples (so ``--resume`` can redo them); returns how many.

    The other samples keep their keys and bytes; a shard of failures only is removed.
    """
    with tarfile.open(path, "r:") as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar if m.isfile()]  # type: ignore[union-attr]
    failed = {json.loads(data)["key"] for name, data in members
              if name.endswith(".json") and json.loads(data).get("error") is not None}
    if not failed:
        return 0
    kept = [(n, d) for n, d in members if n.split(".", 1)[0] not in failed]
    if not kept:
        path.unlink()
        return len(failed)

    def fill(tmp: Path) -> None:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in kept:
                add_member(tar, name, data)

    atomic_write(path, fill)
    return len(failed)
