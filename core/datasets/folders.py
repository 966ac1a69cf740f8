"""A plain image folder as a data set: every image file under it, recursively, without labels."""

from __future__ import annotations

import os
from pathlib import Path

from core.datasets.base import DatasetInfo, ImageRecord
from core.images import iter_image_files


def folder_dataset(root: str | os.PathLike) -> DatasetInfo:
    """Every image file under ``root`` (recursively), sorted by path, as unlabelled records.

    Args:
        root: an existing folder.

    Returns:
        A ``"folder"`` :class:`DatasetInfo` whose ``image_id`` is each file's path relative to
        ``root`` (POSIX separators); empty when the folder holds no image file.
    """
    root = Path(root)
    files = sorted(iter_image_files([root], recursive=True))
    records = [ImageRecord(f.relative_to(root).as_posix(), f) for f in files]
    return DatasetInfo("folder", root, None, records, {})
