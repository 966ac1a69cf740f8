"""Read embedding part files (what ``img2text ssl embed --ray`` writes) in blocks, never whole.

A part is a parquet file with columns ``key``, ``path`` (null for tar members and byte rows),
``embedding`` (a fixed-size list of float32, null on error rows), ``error`` (null when the
row is fine) and ``sha256`` (the image's encoded bytes; absent in older parts); ``core.distributed.parts`` writes them. Only rows without an error are read, and a
column at a time: the vectors for the index's embeddings file, the keys and paths for its
gallery database. Needs ``pyarrow`` (the ``distributed`` extra).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.search.errors import IndexConfigError

PART_GLOB = "part-*.parquet"
BLOCK_ROWS = 65_536  # rows read from a part at a time


@dataclass(frozen=True)
class PartRow:
    """One readable row of a part: its key, its file (None for tar members and byte rows)."""

    key: str
    path: str | None
    part: str  # the part file's name
    sha256: str | None = None  # of the image's encoded bytes (None: unknown, or a part from before hashes)


def part_paths(folder: str | os.PathLike) -> list[Path]:
    """The part files of an output folder, in shard order.

    Raises:
        IndexConfigError: there are none.
    """
    files = sorted(Path(folder).glob(PART_GLOB))
    if not files:
        raise IndexConfigError(f"{folder}: no {PART_GLOB} files; pass the -o folder of an "
                               "`img2text ssl embed --ray` run")
    return files


def parts_shape(files: Sequence[Path]) -> tuple[int, int]:
    """``(readable rows, embedding width)`` from the schemas and the ``error`` columns only.

    Raises:
        IndexConfigError: a part has no ``embedding`` column (a caption run?) or another width.
    """
    import pyarrow.parquet as pq

    total, dim = 0, None
    for f in files:
        schema = pq.read_schema(f)
        if "embedding" not in schema.names or "error" not in schema.names:
            raise IndexConfigError(f"{f}: has no 'embedding' and 'error' columns; is it a part of "
                                   "a caption run rather than an embedding run?")
        width = int(schema.field("embedding").type.list_size)
        if dim is not None and width != dim:
            raise IndexConfigError(f"{f}: {width}-d embeddings, the parts before it hold {dim}-d")
        dim = width
        total += pq.read_table(f, columns=["error"])["error"].null_count
    if dim is None:
        raise IndexConfigError("no part files given")
    return total, dim


def _ok_batches(files: Sequence[Path], columns: list[str]) -> Iterator[tuple[Path, Any]]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    for f in files:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=BLOCK_ROWS, columns=[*columns, "error"]):
            ok = batch.filter(pc.is_null(batch.column("error")))
            if ok.num_rows:
                yield f, ok


def vector_blocks(files: Sequence[Path]) -> Iterator[np.ndarray]:
    """The embeddings of the readable rows, part after part. Shape: (rows, D) float32 each."""
    for _, batch in _ok_batches(files, ["embedding"]):
        column = batch.column("embedding")
        flat = column.flatten().to_numpy(zero_copy_only=False)
        yield np.asarray(flat, dtype=np.float32).reshape(batch.num_rows, column.type.list_size)


def row_blocks(files: Sequence[Path]) -> Iterator[PartRow]:
    """Key, path and content hash of each readable row, in the order of :func:`vector_blocks`."""
    import pyarrow.parquet as pq

    for f in files:
        hashed = "sha256" in pq.read_schema(f).names  # parts written before content hashes lack it
        for _, batch in _ok_batches([f], ["key", "path", "sha256"] if hashed else ["key", "path"]):
            hashes = batch.column("sha256").to_pylist() if hashed else [None] * batch.num_rows
            for key, path, sha in zip(batch.column("key").to_pylist(), batch.column("path").to_pylist(),
                                      hashes, strict=True):
                yield PartRow(str(key), path, f.name, sha)


def error_rows(files: Sequence[Path], limit: int) -> tuple[list[dict[str, str]], int]:
    """Up to ``limit`` ``{"path", "reason"}`` entries for the error rows, and how many there are."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out: list[dict[str, str]] = []
    count = 0
    for f in files:
        table = pq.read_table(f, columns=["key", "path", "error"])
        bad = table.filter(pc.invert(pc.is_null(table["error"])))
        count += bad.num_rows
        for key, path, error in zip(*(bad[c].to_pylist() for c in ("key", "path", "error")), strict=True):
            if len(out) < limit:
                out.append({"path": str(path or key), "reason": f"{key}: {error}"})
    return out, count
