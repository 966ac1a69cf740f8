"""Read one :class:`~core.datasets.sources.Shard` as ``SourceItem`` rows, never decoding pixels.

Decoding is left to ``core.load_image`` in the caller, so a hostile member (truncated JPEG, text
named ``.jpg``, decompression bomb) becomes an error row there. What can fail before decoding (a
member over the size cap, a link or device inside a tar, a tar cut short, a parquet row with no
image) becomes an item with ``error`` set, naming the key and the reason; a shard never raises
for its content.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from core.datasets.sources import Shard
from core.errors import DatasetError
from core.images import DEFAULT_MAX_BYTES

TAR_IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp"})
PARQUET_BATCH_ROWS = 256  # rows read at a time from a parquet file (bounds memory)


@dataclass(frozen=True)
class SourceItem:
    """One input of a shard."""

    key: str  # unique within the source; the output's "key" column
    path: str | None  # the image file, when there is one on disk (None for tar/bytes rows)
    image: str | bytes | None  # what to decode: a path or encoded bytes; None when error is set
    error: str | None = None  # why the input could not even be read


def iter_shard(shard: Shard, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[SourceItem]:
    """Yield every input of ``shard`` in its stored order.

    Args:
        shard: a shard from ``core.datasets.open_source``.
        max_bytes: members/values larger than this become error items without being read.

    Raises:
        DatasetError: a parquet file lacks both the path and the image column (a setting error,
            not bad content).
    """
    if shard.kind == "paths":
        for key, path in zip(shard.keys, shard.paths, strict=True):
            yield SourceItem(key, path, path)
    elif shard.kind == "tar":
        yield from _iter_tar(Path(shard.location), max_bytes)
    elif shard.kind == "parquet":
        yield from _iter_parquet(shard, max_bytes)
    else:
        raise DatasetError(f"shard {shard.index}: unknown shard kind {shard.kind!r}")


def count_shard(shard: Shard) -> int:
    """How many items ``iter_shard`` yields (tar: member headers only; parquet: file metadata)."""
    if shard.kind == "paths":
        return len(shard.keys)
    if shard.kind == "tar":
        try:
            with tarfile.open(shard.location, "r:*") as tar:
                return len({webdataset_key(m.name) for m in tar if _is_image_name(m.name)})
        except (OSError, tarfile.TarError, EOFError):
            return 1  # unreadable: iter_shard yields one error item for the file
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(shard.location).metadata.num_rows)
    except (OSError, ValueError):
        return 1


def webdataset_key(name: str) -> str:
    """``dir/000123.seg.jpg`` -> ``dir/000123``: the member name up to the first dot of its base name."""
    pure = PurePosixPath(name)
    stem = pure.name.split(".", 1)[0]
    return str(pure.parent / stem) if str(pure.parent) != "." else stem


def _is_image_name(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in TAR_IMAGE_EXTENSIONS


def _iter_tar(path: Path, max_bytes: int) -> Iterator[SourceItem]:
    seen: set[str] = set()
    try:
        tar = tarfile.open(path, "r:*")
    except (OSError, tarfile.TarError, EOFError) as exc:
        yield SourceItem(path.name, None, None, f"cannot open tar shard {path}: {exc}")
        return
    with tar:
        members = iter(tar)
        while True:
            key = None
            try:
                member = next(members)
                if not _is_image_name(member.name):
                    continue  # webdataset companions (.txt, .json, .cls) and directories
                key = webdataset_key(member.name)
                if key in seen:
                    continue  # one image per sample: the first image member of a key wins
                seen.add(key)
                yield _tar_item(tar, member, key, max_bytes)
            except StopIteration:
                return
            except (OSError, tarfile.TarError, EOFError) as exc:
                # A tar cut short or corrupt: report where it broke and stop reading this file.
                where = key or f"{path.name} (after {len(seen)} images)"
                yield SourceItem(where, None, None, f"tar shard {path} is corrupt or cut short: {exc}")
                return


def _tar_item(tar: tarfile.TarFile, member: tarfile.TarInfo, key: str, max_bytes: int) -> SourceItem:
    if not member.isfile():
        return SourceItem(key, None, None, f"tar member {member.name!r} is not a regular file")
    if member.size > max_bytes:
        return SourceItem(key, None, None,
                          f"tar member {member.name!r} is {member.size:,} bytes, over the "
                          f"{max_bytes:,}-byte limit")
    fh = tar.extractfile(member)
    data = fh.read() if fh is not None else b""
    if len(data) != member.size:
        raise tarfile.ReadError(f"member {member.name!r} has {len(data)} of {member.size} bytes")
    return SourceItem(key, None, data)


def find_tar_item(path: str | Path, key: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> SourceItem | None:
    """The item ``iter_shard`` yields for ``key`` in the tar shard ``path``, or ``None``.

    Reads member headers only until the key's first image member (the one a run used), so an
    index built from tar shards can show a result's image without unpacking the shard.

    Raises:
        DatasetError: the tar cannot be opened or is corrupt before the key is found.
    """
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if _is_image_name(member.name) and webdataset_key(member.name) == key:
                    return _tar_item(tar, member, key, max_bytes)
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read tar shard for key {key!r} ({exc})") from exc
    return None


def _iter_parquet(shard: Shard, max_bytes: int) -> Iterator[SourceItem]:
    import pyarrow.parquet as pq

    path = Path(shard.location)
    try:
        file = pq.ParquetFile(path)
    except (OSError, ValueError) as exc:
        yield SourceItem(path.name, None, None, f"cannot read parquet file {path}: {exc}")
        return
    cols = shard.columns
    names = set(file.schema_arrow.names)
    wanted = [c for c in (cols.key, cols.path, cols.image) if c in names]
    if cols.path not in names and cols.image not in names:
        raise DatasetError(
            f"{path}: has neither a {cols.path!r} (path) nor an {cols.image!r} (image bytes) "
            f"column; its columns are {sorted(names)}. Name yours with the path/image column "
            "settings (--path-column / --image-column)"
        )
    row = 0
    for batch in file.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=wanted):
        data = batch.to_pydict()
        for i in range(batch.num_rows):
            yield _parquet_item(data, i, row, path, shard, max_bytes)
            row += 1


def _parquet_item(data: dict[str, list[Any]], i: int, row: int, path: Path, shard: Shard,
                  max_bytes: int) -> SourceItem:
    cols = shard.columns

    def cell(name: str) -> Any:
        return data[name][i] if name in data else None

    image, file_path = cell(cols.image), cell(cols.path)
    if isinstance(image, dict):  # {"bytes": ..., "path": ...} as Hugging Face datasets store images
        file_path = file_path or image.get("path")
        image = image.get("bytes")
    raw_key = cell(cols.key)
    key = str(raw_key) if raw_key is not None else (str(file_path) if file_path else f"{path.stem}/{row}")
    if image is not None:
        if not isinstance(image, (bytes, bytearray)):
            return SourceItem(key, file_path, None, f"column {cols.image!r} holds {type(image).__name__}, not bytes")
        if len(image) > max_bytes:
            return SourceItem(key, file_path, None,
                              f"image value is {len(image):,} bytes, over the {max_bytes:,}-byte limit")
        return SourceItem(key, file_path, bytes(image))
    if file_path:
        resolved = file_path if Path(file_path).is_absolute() else str(path.parent / file_path)
        return SourceItem(key, str(file_path), resolved)
    return SourceItem(key, None, None, f"row {row} of {path.name} has no image bytes and no path")


def iter_source_items(shards: Any, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[SourceItem]:
    """Every item of a source (an ``ImageSource`` or a list of shards), shard after shard.

    What the local (single-process) path reads, so it sees exactly what the Ray path sees.
    """
    for shard in getattr(shards, "shards", shards):
        yield from iter_shard(shard, max_bytes=max_bytes)
