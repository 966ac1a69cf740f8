"""The on-disk index: ``embeddings-<sha256[:16]>.safetensors`` + ``index.json``, crash-safely.

A (re)write never touches the files of the index already there: the new embeddings go to a
content-addressed name (tmp file, fsync, ``os.replace``), then ``index.json``, which records that
name and the file's sha256, is replaced atomically the same way (the commit point), and only then
are embeddings files that the manifest no longer names deleted. A crash at any moment therefore
leaves the old index or the new one, both readable; at worst an unreferenced embeddings file
stays behind until the next write. One writer per folder at a time.

Folders written before content addressing (``embeddings.safetensors``, format version 1) still
read: the manifest has always recorded the file name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from core.errors import CheckpointError
from core.fileio import atomic_write, sha256_file

# ``sha256_file`` lives in core.fileio; re-exported here for callers that still import it from here.
__all__ = ["IndexFormatError", "read_index", "sha256_file", "write_index"]

FORMAT_NAME = "img2text-embedding-index"
# 2: content-addressed embeddings file. Bumped so that older code refuses a new index with a
# version message instead of reporting ``embeddings.safetensors`` as missing.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MANIFEST_NAME = "index.json"
LEGACY_EMBEDDINGS_NAME = "embeddings.safetensors"  # the fixed name of format version 1
# Only these names are ever read or deleted: a manifest cannot point outside its folder, and
# cleaning up never removes a user's file.
_EMBEDDINGS_RE = re.compile(r"embeddings-[0-9a-f]{16}\.safetensors")
_TENSOR_KEY = "embeddings"


def embeddings_file_name(sha256: str) -> str:
    """The content-addressed file name of embeddings whose bytes hash to ``sha256`` (hex)."""
    return f"embeddings-{sha256[:16]}.safetensors"


def _is_embeddings_name(name: str) -> bool:
    return name == LEGACY_EMBEDDINGS_NAME or _EMBEDDINGS_RE.fullmatch(name) is not None


class IndexFormatError(CheckpointError):
    """An index folder is missing, partial, corrupt or of an unknown format."""


def write_index(folder: Path, embeddings: torch.Tensor, manifest: dict[str, Any]) -> None:
    """Write ``embeddings`` (Shape: (N, D), float32) and ``manifest`` into ``folder``.

    ``manifest`` gains the format name/version and the embeddings file's name, shape and sha256.
    Replacing an existing index is old-or-new under a crash (see the module docstring).
    """
    folder.mkdir(parents=True, exist_ok=True)
    emb = embeddings.detach().to("cpu", torch.float32).contiguous()
    # Serialise in memory: safetensors' save_file would recreate the file as 0600.
    data = save({_TENSOR_KEY: emb})
    digest = hashlib.sha256(data).hexdigest()
    emb_name = embeddings_file_name(digest)
    # Same contents -> same name: replacing it with identical bytes is harmless to the old index.
    # atomic_write fsyncs the folder too: the new file's entry is durable before a manifest names it.
    atomic_write(folder / emb_name, lambda tmp: tmp.write_bytes(data))
    full = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "embeddings": {
            "file": emb_name,
            "shape": list(emb.shape),
            "dtype": "float32",
            "sha256": digest,
        },
        **manifest,
    }
    text = json.dumps(full, indent=2, ensure_ascii=False) + "\n"
    atomic_write(folder / MANIFEST_NAME, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    _remove_unreferenced_embeddings(folder, keep=emb_name)


def _remove_unreferenced_embeddings(folder: Path, keep: str) -> None:
    """Delete the embeddings files of earlier versions once the manifest no longer names them."""
    for path in folder.iterdir():
        if path.name != keep and _is_embeddings_name(path.name):
            # The new index is already committed: a file we cannot delete only wastes space.
            with contextlib.suppress(OSError):
                path.unlink()


def embeddings_path(folder: Path) -> Path:
    """The embeddings file that ``folder``'s manifest names (not checked against its sha256).

    Raises:
        IndexFormatError: missing/corrupt manifest or a file name that is not an embeddings file.
    """
    manifest_path = Path(folder) / MANIFEST_NAME
    return _embeddings_path(Path(folder), _folder_manifest(Path(folder)), manifest_path)


def _folder_manifest(folder: Path) -> dict[str, Any]:
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.is_file():
        raise IndexFormatError(
            f"{folder}: not an embedding index ({MANIFEST_NAME} is missing; a partial write or "
            "the wrong folder). Build one with `img2text ssl embed`."
        )
    return _read_manifest(manifest_path)


def _embeddings_path(folder: Path, manifest: dict[str, Any], manifest_path: Path) -> Path:
    # Version-1 manifests recorded the fixed name too, so the default only covers hand-made ones.
    name = manifest["embeddings"].get("file", LEGACY_EMBEDDINGS_NAME)
    if not isinstance(name, str) or not _is_embeddings_name(name):
        raise IndexFormatError(
            f"{manifest_path}: embeddings file name {name!r} is not a plain "
            f"embeddings-<hash>.safetensors name in the index folder; the manifest is corrupt"
        )
    return folder / name


def read_index(path: Path) -> tuple[torch.Tensor, dict[str, Any], Path]:
    """Read and verify an index folder (or its ``index.json``); both format versions.

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
        raise IndexFormatError(
            f"{path}: not an index folder (expected a folder with {MANIFEST_NAME})"
        )
    manifest = _folder_manifest(folder)
    emb_path = _embeddings_path(folder, manifest, folder / MANIFEST_NAME)
    if not emb_path.is_file():
        raise IndexFormatError(f"{emb_path}: missing; the index is incomplete, rebuild it")
    expected = manifest["embeddings"]
    # A content-addressed file is never rewritten with other bytes, so hashing it and then
    # loading it sees the same contents (a concurrent cleanup can only make the load fail).
    if sha256_file(emb_path) != expected.get("sha256"):
        raise IndexFormatError(
            f"{emb_path}: contents do not match {MANIFEST_NAME} (sha256 differs); the index is "
            "partial or corrupt, rebuild it"
        )
    try:
        tensors = load_file(str(emb_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise IndexFormatError(f"{emb_path}: cannot read embeddings ({exc})") from exc
    emb = tensors.get(_TENSOR_KEY)
    if emb is None or emb.ndim != 2 or emb.dtype != torch.float32:
        raise IndexFormatError(f"{emb_path}: expected one float32 (N, D) tensor {_TENSOR_KEY!r}")
    if list(emb.shape) != list(expected.get("shape", [])):
        raise IndexFormatError(
            f"{emb_path}: shape {list(emb.shape)} differs from {expected.get('shape')} in {MANIFEST_NAME}"
        )
    return emb, manifest, folder


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexFormatError(f"{path}: corrupt index manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise IndexFormatError(f"{path}: not an img2text embedding index manifest")
    if manifest.get("version") not in READABLE_VERSIONS:
        raise IndexFormatError(
            f"{path}: index format version {manifest.get('version')!r} is not supported "
            f"(this code reads versions {', '.join(map(str, READABLE_VERSIONS))}); rebuild the index"
        )
    missing = [key for key in ("embeddings", "images", "checkpoint") if key not in manifest]
    if missing or not isinstance(manifest["embeddings"], dict):
        raise IndexFormatError(f"{path}: index manifest lacks {', '.join(missing) or 'embeddings'}")
    return manifest
