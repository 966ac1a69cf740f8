"""Build one index in a stream: from many index folders (what ``img2text ssl embed`` writes) or
from the embedding parts of a Ray run (``img2text ssl embed --ray``, see :mod:`core.search.partfiles`).

Vectors and metadata are copied source by source, in blocks, from memory-mapped index folders
or part by part from parquet, into the new folder's staged files; the FAISS index trains on a
sample and is filled block by block from the memory-mapped result. Nothing holds the whole
gallery in memory except FAISS' own codes (which is what the memory budget of ``kind="auto"``
bounds), the set of ids (to refuse duplicates) and the captions given. The manifest is written
last: a crash leaves the folder's previous index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.search import ann
from core.search.encoder import EncoderLike, describe_preprocessing
from core.search.errors import IndexConfigError, IndexFormatError
from core.search.gallery import checkpoint_info
from core.search.gallerydb import GalleryRow, write_gallery
from core.search.manifest import NO_CHECKPOINT
from core.search.partfiles import error_rows, part_paths, parts_shape, row_blocks, vector_blocks
from core.search.persist import load_parts, stage_vectors, tensor_chunks
from core.search.pretrained import encoder_record
from core.search.recall import DEFAULT_TARGET_RECALL, make_backend
from core.search.result_images import tar_source
from core.search.storage import MANIFEST_NAME, folder_manifest, stage, stage_bytes, write_index
from core.search.vectorfile import read_vectors

SKIPPED_LIMIT = 10_000  # error rows listed in a parts index's manifest (all are counted)


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
            added = [extra] if extra and extra not in row.captions else []
            yield GalleryRow(row.image_id, row.path, row.relative_path, [*row.captions, *added],
                             row.categories, row.source or str(src), [*row.generated, *added], row.sha256)


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
    head = {key: first.get(key) for key in ("data_root", "checkpoint", "encoder", "preprocessing",
                                             "category_names")}
    head.update(skipped=[], sources=[str(f) for f in folders])
    return write_streamed(folder, (n, d), lambda: _vector_chunks(folders, verify),
                          lambda: _rows(folders, captions), head, kind=kind,
                          memory_budget=memory_budget, target_recall=target_recall, seed=seed)


def build_from_parts(
    parts: str | Path,
    out: str | Path,
    *,
    encoder: EncoderLike | None = None,
    kind: str = ann.AUTO,
    memory_budget: str | int | None = None,
    target_recall: float = DEFAULT_TARGET_RECALL,
    captions: Mapping[str, str] | None = None,
    build: dict[str, Any] | None = None,
    shard_files: Mapping[str, str] | None = None,
    seed: int = 0,
) -> Path:
    """Build an index at ``out`` from the embedding parts in ``parts`` without re-encoding.

    The vectors are copied part by part into the index's embeddings file, then the backend is
    built over its memory map; keys become image ids, paths (the key for tar members and byte
    rows) the recorded paths, and each part's error rows the skipped entries (the first
    :data:`SKIPPED_LIMIT`; ``skipped_total`` counts them all). ``out`` may be ``parts`` itself.

    Args:
        parts: the ``-o`` folder of an ``img2text ssl embed --ray`` run (``part-*.parquet``).
        encoder: the encoder that made the parts, recorded so that image queries can be embedded
            (``index.find_similar(image)``); ``None`` records none.
        captions: a caption per image, keyed by path (as written or resolved) or by key.
        build: recorded under ``build`` in the manifest (what the index was made from).
        shard_files: part file name -> the tar shard it was made from; rows of tar members record
            their shard as ``source``, so ``core.search.result_image`` can show them.

    Raises:
        IndexConfigError: no parts, parts without embeddings, duplicate keys, bad kind.
    """
    files = part_paths(parts)
    n, d = parts_shape(files)
    if n == 0:
        raise IndexConfigError(f"{parts}: every row of its parts is an error row; nothing to index")
    skipped, total = error_rows(files, SKIPPED_LIMIT)
    checkpoint = checkpoint_info(encoder) if encoder is not None else NO_CHECKPOINT
    head: dict[str, Any] = {
        "data_root": None, "category_names": {}, "skipped": skipped, "skipped_total": total,
        "checkpoint": {"sha256": checkpoint.sha256, "weights_path": checkpoint.weights_path,
                       "config": checkpoint.config},
        "encoder": encoder_record(checkpoint.config),
        "preprocessing": describe_preprocessing(encoder) if encoder is not None else {"l2_normalized": True},
        "sources": [str(Path(parts))], "build": build or {},
    }
    lookup = caption_lookup(captions)
    return write_streamed(Path(out), (n, d), lambda: vector_blocks(files),
                          lambda: _part_rows(files, lookup, shard_files or {}), head, kind=kind,
                          memory_budget=memory_budget, target_recall=target_recall, seed=seed)


def write_streamed(
    folder: Path, shape: tuple[int, int], vectors: Callable[[], Iterator[np.ndarray]],
    rows: Callable[[], Iterator[GalleryRow]], head: dict[str, Any], *, kind: str,
    memory_budget: str | int | None, target_recall: float, seed: int,
) -> Path:
    """Stage the vectors and the gallery from their streams, build the backend, commit; returns ``folder``.

    Args:
        shape: ``(N, D)``, known before the vectors are read (the file's header comes first).
        vectors, rows: make the streams (``N`` rows in total, in the same order).
        head: the manifest's other entries (checkpoint, preprocessing, ...).
    """
    n, d = shape
    staged = stage_vectors(folder, vectors(), n, d)
    gallery = stage(folder, "gallery", lambda tmp: _checked_rows(tmp, rows(), n, folder))
    emb = read_vectors(folder / staged.name, mmap=True)
    backend, info = make_backend(emb, kind, memory_budget=memory_budget,
                                 target_recall=target_recall, seed=seed)
    attached = {"gallery": gallery}
    if isinstance(backend, ann.FaissBackend):
        attached["ann"] = stage_bytes(folder, "ann", backend.to_bytes())
    write_index(folder, (staged, (n, d)), {**head, "count": n, "ann": info}, attached=attached)
    return folder


def caption_lookup(captions: Mapping[str, str] | None) -> Callable[[str, str | None], str | None]:
    """``lookup(key, path)``: the caption for a path as written, the resolved path, else the key."""
    if not captions:
        return lambda key, path: None
    resolved = {str(Path(p).resolve()): c for p, c in captions.items()}

    def lookup(key: str, path: str | None) -> str | None:
        if path is not None:
            hit = captions.get(path) or resolved.get(str(Path(path).resolve()))
            if hit:
                return hit
        return captions.get(key)

    return lookup


def _part_rows(files: Sequence[Path], lookup: Callable[[str, str | None], str | None],
               shard_files: Mapping[str, str]) -> Iterator[GalleryRow]:
    seen: set[str] = set()
    for row in row_blocks(files):
        if row.key in seen:
            raise IndexConfigError(f"{row.part}: key {row.key!r} is already in an earlier row; "
                                   "one index needs unique keys")
        seen.add(row.key)
        caption = lookup(row.key, row.path)
        source = tar_source(row.path, shard_files.get(row.part)) or row.part
        caps = [caption] if caption else []  # from a caption file or run: generated
        yield GalleryRow(row.key, row.path or row.key, None, caps, [], source, list(caps), row.sha256)


def _checked_rows(tmp: Path, rows: Iterator[GalleryRow], n: int, folder: Path) -> None:
    count = write_gallery(tmp, rows, base=folder)
    if count != n:
        raise IndexFormatError(f"the sources describe {count} images for {n} embeddings "
                               f"(a source's {MANIFEST_NAME} is inconsistent); rebuild it")
