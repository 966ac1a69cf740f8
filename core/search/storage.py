"""The on-disk index: content-addressed data files + ``index.json``, crash-safely.

Data files (all named after the first 16 hex digits of their sha256):

* ``embeddings-<hash>.safetensors``: the vectors, one float32 (N, D) tensor (memory-mappable);
* ``ann-<hash>.faiss``: the FAISS index, for approximate backends only;
* ``gallery-<hash>.sqlite``: per-image metadata and the FTS5 caption table (format 3).

A (re)write never touches the files of the index already there: each new data file is written
under a hidden staging name (``core.fileio.atomic_write``: tmp, fsync, rename) and renamed to its
content-addressed name, then ``index.json``, which names every data file with its sha256, is
replaced atomically (the commit point), and only then are data files the manifest no longer
names deleted. A crash at any moment leaves the old index or the new one, both readable; at
worst an unreferenced data file stays behind until the next write. One writer per folder.

Format 1 (fixed ``embeddings.safetensors``) and 2 (per-image metadata in ``index.json``) still read.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save

from core.fileio import atomic_write, fsync_dir, sha256_bytes, sha256_file
from core.search.errors import IndexFormatError
from core.search.vectorfile import TENSOR_KEY, read_vectors

# ``sha256_file`` lives in core.fileio; re-exported here for callers that still import it from here.
__all__ = ["IndexFormatError", "StagedFile", "read_index", "sha256_file", "stage", "write_index"]

FORMAT_NAME = "img2text-embedding-index"
# 3: metadata in SQLite, optional FAISS file. 2: content-addressed embeddings file. Bumped so
# that older code refuses a new index with a version message instead of misreading it.
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
MANIFEST_NAME = "index.json"
LEGACY_EMBEDDINGS_NAME = "embeddings.safetensors"  # the fixed name of format version 1
# Per manifest key: file name prefix and suffix. Only these names are ever read or deleted: a
# manifest cannot point outside its folder, and cleaning up never removes a user's file.
KINDS = {"embeddings": ("embeddings", ".safetensors"), "ann": ("ann", ".faiss"),
         "gallery": ("gallery", ".sqlite")}
_NAME_RES = {k: re.compile(rf"{p}-[0-9a-f]{{16}}{re.escape(s)}") for k, (p, s) in KINDS.items()}
_STAGING_PREFIX = ".staging-"


@dataclass(frozen=True)
class StagedFile:
    """A data file already durable under its content-addressed name, not yet named by a manifest."""

    name: str
    sha256: str


def embeddings_file_name(sha256: str) -> str:
    """The content-addressed file name of embeddings whose bytes hash to ``sha256`` (hex)."""
    return content_name("embeddings", sha256)


def content_name(kind: str, sha256: str) -> str:
    """``<prefix>-<sha256[:16]><suffix>`` for a data file of ``kind`` (a key of ``KINDS``)."""
    prefix, suffix = KINDS[kind]
    return f"{prefix}-{sha256[:16]}{suffix}"


def _is_data_name(name: str, kind: str | None = None) -> bool:
    kinds = [kind] if kind else list(KINDS)
    if "embeddings" in kinds and name == LEGACY_EMBEDDINGS_NAME:
        return True
    return any(_NAME_RES[k].fullmatch(name) for k in kinds)


def stage(folder: Path, kind: str, write: Callable[[Path], str | None]) -> StagedFile:
    """Write a data file of ``kind`` durably under its content-addressed name in ``folder``.

    Args:
        write: fills the path it is given; may return the sha256 it computed while writing
            (otherwise the file is hashed afterwards).
    """
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f"{_STAGING_PREFIX}{uuid.uuid4().hex}{KINDS[kind][1]}"
    result: dict[str, str | None] = {}
    atomic_write(staging, lambda tmp: result.update(sha=write(tmp)))
    digest = result["sha"] or sha256_file(staging)
    name = content_name(kind, digest)
    os.replace(staging, folder / name)  # same contents -> same name: harmless to an old index
    fsync_dir(folder)
    return StagedFile(name, digest)


def stage_bytes(folder: Path, kind: str, data: bytes) -> StagedFile:
    """:func:`stage` for bytes already in memory (hashed before writing)."""
    digest = sha256_bytes(data)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / content_name(kind, digest), lambda tmp: tmp.write_bytes(data))
    return StagedFile(content_name(kind, digest), digest)


def write_index(
    folder: Path,
    embeddings: torch.Tensor | tuple[StagedFile, tuple[int, int]],
    manifest: dict[str, Any],
    *,
    attached: dict[str, StagedFile] | None = None,
) -> None:
    """Commit an index: the embeddings, any other staged data files, then ``manifest``.

    Args:
        embeddings: a tensor (Shape: (N, D), float32) or an already staged file and its shape.
        manifest: what to record; gains the format name/version and the embeddings file's name,
            shape and sha256; each ``attached`` file's name and sha256 go under its kind's key.
        attached: staged data files by kind (``"ann"``, ``"gallery"``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(embeddings, torch.Tensor):
        emb = embeddings.detach().to("cpu", torch.float32).contiguous()
        # Serialise in memory: safetensors' save_file would recreate the file as 0600.
        staged, shape = stage_bytes(folder, "embeddings", save({TENSOR_KEY: emb})), tuple(emb.shape)
    else:
        staged, shape = embeddings
    full = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        **manifest,
        "embeddings": {"file": staged.name, "shape": list(shape), "dtype": "float32",
                       "sha256": staged.sha256},
    }
    for kind, file in (attached or {}).items():
        full[kind] = {**dict(full.get(kind) or {}), "file": file.name, "sha256": file.sha256}
    text = json.dumps(full, indent=2, ensure_ascii=False) + "\n"
    atomic_write(folder / MANIFEST_NAME, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    keep = {staged.name, *(f.name for f in (attached or {}).values())}
    _remove_unreferenced(folder, keep)


def _remove_unreferenced(folder: Path, keep: set[str]) -> None:
    """Delete earlier data files and killed writes' staging files once the manifest is committed."""
    for path in folder.iterdir():
        stale = path.name.startswith(_STAGING_PREFIX) or _is_data_name(path.name)
        if stale and path.name not in keep:
            # The new index is already committed: a file we cannot delete only wastes space.
            with contextlib.suppress(OSError):
                path.unlink()


def embeddings_path(folder: Path) -> Path:
    """The embeddings file that ``folder``'s manifest names (not checked against its sha256).

    Raises:
        IndexFormatError: missing/corrupt manifest or a file name that is not an embeddings file.
    """
    return data_path(Path(folder), folder_manifest(Path(folder)), "embeddings")


def folder_manifest(folder: Path) -> dict[str, Any]:
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.is_file():
        raise IndexFormatError(
            f"{folder}: not an embedding index ({MANIFEST_NAME} is missing; a partial write or "
            "the wrong folder). Build one with `img2text ssl embed`."
        )
    return _read_manifest(manifest_path)


def data_path(folder: Path, manifest: dict[str, Any], kind: str) -> Path:
    """The data file of ``kind`` that ``manifest`` names, after checking the name's form.

    Raises:
        IndexFormatError: the entry or its file name is not one this format writes.
    """
    entry = manifest.get(kind)
    # Version-1 manifests recorded the fixed name too, so the default only covers hand-made ones.
    name = entry.get("file", LEGACY_EMBEDDINGS_NAME if kind == "embeddings" else None) if isinstance(
        entry, dict) else None
    if not isinstance(name, str) or not _is_data_name(name, kind):
        prefix, suffix = KINDS[kind]
        raise IndexFormatError(
            f"{folder / MANIFEST_NAME}: {kind} file name {name!r} is not a plain "
            f"{prefix}-<hash>{suffix} name in the index folder; the manifest is corrupt"
        )
    return folder / name


def verified_path(folder: Path, manifest: dict[str, Any], kind: str, *, verify: bool = True) -> Path:
    """:func:`data_path`, checked to exist and (with ``verify``) to match its recorded sha256.

    Raises:
        IndexFormatError: missing, or its contents differ from the manifest's sha256.
    """
    path = data_path(folder, manifest, kind)
    if not path.is_file():
        raise IndexFormatError(f"{path}: missing; the index is incomplete, rebuild it")
    # A content-addressed file is never rewritten with other bytes, so hashing it and then
    # loading it sees the same contents (a concurrent cleanup can only make the load fail).
    if verify and sha256_file(path) != manifest[kind].get("sha256"):
        raise IndexFormatError(
            f"{path}: contents do not match {MANIFEST_NAME} (sha256 differs); the index is "
            "partial or corrupt, rebuild it"
        )
    return path


def read_index(
    path: Path, *, mmap: bool = False, verify: bool = True
) -> tuple[torch.Tensor, dict[str, Any], Path]:
    """Read and verify an index folder (or its ``index.json``); every readable format version.

    Args:
        mmap: memory-map the embeddings instead of reading them.
        verify: hash the embeddings file against the manifest (reads it once; set ``False``
            only for galleries too large to hash at every load).

    Returns:
        The embeddings (Shape: (N, D), float32), the manifest and the index folder.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        IndexFormatError: not an index, or a partial/corrupt/mismatched one; names the file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"index not found: {path}")
    folder = path.parent if path.is_file() and path.name == MANIFEST_NAME else path
    if not folder.is_dir():
        raise IndexFormatError(f"{path}: not an index folder (expected a folder with {MANIFEST_NAME})")
    manifest = folder_manifest(folder)
    emb_path = verified_path(folder, manifest, "embeddings", verify=verify)
    emb = read_vectors(emb_path, mmap=mmap)
    expected = manifest["embeddings"].get("shape", [])
    if list(emb.shape) != list(expected):
        raise IndexFormatError(
            f"{emb_path}: shape {list(emb.shape)} differs from {expected} in {MANIFEST_NAME}"
        )
    return emb, manifest, folder


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexFormatError(f"{path}: corrupt index manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise IndexFormatError(f"{path}: not an img2text embedding index manifest")
    version = manifest.get("version")
    if version not in READABLE_VERSIONS:
        raise IndexFormatError(
            f"{path}: index format version {version!r} is not supported "
            f"(this code reads versions {', '.join(map(str, READABLE_VERSIONS))}); rebuild the index"
        )
    needed = ("embeddings", "checkpoint", "gallery" if version == 3 and "images" not in manifest
              else "images")
    missing = [key for key in needed if key not in manifest]
    if missing or not isinstance(manifest["embeddings"], dict):
        raise IndexFormatError(f"{path}: index manifest lacks {', '.join(missing) or 'embeddings'}")
    return manifest
