"""Part files: one parquet file per shard (``part-00000.parquet``), written old-or-new.

Columns: ``key``, ``path`` (null for tar members and byte rows), ``caption`` or ``embedding``
(a fixed-size list of float32, null for error rows) and ``error`` (null when the row is fine).
Each part also carries, in its parquet metadata, the shard it came from, the shard's fingerprint
and a digest of the run's settings, so a resumed run can adopt a part that was written but not
yet recorded in the manifest.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import DatasetError
from core.fileio import atomic_write_bytes

PART_METADATA_KEY = b"img2text"


def part_name(index: int) -> str:
    """``3`` -> ``part-00003.parquet``."""
    return f"part-{index:05d}.parquet"


@dataclass(frozen=True)
class PartInfo:
    """What a part file says about itself (from its parquet metadata)."""

    shard: int  # the shard index it holds
    fingerprint: str  # the shard's fingerprint when it was written
    settings_digest: str  # digest of the run settings that produced it
    rows: int
    errors: int


def encode_caption_part(rows: Sequence[tuple[str, str | None, str, str | None]], info: PartInfo) -> bytes:
    """Parquet bytes of caption rows ``(key, path, caption, error)``."""
    import pyarrow as pa

    keys, paths, captions, errors = (list(col) for col in zip(*rows, strict=True)) if rows else ([], [], [], [])
    table = pa.table(
        {"key": pa.array(keys, pa.string()), "path": pa.array(paths, pa.string()),
         "caption": pa.array(captions, pa.string()), "error": pa.array(errors, pa.string())}
    )
    return _to_parquet(table, info)


def encode_embedding_part(
    keys: Sequence[str], paths: Sequence[str | None], embeddings: np.ndarray,
    errors: Sequence[str | None], info: PartInfo, hashes: Sequence[str | None] | None = None,
) -> bytes:
    """Parquet bytes of embedding rows; error rows have a null embedding.

    ``hashes``: per row, the sha256 of the image's encoded bytes (``core.search.content_hash``;
    None where unknown), which the index keeps so an upload of the same bytes is known as that image.

    Shape:
        embeddings: (len(keys), D) float32; rows of error entries are ignored.
    """
    import pyarrow as pa

    n, dim = embeddings.shape
    flat = pa.array(np.ascontiguousarray(embeddings, dtype=np.float32).reshape(-1))
    mask = pa.array([e is not None for e in errors], pa.bool_())
    vectors = pa.FixedSizeListArray.from_arrays(flat, dim, mask=mask)
    table = pa.table(
        {"key": pa.array(list(keys), pa.string()), "path": pa.array(list(paths), pa.string()),
         "embedding": vectors, "error": pa.array(list(errors), pa.string()),
         "sha256": pa.array(list(hashes) if hashes is not None else [None] * n, pa.string())}
    )
    return _to_parquet(table, info)


def _to_parquet(table: Any, info: PartInfo) -> bytes:
    import pyarrow.parquet as pq

    meta = {PART_METADATA_KEY: json.dumps(info.__dict__, sort_keys=True).encode()}
    table = table.replace_schema_metadata(meta)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def write_part(out_dir: str | os.PathLike, index: int, data: bytes) -> Path:
    """Write a part's bytes atomically (a crash leaves no half-written part); returns its path."""
    path = Path(out_dir) / part_name(index)
    atomic_write_bytes(path, data)
    return path


def read_part_info(path: str | os.PathLike) -> PartInfo | None:
    """The metadata of a part file, or ``None`` when it is missing or not one of ours."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
        return PartInfo(**json.loads(meta[PART_METADATA_KEY]))
    except (OSError, KeyError, ValueError, TypeError):
        return None


def part_files(out_dir: str | os.PathLike) -> list[Path]:
    """The part files of an output folder, in shard order."""
    return sorted(Path(out_dir).glob("part-*.parquet"))


def read_parts(out_dir: str | os.PathLike) -> Any:
    """All parts of ``out_dir`` as one ``pyarrow.Table``, in shard order.

    Raises:
        DatasetError: the folder holds no part files.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = part_files(out_dir)
    if not files:
        raise DatasetError(f"{out_dir}: no part-*.parquet files; is this the -o folder of a run?")
    return pa.concat_tables([pq.read_table(f).replace_schema_metadata(None) for f in files])


def read_embedding_parts(out_dir: str | os.PathLike) -> tuple[np.ndarray, list[str], list[str | None]]:
    """The embeddings of an embed run's parts, error rows left out, all in memory.

    For large runs build an index instead (``core.distributed.build_index``), which streams the
    parts through the same reader (``core.search.partfiles``).

    Returns:
        ``(embeddings, keys, paths)``; embeddings are the unit-norm rows as written.
        Shape: embeddings (N_ok, D) float32.

    Raises:
        DatasetError: no parts, or the parts hold captions rather than embeddings.
    """
    from core.search import IndexConfigError
    from core.search.partfiles import part_paths, parts_shape, row_blocks, vector_blocks

    try:
        files = part_paths(out_dir)
        n, dim = parts_shape(files)
    except IndexConfigError as exc:
        raise DatasetError(str(exc)) from None
    blocks = list(vector_blocks(files))
    vectors = np.concatenate(blocks) if blocks else np.zeros((0, dim), np.float32)
    rows = list(row_blocks(files))
    return vectors.reshape(n, dim), [r.key for r in rows], [r.path for r in rows]


def error_rows(out_dir: str | os.PathLike) -> list[tuple[str, str]]:
    """``(key, reason)`` of every error row in the parts of ``out_dir``, in shard order (only the
    two small columns are read)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    found: list[tuple[str, str]] = []
    for path in part_files(out_dir):
        table = pq.read_table(path, columns=["key", "error"])
        table = table.filter(pc.is_valid(table["error"]))
        found.extend(zip(table["key"].to_pylist(), table["error"].to_pylist(), strict=True))
    return found
