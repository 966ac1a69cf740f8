"""The on-disk index: ``embeddings.safetensors`` + ``index.json``, written crash-safely.

Each file is written to a temporary name, fsynced and ``os.replace``-d into place, and the
manifest (``index.json``) goes last and records the embeddings file's sha256. A crash part-way
therefore leaves either the old index or a manifest/embeddings pair whose hashes disagree,
which :func:`read_index` reports instead of using.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from core.errors import CheckpointError

FORMAT_NAME = "img2text-embedding-index"
FORMAT_VERSION = 1
MANIFEST_NAME = "index.json"
EMBEDDINGS_NAME = "embeddings.safetensors"
_TENSOR_KEY = "embeddings"


class IndexFormatError(CheckpointError):
    """An index folder is missing, partial, corrupt or of an unknown format."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_index(folder: Path, embeddings: torch.Tensor, manifest: dict[str, Any]) -> None:
    """Write ``embeddings`` (Shape: (N, D), float32) and ``manifest`` into ``folder``.

    ``manifest`` gains the format name/version and the embeddings file's name, shape and sha256.
    """
    folder.mkdir(parents=True, exist_ok=True)
    emb = embeddings.detach().to("cpu", torch.float32).contiguous()
    emb_path = folder / EMBEDDINGS_NAME
    # Serialise in memory: safetensors' save_file would recreate the file as 0600.
    data = save({_TENSOR_KEY: emb})
    _atomic_write(emb_path, lambda tmp: tmp.write_bytes(data))
    full = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "embeddings": {
            "file": EMBEDDINGS_NAME,
            "shape": list(emb.shape),
            "dtype": "float32",
            "sha256": sha256_file(emb_path),
        },
        **manifest,
    }
    text = json.dumps(full, indent=2, ensure_ascii=False) + "\n"
    _atomic_write(folder / MANIFEST_NAME, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    _fsync_dir(folder)


def read_index(path: Path) -> tuple[torch.Tensor, dict[str, Any], Path]:
    """Read and verify an index folder (or its ``index.json``).

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
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.is_file():
        raise IndexFormatError(
            f"{folder}: not an embedding index ({MANIFEST_NAME} is missing; a partial write or "
            "the wrong folder). Build one with `img2text ssl embed`."
        )
    manifest = _read_manifest(manifest_path)
    emb_path = folder / EMBEDDINGS_NAME
    if not emb_path.is_file():
        raise IndexFormatError(f"{emb_path}: missing; the index is incomplete, rebuild it")
    expected = manifest["embeddings"]
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
    if manifest.get("version") != FORMAT_VERSION:
        raise IndexFormatError(
            f"{path}: index format version {manifest.get('version')!r} is not supported "
            f"(this code reads version {FORMAT_VERSION}); rebuild the index"
        )
    missing = [key for key in ("embeddings", "images", "checkpoint") if key not in manifest]
    if missing or not isinstance(manifest["embeddings"], dict):
        raise IndexFormatError(f"{path}: index manifest lacks {', '.join(missing) or 'embeddings'}")
    return manifest


def _atomic_write(dest: Path, write: Any) -> None:
    tmp = dest.parent / f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    # os.open with 0o666 honours the umask; mkstemp would leave a shared index readable by us only.
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(tmp)
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())  # the bytes must be on disk before the rename makes them live
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders; the renames are still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
