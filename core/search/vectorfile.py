"""The embeddings file: one float32 (N, D) tensor ``embeddings`` in safetensors layout.

Safetensors is 8 bytes of header length (little-endian u64), a JSON header, then raw row-major
data. Because the data is raw, the file can be written in a stream (header first: N and D are
known up front) and memory-mapped with NumPy after checking the header, with no copy. Files
written here load with ``safetensors.torch.load_file`` too (the tests check it), and files
that safetensors wrote read here.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from core.search.errors import IndexFormatError

TENSOR_KEY = "embeddings"
_MAX_HEADER = 1 << 20  # one tensor's header is ~100 bytes; anything larger is not ours


def header_bytes(n: int, d: int) -> bytes:
    """The length prefix plus JSON header of an ``(n, d)`` float32 embeddings file."""
    meta = {TENSOR_KEY: {"dtype": "F32", "shape": [n, d], "data_offsets": [0, n * d * 4]}}
    text = json.dumps(meta, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as safetensors pads it
    return struct.pack("<Q", len(text)) + text


def write_stream(fh: BinaryIO, n: int, d: int, chunks: Iterable[np.ndarray]) -> str:
    """Write an ``(n, d)`` file from row chunks without holding them together; returns its sha256.

    Args:
        fh: a binary file open for writing.
        n, d: the total shape; the chunks must add up to exactly ``n`` rows of ``d`` values.
        chunks: float32 arrays. Shape: (rows, d) each.

    Raises:
        ValueError: the chunks do not add up to ``(n, d)``.
    """
    digest = hashlib.sha256()
    head = header_bytes(n, d)
    fh.write(head)
    digest.update(head)
    rows = 0
    for chunk in chunks:
        block = np.ascontiguousarray(chunk, dtype="<f4")
        if block.ndim != 2 or block.shape[1] != d:
            raise ValueError(f"chunk of shape {block.shape} does not have {d} columns")
        rows += block.shape[0]
        if rows > n:
            raise ValueError(f"the chunks hold more than the {n} rows announced")
        data = block.tobytes()
        fh.write(data)
        digest.update(data)
    if rows != n:
        raise ValueError(f"the chunks hold {rows} rows, {n} were announced")
    return digest.hexdigest()


def _read_header(path: Path) -> tuple[int, tuple[int, int], int]:
    """``(data start, (N, D), file size)`` after checking the header describes one float32 tensor."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        prefix = fh.read(8)
        if len(prefix) < 8:
            raise IndexFormatError(f"{path}: too short for an embeddings file; rebuild the index")
        (length,) = struct.unpack("<Q", prefix)
        if length > min(_MAX_HEADER, size - 8):
            raise IndexFormatError(f"{path}: header length {length} is implausible; rebuild the index")
        try:
            meta = json.loads(fh.read(length))
            entry = meta[TENSOR_KEY]
            shape = tuple(int(x) for x in entry["shape"])
            start, end = (int(x) for x in entry["data_offsets"])
        except (ValueError, KeyError, TypeError) as exc:
            raise IndexFormatError(f"{path}: unreadable embeddings header ({exc})") from exc
    if entry.get("dtype") != "F32" or len(shape) != 2:
        raise IndexFormatError(f"{path}: expected one float32 (N, D) tensor {TENSOR_KEY!r}")
    n, d = shape
    if end - start != n * d * 4 or 8 + length + end > size or start < 0:
        raise IndexFormatError(f"{path}: data offsets do not fit the file; rebuild the index")
    return 8 + length + start, (n, d), size


def read_vectors(path: Path, *, mmap: bool) -> torch.Tensor:
    """The embeddings of ``path``; with ``mmap`` a copy-on-write memory map (nothing read up front).

    Returns:
        Shape: (N, D), float32 (a tensor sharing the mapped pages when ``mmap``).

    Raises:
        IndexFormatError: not a single float32 (N, D) tensor.
    """
    offset, (n, d), _ = _read_header(path)
    if not mmap or n * d == 0:
        # Read into process memory (safetensors' own loader would keep the file mapped).
        try:
            array = np.fromfile(path, dtype="<f4", count=n * d, offset=offset).reshape(n, d)
        except (OSError, ValueError) as exc:
            raise IndexFormatError(f"{path}: cannot read embeddings ({exc})") from exc
        return torch.from_numpy(array)
    # Mode "c" (copy-on-write) maps the file read-only on disk but gives a writable array, which
    # torch.from_numpy needs; nothing this project does writes to it.
    return torch.from_numpy(np.memmap(path, dtype="<f4", mode="c", offset=offset, shape=(n, d)))


def vector_shape(path: Path) -> tuple[int, int]:
    """``(N, D)`` from the header alone (for streaming builds that size their output first)."""
    return _read_header(path)[1]
