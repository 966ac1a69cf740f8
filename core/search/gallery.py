"""Normalise what a gallery is built from: records or bare paths, and the paths recorded."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core.search.encoder import EncoderLike, config_dict
from core.search.manifest import CheckpointInfo


def gallery_items(entries: Iterable[Any]) -> list[dict[str, Any]]:
    """Normalise ``ImageRecord``-like objects and bare paths to plain dicts."""
    items: list[dict[str, Any]] = []
    for entry in entries:
        if hasattr(entry, "path") and hasattr(entry, "image_id"):
            items.append(
                {
                    "image_id": entry.image_id,
                    "path": entry.path,
                    "captions": list(getattr(entry, "captions", []) or []),
                    "categories": list(getattr(entry, "categories", []) or []),
                }
            )
        elif isinstance(entry, (str, os.PathLike)):
            items.append({"image_id": None, "path": Path(entry), "captions": [], "categories": []})
        else:
            raise ValueError(f"cannot index {type(entry).__name__}: pass ImageRecords or paths")
    stems = [Path(it["path"]).stem for it in items if it["image_id"] is None]
    unique = len(set(stems)) == len(stems)
    for it in items:
        if it["image_id"] is None:  # bare paths: the file name is the friendliest id if unique
            it["image_id"] = Path(it["path"]).stem if unique else str(it["path"])
    return items


def weights_path_str(encoder: EncoderLike) -> str:
    """The weights path, absolute when it is a real file, so ``search`` works from any folder."""
    path = Path(encoder.weights_path)
    return str(path.resolve()) if path.is_file() else str(path)


def checkpoint_info(encoder: EncoderLike) -> CheckpointInfo:
    """What an index records about the encoder that made it (sha256, weights path, config)."""
    return CheckpointInfo(encoder.sha256, weights_path_str(encoder), config_dict(encoder))


def relative_to_root(path: str | Path, root: Path | None) -> str | None:
    if root is None:
        return None
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None
