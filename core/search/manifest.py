"""An index's manifest head and gallery rows, to and from ``EmbeddingIndex`` fields.

Works on any object with ``EmbeddingIndex``'s attributes, so ``index.py`` imports this module
and never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.search.errors import IndexFormatError
from core.search.gallerydb import GalleryRow
from core.search.pretrained import encoder_record


@dataclass(frozen=True)
class CheckpointInfo:
    """Which encoder produced an index: enough to detect a stale index and reload the encoder."""

    sha256: str
    weights_path: str
    config: dict[str, Any] = field(default_factory=dict)


NO_CHECKPOINT = CheckpointInfo("", "")  # indexes made from arrays (``from_arrays``)


def head(index: Any) -> dict[str, Any]:
    """Everything the manifest records except the per-image metadata (which goes to SQLite)."""
    return {
        "count": len(index),
        "data_root": str(index.data_root) if index.data_root is not None else None,
        "checkpoint": {
            "sha256": index.checkpoint.sha256,
            "weights_path": index.checkpoint.weights_path,
            "config": index.checkpoint.config,
        },
        # a pretrained encoder's id, revision, sha256, family, dimension (None for SSL runs)
        "encoder": encoder_record(index.checkpoint.config or {}),
        "preprocessing": index.preprocessing,
        "category_names": {str(k): v for k, v in sorted(index.category_names.items())},
        "skipped": index.skipped,
        "ann": dict(index.ann_info),
    }


def gallery_rows(index: Any) -> list[GalleryRow]:
    """One :class:`GalleryRow` per embedding row, in order."""
    return [
        GalleryRow(i, str(p), r, list(c), [int(x) for x in cat], s, list(g), h)
        for i, p, r, c, cat, s, g, h in zip(
            index.image_ids, index.paths, index.relative_paths, index.captions, index.categories,
            index.sources, index.generated, index.content_hashes, strict=True,
        )
    ]


def index_fields(parts: Any) -> dict[str, Any]:
    """Keyword arguments for ``EmbeddingIndex`` from :class:`core.search.persist.LoadedParts`.

    Raises:
        IndexFormatError: the manifest's head is malformed.
    """
    manifest, rows = parts.manifest, parts.rows
    try:
        ckpt = manifest["checkpoint"]
        return {
            "embeddings": parts.embeddings,
            "image_ids": [r.image_id for r in rows],
            "paths": [Path(r.path) for r in rows],
            "relative_paths": [r.relative_path for r in rows],
            "captions": [list(r.captions) for r in rows],
            "categories": [list(r.categories) for r in rows],
            "sources": [r.source for r in rows],
            "generated": [list(r.generated) for r in rows],
            "content_hashes": [r.sha256 for r in rows],
            "category_names": {int(k): str(v) for k, v in manifest.get("category_names", {}).items()},
            "data_root": Path(manifest["data_root"]) if manifest.get("data_root") else None,
            "checkpoint": CheckpointInfo(
                str(ckpt["sha256"]), str(ckpt["weights_path"]), dict(ckpt.get("config", {}))
            ),
            "preprocessing": dict(manifest.get("preprocessing", {})),
            "skipped": list(manifest.get("skipped", [])),
            # the file name and hash belong to the folder, not to the backend's settings
            "ann_info": {k: v for k, v in (manifest.get("ann") or {"kind": "exact",
                         "recall_at_10": 1.0}).items() if k not in ("file", "sha256")},
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise IndexFormatError(
            f"{parts.folder / 'index.json'}: malformed index metadata ({exc})"
        ) from exc
