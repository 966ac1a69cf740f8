"""Build one index from many index folders (what ``img2text ssl embed`` writes) in a stream.

Vectors and metadata are copied source by source, in blocks, from memory-mapped inputs into
the new folder's staged files; the FAISS index trains on a sample and is filled block by block
from the memory-mapped result. Nothing holds the whole gallery in memory except FAISS' own
codes (which is what the memory budget of ``kind="auto"`` bounds) and the set of ids (to refuse
duplicates). The manifest is written last: a crash leaves the folder's previous index.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.search import ann
from core.search.errors import IndexConfigError, IndexFormatError
from core.search.gallerydb import GalleryRow, write_gallery
from core.search.persist import load_parts, stage_vectors, tensor_chunks
from core.search.recall import DEFAULT_TARGET_RECALL, make_backend
from core.search.storage import MANIFEST_NAME, folder_manifest, stage, stage_bytes, write_index
from core.search.vectorfile import read_vectors


def _shapes(sources: Sequence[Path]) -> tuple[int, int, dict[str, Any]]:
    """Total rows, the common width and the first source's manifest (manifests only are read)."""
    total, dim, first = 0, None, None
    for src in sources:
        manifest = folder_manifest(src)
        n, d = (int(x) for x in manifest["embeddings"]["shape"])
        if dim is not None and d != dim:
            raise IndexConfigError(f"{src}: {d}-d embeddings, the other sources hold {dim}-d")
        sha = manifest["checkpoint"].get("sha256")
        if first is not None and sha != first["checkpoint"].get("sha256"):
            raise IndexConfigError(
                f"{src}: embedded with checkpoint sha256 {str(sha)[:12]}..., the first source with "
                f"{str(first['checkpoint'].get('sha256'))[:12]}...; one index needs one encoder"
            )
        total, dim, first = total + n, d, first or manifest
    if not sources or dim is None or first is None:
        raise IndexConfigError("no embedding sources given; pass one or more index folders")
    return total, dim, first


def _vector_chunks(sources: Sequence[Path], verify: bool) -> Iterator[np.ndarray]:
    for src in sources:
        yield from tensor_chunks(load_parts(src, mmap=True, verify=verify).embeddings)


def _rows(sources: Sequence[Path], captions: dict[str, str] | None) -> Iterator[GalleryRow]:
    seen: set[Any] = set()
    for src in sources:
        for row in load_parts(src, mmap=True, verify=False).rows:
            if row.image_id in seen:
                raise IndexConfigError(f"{src}: image id {row.image_id!r} is already in an earlier source")
            seen.add(row.image_id)
            extra = captions.get(row.path) if captions else None
            caps = [*row.captions, extra] if extra and extra not in row.captions else row.captions
            yield GalleryRow(row.image_id, row.path, row.relative_path, caps, row.categories,
                             row.source or str(src))


def build_from_folders(
    sources: Sequence[str | Path],
    out: str | Path,
    *,
    kind: str = ann.AUTO,
    memory_budget: str | int | None = None,
    target_recall: float = DEFAULT_TARGET_RECALL,
    captions: dict[str, str] | None = None,
    seed: int = 0,
    verify: bool = True,
) -> Path:
    """Merge index folders into a new index at ``out`` with the backend ``kind``; returns ``out``.

    Args:
        sources: index folders built with the same encoder (checked by weights sha256).
        captions: extra caption per image path (e.g. from an ``img2text caption`` output).
        verify: check each source's files against its manifest's sha256 as they are read.

    Raises:
        IndexConfigError: no sources, mixed encoders or widths, duplicate ids, bad kind.
        IndexFormatError: a source is not a readable index.
    """
    folders = [Path(s) for s in sources]
    folder = Path(out)
    if any(f.resolve() == folder.resolve() for f in folders):
        raise IndexConfigError(f"{folder}: the output folder is also a source; choose another --out")
    n, d, first = _shapes(folders)
    vectors = stage_vectors(folder, _vector_chunks(folders, verify), n, d)
    gallery = stage(folder, "gallery", lambda tmp: _checked_rows(tmp, _rows(folders, captions), n))
    emb = read_vectors(folder / vectors.name, mmap=True)
    backend, info = make_backend(emb, kind, memory_budget=memory_budget,
                                 target_recall=target_recall, seed=seed)
    attached = {"gallery": gallery}
    if isinstance(backend, ann.FaissBackend):
        attached["ann"] = stage_bytes(folder, "ann", backend.to_bytes())
    head = {key: first.get(key) for key in ("data_root", "checkpoint", "preprocessing",
                                             "category_names")}
    head.update(count=n, skipped=[], ann=info, sources=[str(f) for f in folders])
    write_index(folder, (vectors, (n, d)), head, attached=attached)
    return folder


def _checked_rows(tmp: Path, rows: Iterator[GalleryRow], n: int) -> None:
    count = write_gallery(tmp, rows)
    if count != n:
        raise IndexFormatError(f"the sources describe {count} images for {n} embeddings "
                               f"(a source's {MANIFEST_NAME} is inconsistent); rebuild it")
