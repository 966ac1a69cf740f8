"""Save and load an index folder's parts: vectors, gallery database, FAISS file, manifest.

Knows the folder layout (:mod:`core.search.storage`) but not ``EmbeddingIndex``, which calls it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.search import ann
from core.search.errors import IndexFormatError
from core.search.gallerydb import GalleryRow, read_gallery, write_gallery
from core.search.storage import (
    StagedFile,
    read_index,
    stage,
    stage_bytes,
    verified_path,
    write_index,
)
from core.search.vectorfile import write_stream

_CHUNK_ROWS = 65_536


@dataclass
class LoadedParts:
    """What an index folder holds, ready to become an ``EmbeddingIndex``."""

    embeddings: torch.Tensor
    manifest: dict[str, Any]
    rows: list[GalleryRow]
    backend: Any
    folder: Path


def stage_vectors(folder: Path, chunks: Iterable[np.ndarray], n: int, d: int) -> StagedFile:
    """Stream ``(n, d)`` float32 rows into a content-addressed embeddings file."""

    def write(tmp: Path) -> str:
        with tmp.open("wb") as fh:
            return write_stream(fh, n, d, chunks)

    return stage(folder, "embeddings", write)


def tensor_chunks(emb: torch.Tensor) -> Iterator[np.ndarray]:
    """Row blocks of a (possibly memory-mapped) tensor, so saving it never copies it whole."""
    for start in range(0, emb.shape[0], _CHUNK_ROWS):
        yield emb[start : start + _CHUNK_ROWS].detach().to("cpu", torch.float32).numpy()


def save_parts(
    folder: Path, embeddings: torch.Tensor, head: dict[str, Any], rows: Iterable[GalleryRow],
    backend: Any,
) -> None:
    """Write a format-3 index folder; the manifest goes last (old-or-new under a crash)."""
    folder.mkdir(parents=True, exist_ok=True)
    n, d = embeddings.shape
    vectors = stage_vectors(folder, tensor_chunks(embeddings), n, d)
    attached = {"gallery": stage(folder, "gallery", lambda tmp: _write_rows(tmp, rows, n, folder))}
    if isinstance(backend, ann.FaissBackend):
        attached["ann"] = stage_bytes(folder, "ann", backend.to_bytes())
    write_index(folder, (vectors, (n, d)), head, attached=attached)


def _write_rows(tmp: Path, rows: Iterable[GalleryRow], n: int, folder: Path) -> None:
    count = write_gallery(tmp, rows, base=folder)
    if count != n:
        raise IndexFormatError(f"{count} metadata rows for {n} embeddings")


def load_parts(path: Path, *, mmap: bool, verify: bool) -> LoadedParts:
    """Read an index folder of any readable format.

    Raises:
        FileNotFoundError: no such folder.
        IndexFormatError: partial, corrupt or mismatched files (each check names the file).
    """
    emb, manifest, folder = read_index(path, mmap=mmap, verify=verify)
    if "images" in manifest:  # formats 1 and 2 (and write_index's callers): metadata inline
        rows = _rows_from_manifest(manifest, folder)
    else:
        rows = list(read_gallery(verified_path(folder, manifest, "gallery", verify=verify), base=folder))
    if len(rows) != emb.shape[0]:
        raise IndexFormatError(
            f"{folder}: {len(rows)} images described for {emb.shape[0]} embeddings; rebuild the index"
        )
    info = dict(manifest.get("ann") or {"kind": ann.EXACT})
    backend: Any = ann.ExactBackend(emb)
    if info.get("kind", ann.EXACT) != ann.EXACT:
        faiss_path = verified_path(folder, manifest, "ann", verify=verify)
        index = ann.read_faiss(faiss_path, mmap=mmap)
        if index.ntotal != emb.shape[0] or index.d != emb.shape[1]:
            raise IndexFormatError(f"{faiss_path}: holds {index.ntotal} x {index.d}, the embeddings "
                                   f"{emb.shape[0]} x {emb.shape[1]}; rebuild the index")
        backend = ann.FaissBackend(index, str(info["kind"]), emb, ann.param_name(index),
                                   rerank=int(info.get("rerank", 1)))
        backend.set_value(info.get("value"))
    return LoadedParts(emb, manifest, rows, backend, folder)


def _rows_from_manifest(manifest: dict[str, Any], folder: Path) -> list[GalleryRow]:
    try:
        return [
            GalleryRow(im["image_id"], str(im["path"]), im.get("relative_path"),
                       list(im.get("captions", [])), [int(c) for c in im.get("categories", [])],
                       im.get("source"), list(im.get("generated", [])), im.get("sha256"))
            for im in manifest["images"]
        ]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise IndexFormatError(f"{folder / 'index.json'}: malformed index metadata ({exc})") from exc
